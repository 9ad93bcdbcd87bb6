// Outbox throughput, end to end:
//   HTTP POST /api/v1/messages (API key) → Mailroom child process → outbox (SQLite) → worker →
//   pooled SMTP XOAUTH2 → Dovecot 2.3 submission (token introspected at the OAuth server) → SMTP sink.
// Measured from the first POST to the N-th message at the sink. Baselines in the same run, against the
// same Dovecot, same token, same message:
//   (a) raw nodemailer, pool: true, maxConnections = OUTBOX_POOL_SIZE, all N sendMail() at once;
//   (b) one new connection + STARTTLS + AUTH per message (non-pooled nodemailer), OUTBOX_POOL_SIZE at once.
//
//   node --import tsx bench/outbox-throughput.ts [N]
//
// Env: BENCH_N (2000), OUTBOX_POOL_SIZE (4), OUTBOX_CONCURRENCY (16), BENCH_HTTP_CONCURRENCY (32 POSTs in
// flight), BENCH_PERCONN_N (min(N, 1000)), BENCH_PERCONN_CONCURRENCY (OUTBOX_POOL_SIZE), BENCH_MAX_MESSAGES (30,
// nodemailer maxMessages of baseline (a), as Mailroom's pool), LOG_LEVEL for Mailroom (info, its default),
// BENCH_CPU_PROF=/dir to profile the Mailroom process (node --cpu-prof) and print where its time went,
// BENCH_SQL_TRACE=1 to time every SQLite statement in the Mailroom process (bench/sql-trace.mjs).
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import type { Peers } from '../test/peers/index.ts';
import { cpuMeter, type CpuReport, envNumber, header, printCommitProbe, monotonicUs, printProfile, printSql, runBenchmark, type SqlStat, sqlTraceSetup, table, verdict } from './lib.ts';
import { arrivals, benchPeers, BODY, connect, type ConnectedMailroom, fetchToken, mailroomWithServer, message, nodemailer, smtpOptions } from './peers.ts';

const N = Number(process.argv[2] ?? envNumber('BENCH_N', 2000));
const POOL = envNumber('OUTBOX_POOL_SIZE', 4);
const CONCURRENCY = envNumber('OUTBOX_CONCURRENCY', 16);
const HTTP_CONCURRENCY = envNumber('BENCH_HTTP_CONCURRENCY', 32);
// A rate, so fewer messages suffice: at ~30 msgs/s, N = 2,000 alone would take a minute.
const PERCONN_N = envNumber('BENCH_PERCONN_N', Math.min(N, 1000));
// As many SMTP sessions at once as Mailroom's pool (and baseline (a)) keeps open. Not many more are
// possible: the test Dovecot allows 10 connections per user and IP (mail_max_userip_connections).
const PERCONN_CONCURRENCY = envNumber('BENCH_PERCONN_CONCURRENCY', POOL);
const MAX_MESSAGES = envNumber('BENCH_MAX_MESSAGES', 30);
const PROFILE_DIR = process.env.BENCH_CPU_PROF;
const SQL_TRACE = Boolean(process.env.BENCH_SQL_TRACE);
const WARMUP = 50;
const PHASE_TIMEOUT_MS = 100_000;

if (!Number.isInteger(N) || N < 1) throw new Error(`N must be a positive integer (got ${process.argv[2]})`);


interface Result {
  name: string;
  messages: number;
  seconds: number;
  cpu: CpuReport;
}

