// Outbox throughput of a cluster: 1, 2 and 3 Mailroom processes on one PostgreSQL database against the
// same Dovecot submission, beside one process on embedded SQLite, all in this run. POSTs are spread
// round-robin over the processes (as a load balancer would); timed from the first POST to the N-th
// message at the sink. The stored access token is stale at the start of each PostgreSQL run, so the
// burst begins with a refresh: the OAuth server counts the token requests (one is right).
//
//   node --import tsx bench/cluster.ts [N]
//
// Env: BENCH_N (1500), OUTBOX_POOL_SIZE (3 per process: the test Dovecot allows 10 connections per user,
// so 3 × 3 = 9), OUTBOX_CONCURRENCY (16), BENCH_HTTP_CONCURRENCY (32 POSTs in flight), LOG_LEVEL (warn).
import { randomBytes, randomUUID } from 'node:crypto';
import type { Peers } from '../test/peers/index.ts';
import { createTestDatabase, storeTokensPg, type TestPostgres } from '../test/helpers/postgres-db.ts';
import { cpuMeter, type CpuReport, envNumber, header, httpClient, onCleanup, runBenchmark, startMailroom, table } from './lib.ts';
import { arrivals, benchPeers, connect, fetchToken, mailroomWithServer, message } from './peers.ts';

const N = Number(process.argv[2] ?? envNumber('BENCH_N', 1500));
const POOL = envNumber('OUTBOX_POOL_SIZE', 3);
const CONCURRENCY = envNumber('OUTBOX_CONCURRENCY', 16);
const HTTP_CONCURRENCY = envNumber('BENCH_HTTP_CONCURRENCY', 32);
const LOG_LEVEL = process.env.LOG_LEVEL ?? 'warn';
const PHASE_TIMEOUT_MS = 100_000;
const WARMUP = 50;

interface Row {
  setup: string;
  seconds: number;
  tokens: number;
  cpu: CpuReport;
}

async function inParallel(count: number, limit: number, work: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, count) }, async () => {
    while (next < count) await work(next++);
  }));
}

type Api = ReturnType<typeof httpClient>['request'];

async function burst(peers: Peers, apis: Api[], n: number, tag: string, pid?: number): Promise<{ seconds: number; tokens: number; cpu: CpuReport }> {
  const arrived = arrivals(peers, tag, n, PHASE_TIMEOUT_MS);
  const tokensBefore = peers.authServer.tokenRequestCount();
  const cpu = cpuMeter(pid);
  const t0 = performance.now();
  await inParallel(n, HTTP_CONCURRENCY, async (i) => {
    const r = await apis[i % apis.length]!('POST', '/api/v1/messages', message(tag, i));
    if (r.status !== 202) throw new Error(`POST /api/v1/messages: HTTP ${r.status} ${JSON.stringify(r.json)}`);
  });
  const tLast = await arrived.done;
  return { seconds: (tLast - t0) / 1000, tokens: peers.authServer.tokenRequestCount() - tokensBefore, cpu: cpu() };
}

const base = { OUTBOX_POOL_SIZE: String(POOL), OUTBOX_CONCURRENCY: String(CONCURRENCY), LOG_LEVEL, INBOUND_WORKER: 'off' };

async function sqliteRun(peers: Peers, run: string): Promise<Row> {
  const c = await mailroomWithServer(peers, base);
  connect(c, peers, await fetchToken(peers));
  await burst(peers, [c.api], WARMUP, `${run}-sqlite-warm`);
  const r = await burst(peers, [c.api], N, `${run}-sqlite`, c.mr.pid);
  await c.mr.stop();
  return { setup: 'SQLite, 1 process', ...r };
}

async function postgresRun(peers: Peers, run: string, processes: number): Promise<Row> {
  const pg: TestPostgres = await createTestDatabase('mailroom_bench_cluster');
  const dropDb = onCleanup('bench database', () => pg.drop());
  const key = randomBytes(32);
  const env = { ...base, DATABASE_URL: pg.url, MAILROOM_SECRET_KEY: key.toString('base64') };
  const first = await mailroomWithServer(peers, env);
  const others = [];
  for (let i = 1; i < processes; i++) others.push(await startMailroom({ MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost, NODE_EXTRA_CA_CERTS: peers.caFile, ...env }));
  const apis = [first.api, ...others.map((o) => httpClient(o.baseUrl, first.key).request)];
  const t = await fetchToken(peers);
  await storeTokensPg(pg, key, first.serverId, 'bench@example.test', t, peers.authServer.tenantId);
  await burst(peers, apis, WARMUP, `${run}-pg${processes}-warm`);
  // Stale again: the measured burst starts with a refresh, which exactly one process must make.
  await storeTokensPg(pg, key, first.serverId, 'bench@example.test', await fetchToken(peers), peers.authServer.tenantId, { accessExpiresAt: new Date(Date.now() - 3600_000) });
  const r = await burst(peers, apis, N, `${run}-pg${processes}`);
  const [left] = await pg.query<{ n: string }>(`select count(*) as n from outbox_messages where state <> 'sent'`);
  if (Number(left!.n)) throw new Error(`${left!.n} messages not sent`);
  await Promise.all([first.mr.stop(), ...others.map((o) => o.stop())]);
  await pg.drop();
  dropDb();
  return { setup: `PostgreSQL, ${processes} process${processes > 1 ? 'es' : ''}`, ...r };
}

runBenchmark('cluster', 175, async () => {
  header('Cluster: outbox msgs/s with 1, 2 and 3 processes on PostgreSQL, beside SQLite');
  const peers = await benchPeers();
  const run = randomUUID().slice(0, 8);
  console.log(`# N=${N} per row · OUTBOX_POOL_SIZE=${POOL} and OUTBOX_CONCURRENCY=${CONCURRENCY} per process · ${HTTP_CONCURRENCY} POSTs in flight, round-robin over the processes`);
  const rows: Row[] = [await sqliteRun(peers, run)];
  for (const k of [1, 2, 3]) rows.push(await postgresRun(peers, run, k));
  console.log('');
  table(
    rows.map((r) => ({
      setup: r.setup,
      seconds: r.seconds,
      'msgs/s': N / r.seconds,
      'token requests': r.tokens,
      'CPU cores: machine': r.cpu.machineCores,
    })),
  );
});
