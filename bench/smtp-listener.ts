// SMTP submission listener throughput, end to end:
//   10 SMTP clients (nodemailer, one connection each, STARTTLS + AUTH PLAIN with an API key) →
//   Mailroom's listener → outbox (SQLite, committed before each 250) → worker → pooled SMTP XOAUTH2 →
//   Dovecot 2.3 submission (token introspected at the OAuth server) → SMTP sink.
// Baseline in the same run: the same 10 clients sending the same messages straight to Dovecot
// submission with XOAUTH2 (what each application would do if it could speak OAuth2 itself).
// Both are timed from the first message to the N-th at the sink.
//
//   node --import tsx bench/smtp-listener.ts [N]
//
// Env: BENCH_N (2000), BENCH_CLIENTS (10), OUTBOX_POOL_SIZE (4), OUTBOX_CONCURRENCY (16), LOG_LEVEL for
// Mailroom (info), BENCH_SQL_TRACE=1 to time every SQLite statement in the Mailroom process.
import { randomUUID } from 'node:crypto';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import { cpuMeter, type CpuReport, createApiKey, envNumber, freePort, header, printCommitProbe, printSql, runBenchmark, sqlTraceSetup, table, verdict } from './lib.ts';
import { arrivals, benchPeers, BODY, connect, fetchToken, mailroomWithServer, message, nodemailer, smtpOptions } from './peers.ts';

const N = Number(process.argv[2] ?? envNumber('BENCH_N', 2000));
const CLIENTS = envNumber('BENCH_CLIENTS', 10);
const POOL = envNumber('OUTBOX_POOL_SIZE', 4);
const CONCURRENCY = envNumber('OUTBOX_CONCURRENCY', 16);
const WARMUP = 50;
const PHASE_TIMEOUT_MS = 100_000;

if (!Number.isInteger(N) || N < CLIENTS) throw new Error(`N must be a whole number of at least ${CLIENTS} (got ${process.argv[2]})`);


interface Result {
  name: string;
  messages: number;
  seconds: number;
  cpu: CpuReport;
  /** Until the last client had its last 250. */
  acceptedSeconds: number;
  atSinkWhenAccepted: number;
}

/**
 * `CLIENTS` applications, each with one SMTP connection (nodemailer pool of 1), each sending its share
 * one message after another; resolves when all `n` are at the sink.
 */
async function viaClients(name: string, options: SMTPConnection.Options, n: number, tag: string, cpuOf?: number): Promise<Result> {
  const transports = Array.from({ length: CLIENTS }, () => nodemailer.createTransport({ ...options, pool: true, maxConnections: 1, maxMessages: 100 } as object));
  try {
    const arrived = arrivals(peers, tag, n, PHASE_TIMEOUT_MS);
    const cpu = cpuMeter(cpuOf);
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      transports.map(async (t) => {
        while (next < n) {
          try {
            await t.sendMail(message(tag, next++));
          } catch (e) {
            throw new Error(`${name}: ${(e as Error).message}`);
          }
        }
      }),
    );
    const tAccepted = performance.now();
    const atSink = arrived.count();
    const tLast = await arrived.done;
    return { name, messages: n, seconds: (tLast - t0) / 1000, cpu: cpu(), acceptedSeconds: (tAccepted - t0) / 1000, atSinkWhenAccepted: atSink };
  } finally {
    for (const t of transports) t.close();
  }
}

let peers: Awaited<ReturnType<typeof benchPeers>>;

const row = (r: Result) => ({
  path: r.name,
  messages: r.messages,
  seconds: r.seconds,
  'msgs/s': r.messages / r.seconds,
  'last 250 after s': r.acceptedSeconds,
  'at the sink by then': r.atSinkWhenAccepted,
  'CPU cores: machine': r.cpu.machineCores,
  mailroom: r.cpu.childCores,
  'bench process': r.cpu.selfCores,
  'other (Dovecot, kernel, rest of machine)': r.cpu.otherCores,
});

