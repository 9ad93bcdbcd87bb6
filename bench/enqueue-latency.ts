// Enqueue API throughput and latency on the embedded default (SQLite in a temp DATA_DIR): autocannon
// against a Mailroom child process started with OUTBOX_WORKER=off, so only the enqueue is measured —
// POST /api/v1/messages with a small message and a send-scope API key; each 202 means the message is
// committed (SQLite synchronous=FULL). Baseline in the same run, same process, same settings:
// GET /healthz (routing, hooks, headers; no auth, no database).
//
//   node --import tsx bench/enqueue-latency.ts
//
// Env: BENCH_DURATION (10 s per measured run), BENCH_CONNECTIONS (50), BENCH_WARMUP (3 s per endpoint),
// LOG_LEVEL for Mailroom (info, its default; the log goes to a file), BENCH_CPU_PROF=/dir (profile the
// Mailroom process, print where its main thread's time went), BENCH_SQL_TRACE=1 (time its SQLite statements).
import SQLite from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import autocannon, { type Result } from 'autocannon';
import {
  cpuMeter,
  type CpuReport,
  createApiKey,
  envNumber,
  header,
  printCommitProbe,
  httpClient,
  monotonicUs,
  printProfile,
  printSql,
  runBenchmark,
  sqlTraceSetup,
  startMailroom,
  table,
  verdict,
} from './lib.ts';

const DURATION = envNumber('BENCH_DURATION', 10);
const CONNECTIONS = envNumber('BENCH_CONNECTIONS', 50);
const WARMUP = envNumber('BENCH_WARMUP', 3);
const MAILBOX = 'sales@contoso.test';
const PROFILE_DIR = process.env.BENCH_CPU_PROF;
const SQL_TRACE = Boolean(process.env.BENCH_SQL_TRACE);

// A small message: one recipient, a subject and two lines of text.
const MESSAGE = JSON.stringify({
  from: MAILBOX,
  to: ['customer@remote.example'],
  subject: 'Your order SO-1042 is confirmed',
  text: 'Hello,\nyour order SO-1042 is confirmed and will ship tomorrow.',
});

interface Run {
  name: string;
  result: Result;
  cpu: CpuReport;
  window: { fromUs: number; toUs: number };
}

async function cannon(name: string, opts: Parameters<typeof autocannon>[0], pid: number): Promise<Run> {
  const cpu = cpuMeter(pid);
  const fromUs = monotonicUs();
  const result = await autocannon({ connections: CONNECTIONS, timeout: 30, ...opts });
  return { name, result, cpu: cpu(), window: { fromUs, toUs: monotonicUs() } };
}