/** Runs `work(i)` for i < count with at most `limit` in flight. */
async function inParallel(count: number, limit: number, work: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

interface MailroomRun {
  total: Result;
  enqueue: Result & { delivered: number };
  drain: Result;
  window: { enqueue: [number, number]; drain: [number, number] };
  sql: { enqueue: SqlStat[]; drain: SqlStat[] } | undefined;
}

async function viaMailroom(peers: Peers, c: ConnectedMailroom, n: number, tag: string, sqlMark?: () => Promise<SqlStat[]>): Promise<MailroomRun> {
  const arrived = arrivals(peers, tag, n, PHASE_TIMEOUT_MS);
  await sqlMark?.();
  const cpuTotal = cpuMeter(c.mr.pid);
  const cpuEnqueue = cpuMeter(c.mr.pid);
  const us0 = monotonicUs();
  const t0 = performance.now();
  await inParallel(n, HTTP_CONCURRENCY, async (i) => {
    const r = await c.api('POST', '/api/v1/messages', message(tag, i));
    if (r.status !== 202) throw new Error(`POST /api/v1/messages: HTTP ${r.status} ${JSON.stringify(r.json)}`);
  });
  const tEnqueued = performance.now();
  const us1 = monotonicUs();
  const enqueueCpu = cpuEnqueue();
  const sqlEnqueue = await sqlMark?.();
  const cpuDrain = cpuMeter(c.mr.pid);
  const delivered = arrived.count();
  const tLast = await arrived.done.catch((e: Error) => {
    throw new Error(`${e.message}; ${arrived.count()} of ${n} at the sink; mailroom log:\n${c.mr.logTail()}`);
  });
  const us2 = monotonicUs();
  const sqlDrain = await sqlMark?.();
  return {
    sql: sqlEnqueue && sqlDrain ? { enqueue: sqlEnqueue, drain: sqlDrain } : undefined,
    total: { name: 'Mailroom', messages: n, seconds: (tLast - t0) / 1000, cpu: cpuTotal() },
    enqueue: { name: 'while POSTing', messages: delivered, seconds: (tEnqueued - t0) / 1000, cpu: enqueueCpu, delivered },
    drain: { name: 'after the last POST', messages: n - delivered, seconds: (tLast - tEnqueued) / 1000, cpu: cpuDrain() },
    window: { enqueue: [us0, us1], drain: [us1, us2] },
  };
}

async function viaPool(peers: Peers, token: string, n: number, tag: string): Promise<Result> {
  const transport = nodemailer.createTransport({ ...smtpOptions(peers, token), pool: true, maxConnections: POOL, maxMessages: MAX_MESSAGES } as object);
  try {
    const arrived = arrivals(peers, tag, n, PHASE_TIMEOUT_MS);
    const cpu = cpuMeter();
    const t0 = performance.now();
    await Promise.all(Array.from({ length: n }, (_, i) => transport.sendMail(message(tag, i))));
    const tLast = await arrived.done;
    return { name: '(a) nodemailer pool', messages: n, seconds: (tLast - t0) / 1000, cpu: cpu() };
  } finally {
    transport.close();
  }
}

async function viaNewConnections(peers: Peers, token: string, n: number, tag: string): Promise<Result> {
  // Not pooled: every sendMail() opens its own connection, STARTTLS, AUTH XOAUTH2, sends, QUITs.
  const transport = nodemailer.createTransport(smtpOptions(peers, token));
  try {
    const arrived = arrivals(peers, tag, n, PHASE_TIMEOUT_MS);
    const cpu = cpuMeter();
    const t0 = performance.now();
    await inParallel(n, PERCONN_CONCURRENCY, (i) => transport.sendMail(message(tag, i)));
    const tLast = await arrived.done;
    return { name: '(b) new connection per message', messages: n, seconds: (tLast - t0) / 1000, cpu: cpu() };
  } finally {
    transport.close();
  }
}

const row = (r: Result) => ({
  path: r.name,
  messages: r.messages,
  seconds: r.seconds,
  'msgs/s': r.messages / r.seconds,
  'CPU cores: machine': r.cpu.machineCores,
  mailroom: r.cpu.childCores,
  'bench process': r.cpu.selfCores,
  'other (Dovecot, kernel, rest of machine)': r.cpu.otherCores,
});

runBenchmark('outbox-throughput', 175, async () => {
  header('Outbox throughput: API → outbox → pooled SMTP XOAUTH2 → Dovecot submission → sink');
  printCommitProbe();
  if (PROFILE_DIR) mkdirSync(PROFILE_DIR, { recursive: true });
  const peers = await benchPeers();
  const trace = SQL_TRACE ? sqlTraceSetup() : undefined;
  const c = await mailroomWithServer(
    peers,
    { OUTBOX_POOL_SIZE: String(POOL), OUTBOX_CONCURRENCY: String(CONCURRENCY), LOG_LEVEL: process.env.LOG_LEVEL ?? 'info', ...trace?.env },
    { nodeArgs: trace?.nodeArgs ?? [] },
  );
  const sqlMark = trace?.marker(c.mr.pid);
  const token = await fetchToken(peers);
  connect(c, peers, token);
  console.log(
    `# N=${N} · Mailroom OUTBOX_POOL_SIZE=${POOL} OUTBOX_CONCURRENCY=${CONCURRENCY} LOG_LEVEL=${c.mr.env.LOG_LEVEL} (log to a file), ${HTTP_CONCURRENCY} POSTs in flight` +
      ` · (a) maxConnections=${POOL} maxMessages=${MAX_MESSAGES} · (b) ${PERCONN_CONCURRENCY} connections at once, N=${PERCONN_N}` +
      `${PROFILE_DIR ? ' · Mailroom under --cpu-prof (slower)' : ''}${SQL_TRACE ? ' · Mailroom with the SQL trace (slower)' : ''}`,
  );
  console.log(`# message: ${Buffer.byteLength(BODY)} B text/plain, 1 recipient outside the sink's local domains; same token for all three`);

  // Warm up every path (Dovecot login processes, JIT, the Mailroom pool's first logins).
  const run = randomUUID().slice(0, 8);
  await viaPool(peers, token.access_token, WARMUP, `${run}-warm-a`);
  await viaNewConnections(peers, token.access_token, Math.min(WARMUP, 20), `${run}-warm-b`);
  await viaMailroom(peers, c, WARMUP, `${run}-warm-m`);

  const a = await viaPool(peers, token.access_token, N, `${run}-a`);
  const m = await viaMailroom(peers, c, N, `${run}-m`, sqlMark);
  const b = await viaNewConnections(peers, token.access_token, PERCONN_N, `${run}-b`);

  for (const state of ['failed', 'held', 'queued', 'sending']) {
    const r = await c.api('GET', `/api/v1/messages?state=${state}&limit=1`);
    if (r.json.items.length) throw new Error(`a Mailroom message is still ${state}: ${JSON.stringify(r.json.items[0])}`);
  }

  console.log('');
  table([row(a), row(m.total), row({ ...m.enqueue, name: '  Mailroom, while POSTing' }), row({ ...m.drain, name: '  Mailroom, after the last POST' }), row(b)]);
  console.log(
    `# Mailroom: the ${N} POSTs took ${m.enqueue.seconds.toFixed(2)} s (${(N / m.enqueue.seconds).toFixed(0)} req/s); ${m.enqueue.delivered} messages reached the sink meanwhile`,
  );
  const rate = (r: Result) => r.messages / r.seconds;
  const r1 = rate(m.total) / rate(a);
  const r2 = rate(m.total) / rate(b);
  console.log('');
  console.log(`Mailroom ${rate(m.total).toFixed(1)} msgs/s · (a) pooled nodemailer ${rate(a).toFixed(1)} msgs/s · (b) connection per message ${rate(b).toFixed(1)} msgs/s`);
  console.log(`ratio Mailroom / nodemailer pool            = ${r1.toFixed(2)}  (target ≥ 0.8: ${verdict(r1, 0.8)})`);
  console.log(`ratio Mailroom / new connection per message = ${r2.toFixed(2)}  (target ≥ 5: ${verdict(r2, 5)})`);
  console.log('# bench process = this process: HTTP client, SMTP sink, OAuth server (introspection for Dovecot), nodemailer in (a)/(b)');

  if (m.sql) {
    printSql('while POSTing', m.sql.enqueue, m.enqueue.seconds, N);
    printSql('after the last POST', m.sql.drain, m.drain.seconds, m.drain.messages);
  }
  if (PROFILE_DIR) {
    await c.mr.stop(); // the profile is written at exit
    printProfile(PROFILE_DIR, c.mr.pid, [
      { name: 'while POSTing', fromUs: m.window.enqueue[0], toUs: m.window.enqueue[1] },
      { name: 'after the last POST', fromUs: m.window.drain[0], toUs: m.window.drain[1] },
    ]);
  }
});