runBenchmark('smtp-listener', 175, async () => {
  header('SMTP listener: 10 SMTP clients → Mailroom listener → outbox → pooled SMTP XOAUTH2 → Dovecot submission → sink');
  printCommitProbe();
  peers = await benchPeers();
  const smtpPort = await freePort();
  const trace = process.env.BENCH_SQL_TRACE ? sqlTraceSetup() : undefined;
  const c = await mailroomWithServer(peers, {
    ...trace?.env,
    OUTBOX_POOL_SIZE: String(POOL),
    OUTBOX_CONCURRENCY: String(CONCURRENCY),
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
    SMTP_SUBMISSION_PORT: String(smtpPort),
    SMTP_TLS_CERT: peers.ca.certFile,
    SMTP_TLS_KEY: peers.ca.keyFile,
  }, { nodeArgs: trace?.nodeArgs ?? [] });
  const sqlMark = trace?.marker(c.mr.pid);
  const sendKey = await createApiKey(c.mr, 'send');
  const token = await fetchToken(peers);
  connect(c, peers, token);
  const direct = smtpOptions(peers, token.access_token);
  // As a legacy application is configured: host, port, STARTTLS, a username, the API key as password.
  const listener: SMTPConnection.Options = {
    host: '127.0.0.1',
    port: smtpPort,
    secure: false,
    requireTLS: true,
    tls: { ca: peers.ca.caPem, minVersion: 'TLSv1.2' },
    auth: { user: 'bench-send', pass: sendKey },
    logger: false,
  } as SMTPConnection.Options;
  console.log(
    `# N=${N} · ${CLIENTS} clients, one connection each, messages one after another per client · Mailroom OUTBOX_POOL_SIZE=${POOL} OUTBOX_CONCURRENCY=${CONCURRENCY} LOG_LEVEL=${c.mr.env.LOG_LEVEL} (log to a file)`,
  );
  console.log(`# message: ${Buffer.byteLength(BODY)} B text/plain, 1 recipient outside the sink's local domains; the same token for Dovecot in both paths`);

  const run = randomUUID().slice(0, 8);
  // The test Dovecot allows 10 connections per user and address (mail_max_userip_connections), and
  // Mailroom's pool keeps its own open once used: the direct runs come before Mailroom has sent
  // anything and after it has stopped, never beside it.
  await viaClients('warm-up direct', direct, WARMUP, `${run}-warm-d`);
  const base = await viaClients(`(a) ${CLIENTS} clients straight to Dovecot, XOAUTH2`, direct, N, `${run}-d`);
  await viaClients('warm-up listener', listener, WARMUP, `${run}-warm-m`, c.mr.pid);
  await sqlMark?.();
  const m = await viaClients(`${CLIENTS} clients → Mailroom listener → Dovecot`, listener, N, `${run}-m`, c.mr.pid);
  const sql = await sqlMark?.();
  for (const state of ['failed', 'held', 'queued', 'sending']) {
    const r = await c.api('GET', `/api/v1/messages?state=${state}&limit=1`);
    if (r.json.items.length) throw new Error(`a Mailroom message is still ${state}: ${JSON.stringify(r.json.items[0])}`);
  }
  await c.mr.stop();
  const base2 = await viaClients('(a) again, Mailroom stopped', direct, N, `${run}-d2`);

  console.log('');
  table([row(base), row(m), row(base2)]);
  const rate = (r: Result) => r.messages / r.seconds;
  const baseline = (rate(base) + rate(base2)) / 2;
  const ratio = rate(m) / baseline;
  console.log('');
  console.log(`Mailroom listener ${rate(m).toFixed(1)} msgs/s · straight to Dovecot ${rate(base).toFixed(1)} / ${rate(base2).toFixed(1)} msgs/s (before / after)`);
  console.log(`ratio Mailroom listener / straight to Dovecot (mean of both) = ${ratio.toFixed(2)}  (target ≥ 0.8: ${verdict(ratio, 0.8)})`);
  if (sql) printSql('through the listener', sql, m.seconds, N);
  console.log('# bench process = this process: the SMTP clients, the SMTP sink, the OAuth server (introspection for Dovecot)');
});