runBenchmark('enqueue-latency', 170, async () => {
  header('Enqueue latency: POST /api/v1/messages on embedded SQLite, worker off (autocannon)');
  printCommitProbe();
  if (PROFILE_DIR) mkdirSync(PROFILE_DIR, { recursive: true });
  const trace = SQL_TRACE ? sqlTraceSetup() : undefined;
  const mr = await startMailroom({ OUTBOX_WORKER: 'off', LOG_LEVEL: process.env.LOG_LEVEL ?? 'info', ...trace?.env }, { nodeArgs: trace?.nodeArgs ?? [] });
  const sqlMark = trace?.marker(mr.pid);
  const admin = await createApiKey(mr, 'admin');
  const sendKey = await createApiKey(mr, 'send');
  const { request: api } = httpClient(mr.baseUrl, admin);
  const s = await api('POST', '/api/v1/mail-servers', {
    name: 'Sales',
    username: MAILBOX,
    clientId: '3f0b6a2e-8c1d-4e5f-9a7b-1c2d3e4f5a6b',
    clientSecret: 'Qx8Q~enqueue.Bench-Secret_Value~0123456789',
    smtpHost: '127.0.0.1',
    smtpPort: 9, // never contacted: the worker is off
    smtpSecurity: 'starttls',
  });
  if (s.status !== 201) throw new Error(`creating the mail server: HTTP ${s.status} ${JSON.stringify(s.json)}`);
  const probe = await httpClient(mr.baseUrl, sendKey).request('POST', '/api/v1/messages', JSON.parse(MESSAGE));
  if (probe.status !== 202) throw new Error(`POST /api/v1/messages: HTTP ${probe.status} ${JSON.stringify(probe.json)}`);
  console.log(
    `# ${CONNECTIONS} connections, ${DURATION} s per run after ${WARMUP} s warm-up each · Mailroom OUTBOX_WORKER=off LOG_LEVEL=${mr.env.LOG_LEVEL} (log to a file)` +
      ` · message body ${Buffer.byteLength(MESSAGE)} B JSON · autocannon runs in this process, on the same 2 cores` +
      `${PROFILE_DIR ? ' · Mailroom under --cpu-prof (slower)' : ''}${SQL_TRACE ? ' · Mailroom with the SQL trace (slower)' : ''}`,
  );

  const post = { url: `${mr.baseUrl}/api/v1/messages`, method: 'POST' as const, headers: { authorization: `Bearer ${sendKey}`, 'content-type': 'application/json' }, body: MESSAGE };
  const healthz = { url: `${mr.baseUrl}/healthz` };
  await cannon('warm-up healthz', { ...healthz, duration: WARMUP }, mr.pid);
  await cannon('warm-up enqueue', { ...post, duration: WARMUP }, mr.pid);

  const h = await cannon('GET /healthz (baseline)', { ...healthz, duration: DURATION }, mr.pid);
  await sqlMark?.();
  const e = await cannon('POST /api/v1/messages', { ...post, duration: DURATION }, mr.pid);
  const sql = await sqlMark?.();

  for (const r of [h, e]) {
    if (r.result.errors || r.result.timeouts || r.result.non2xx) {
      throw new Error(`${r.name}: ${r.result.errors} errors, ${r.result.timeouts} timeouts, ${r.result.non2xx} non-2xx responses`);
    }
  }
  // Every 202 is a committed row.
  const db = new SQLite(join(mr.dataDir, 'mailroom.sqlite'), { readonly: true, fileMustExist: true });
  const queued = (db.prepare("select count(*) as n from outbox_messages where state = 'queued'").get() as { n: number }).n;
  db.close();

  const rps = (r: Run) => r.result['2xx'] / r.result.duration;
  console.log('');
  table(
    [h, e].map((r) => ({
      endpoint: r.name,
      requests: r.result['2xx'],
      'req/s': rps(r),
      'p50 ms': r.result.latency.p50,
      'p90 ms': r.result.latency.p90,
      'p99 ms': r.result.latency.p99,
      'max ms': r.result.latency.max,
      'CPU cores: mailroom': r.cpu.childCores,
      'autocannon (this process)': r.cpu.selfCores,
      'machine': r.cpu.machineCores,
    })),
  );
  console.log(`# ${queued} messages queued in SQLite after the runs (every 202, warm-up and probe included)`);
  const ratio = rps(e) / rps(h);
  console.log('');
  console.log(`enqueue ${rps(e).toFixed(0)} req/s, p50 ${e.result.latency.p50} ms, p99 ${e.result.latency.p99} ms · healthz ${rps(h).toFixed(0)} req/s, p99 ${h.result.latency.p99} ms`);
  console.log(`ratio enqueue / healthz req/s = ${ratio.toFixed(3)}`);
  console.log(`target enqueue ≥ 3000 req/s: ${verdict(rps(e), 3000)} · target p99 < 25 ms: ${verdict(e.result.latency.p99, 25, false)}`);
  if (sql) printSql('during the enqueue run', sql, e.result.duration, e.result['2xx']);
  if (PROFILE_DIR) {
    await mr.stop(); // the profile is written at exit
    printProfile(PROFILE_DIR, mr.pid, [
      { name: 'GET /healthz run', ...h.window },
      { name: 'POST /api/v1/messages run', ...e.window },
    ]);
  }
});
