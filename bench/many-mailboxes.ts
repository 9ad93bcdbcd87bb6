// A thousand mailboxes in one Mailroom: every mailbox a Dovecot user connected through the test
// authorization server (one token each, as a finished Connect leaves it), an outgoing server (SMTP
// XOAUTH2 to Dovecot's submission, Exchange's limits: 3 connections, 30 messages a minute) and an
// incoming server (IMAP XOAUTH2, watched with IDLE) per mailbox.
//
//   node --import tsx bench/many-mailboxes.ts        (npm run bench:many-mailboxes)
//
// Measured, each beside its baseline in the same run:
//   (a) one message from each of the N mailboxes (POST /api/v1/messages, From = the mailbox): time
//       until all N are at the sink, beside the same N messages from one unpaced mailbox. Target ≤ 1.5×.
//   (b) a new message delivered (dovecot-lda) into every mailbox while all N are watched: delivery →
//       webhook latency, p50 / p99. Target p99 ≤ 5 s.
//   (c) RSS of the Mailroom process with 0 and with N watched mailboxes: MB per mailbox. Target ≤ 0.3.
//   (d) delivery rate while a burst of POSTs arrives beside the rate after it (one unpaced mailbox).
//       Target ≥ 0.7×.
//   and GET /api/v1/health/servers at N outgoing + N incoming servers (median of 5), and the N
//   mailboxes over 3 Mailroom processes on one PostgreSQL: mailboxes per process (target
//   ceil/floor: 334/333/333 at 1,000) and every message imported exactly once, by its own server.
//
// Env: BENCH_MAILBOXES (1000), BENCH_BURST (2000 POSTs in (d)), BENCH_HTTP_CONCURRENCY (32),
// BENCH_PROCESSES (3), LOG_LEVEL (warn), BENCH_SKIP_CLUSTER=1, BENCH_SQL_TRACE=1, BENCH_ONLY (phases to run, e.g. "a,b";
// (c) and the health read are measured in every run, as the setup makes them; the PostgreSQL part
// needs (b)'s messages). Needs the end-to-end peers (Dovecot,
// openssl) and PostgreSQL at 127.0.0.1:5432 (trust); run as root (Maildirs belong to the mail user).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import nodemailer from 'nodemailer';
import pg from 'pg';
import { storeTokens } from '../test/helpers/connect-directly.ts';
import { createTestDatabase, storeTokensPg } from '../test/helpers/postgres-db.ts';
import type { TokenResponse } from '../test/peers/get-token.ts';
import { type Peers, startPeers } from '../test/peers/index.ts';
import { createApiKey, envNumber, header, httpClient, type MailroomChild, monotonicUs, onCleanup, printProfile, printSql, runBenchmark, sleep, sqlTraceSetup, startMailroom, table, verdict } from './lib.ts';
import { arrivals, CLIENT_ID, CLIENT_SECRET, createIncoming, fetchToken } from './peers.ts';

const N = Math.round(envNumber('BENCH_MAILBOXES', 1000));
const BURST = Math.round(envNumber('BENCH_BURST', 2000));
const HTTP_CONCURRENCY = Math.round(envNumber('BENCH_HTTP_CONCURRENCY', 32));
const PROCESSES = Math.round(envNumber('BENCH_PROCESSES', 3));
const LOG_LEVEL = process.env.LOG_LEVEL ?? 'warn';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const SINGLE = 'single@example.test';
const userOf = (k: number) => `box${k + 1}@example.test`;
const ONLY = new Set((process.env.BENCH_ONLY ?? '').split(',').map((x) => x.trim()).filter(Boolean));
/** Whether a phase runs: all of them unless BENCH_ONLY names some. */
const runs = (phase: 'a' | 'b' | 'd' | 'cluster') => (ONLY.size === 0 || ONLY.has(phase)) && !(phase === 'cluster' && process.env.BENCH_SKIP_CLUSTER);

async function inParallel(count: number, limit: number, work: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, count) }, async () => {
    while (next < count) await work(next++);
  }));
}

/** Resident memory of the process, MB. */
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>, every = 500): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms / 1000} s`);
    await sleep(every);
  }
}

/** The webhook receiver standing in for the ERP: when each Message-ID arrived. */
async function erp() {
  const arrived = new Map<string, number>();
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const id = (JSON.parse(body) as { message?: { messageId?: string } }).message?.messageId;
      if (id && !arrived.has(id)) arrived.set(id, performance.now());
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onCleanup('erp', () => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/erp`, arrived };
}

/** POSTs n messages, HTTP_CONCURRENCY at a time; answers each one's latency in ms. */
async function postAll(api: ReturnType<typeof httpClient>['request'], n: number, body: (i: number) => unknown): Promise<number[]> {
  const ms: number[] = [];
  await inParallel(n, HTTP_CONCURRENCY, async (i) => {
    const t = performance.now();
    const r = await api('POST', '/api/v1/messages', body(i));
    if (r.status !== 202) throw new Error(`POST /api/v1/messages: ${r.status} ${JSON.stringify(r.json)}`);
    ms.push(performance.now() - t);
  });
  return ms;
}

runBenchmark('many mailboxes', 3600, async () => {
  header(`${N} mailboxes in one Mailroom (SQLite), each connected through the test authorization server`);
  const peers: Peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }], connections: 2 * N + 200 });
  onCleanup('peers', () => peers.stop());
  console.log('# the test Dovecot: no auth cache (every IMAP and SMTP login\'s token is introspected at the authorization server); login processes serve many clients each (service_count 0); one imap or submission process per session; IDLE sessions past the kernel\'s 128 inotify instances per user look for new mail each second (mailbox_idle_check_interval), the others are told at once');
  const t0 = performance.now();
  const tokens: TokenResponse[] = [];
  await inParallel(N, 8, async (k) => void (tokens[k] = await fetchToken(peers, userOf(k))));
  const singleToken = await fetchToken(peers, SINGLE);
  console.log(`# setup: ${N} users signed in at the authorization server in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const hook = await erp();
  const env = { MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost, NODE_EXTRA_CA_CERTS: peers.caFile, LOG_LEVEL };
  // BENCH_SQL_TRACE=1: every SQLite statement on Mailroom's event loop timed, per phase (slower).
  const trace = process.env.BENCH_SQL_TRACE ? sqlTraceSetup() : undefined;
  const mr: MailroomChild = await startMailroom({ ...env, ...trace?.env }, { nodeArgs: trace?.nodeArgs ?? [] });
  const sqlMark = trace?.marker(mr.pid);
  const key = await createApiKey(mr);
  const { request: api } = httpClient(mr.baseUrl, key, HTTP_CONCURRENCY * 2);
  const h = await api('POST', '/api/v1/webhooks', { url: hook.url, description: 'ERP' });
  if (h.status !== 201) throw new Error(`webhook: ${h.status} ${JSON.stringify(h.json)}`);
  await sleep(3000);
  const rss0 = rssMb(mr.pid);

  // Outgoing: one per mailbox with Exchange's limits, and one unpaced mailbox for the baselines.
  const smtp = { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, smtpHost: '127.0.0.1', smtpPort: peers.dovecot.submissionPort, smtpSecurity: 'starttls' };
  const s0 = performance.now();
  await inParallel(N, 8, async (k) => {
    const u = userOf(k);
    const r = await api('POST', '/api/v1/mail-servers', { name: `Out ${u}`, username: u, fromFilter: u, ...smtp, maxConnections: 3, messagesPerMinute: 30, recipientsPerDay: 10000 });
    if (r.status !== 201) throw new Error(`outgoing server: ${r.status} ${JSON.stringify(r.json)}`);
    storeTokens(mr.dataDir, r.json.id, u, tokens[k]!, peers.authServer.tenantId);
  });
  const single = await api('POST', '/api/v1/mail-servers', { name: 'Single', username: SINGLE, fromFilter: SINGLE, ...smtp, maxConnections: null, messagesPerMinute: null, recipientsPerDay: null });
  if (single.status !== 201) throw new Error(`single server: ${single.status} ${JSON.stringify(single.json)}`);
  storeTokens(mr.dataDir, single.json.id, SINGLE, singleToken, peers.authServer.tenantId);
  // Incoming: one per mailbox, watched with IDLE.
  await inParallel(N, 8, async (k) => {
    const id = await createIncoming(api, userOf(k), { imapPort: peers.dovecot.imapsPort });
    storeTokens(mr.dataDir, id, userOf(k), tokens[k]!, peers.authServer.tenantId);
  });
  console.log(`# setup: ${N} outgoing and ${N} incoming servers created in ${((performance.now() - s0) / 1000).toFixed(1)} s`);

  // (c) and the API at this size.
  const w0 = performance.now();
  // Settled: every mailbox watched with IDLE and its first fetch (the catch-up after a start) done.
  const watched = await until('every mailbox watched with IDLE and fetched once', 600_000, async () => {
    const items = (await api('GET', '/api/v1/incoming-servers')).json.items as Array<{ idle: boolean; lastFetchAt: string | null; fetch: { running: boolean } | null }>;
    const n = items.filter((x) => x.idle).length;
    return n >= N && items.every((x) => x.lastFetchAt !== null && !x.fetch?.running) ? n : undefined;
  }, 2000);
  const watchSeconds = (performance.now() - w0) / 1000;
  await sleep(5000);
  const rss1 = rssMb(mr.pid);
  const healthMs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const h0 = performance.now();
    const r = await api('GET', '/api/v1/health/servers');
    if (r.status !== 200 || r.json.items.length !== 2 * N + 1) throw new Error(`health: ${r.status} ${r.json.items?.length}`);
    healthMs.push(performance.now() - h0);
  }
  console.log(`# ${watched} mailboxes watched with IDLE and fetched once ${watchSeconds.toFixed(1)} s after the servers were created; RSS ${rss0.toFixed(0)} → ${rss1.toFixed(0)} MB`);

  const windows: Array<{ name: string; fromUs: number; toUs: number }> = [];
  // (b) a message into every mailbox: delivery → webhook.
  let b: { latencies: number[]; deliverSeconds: number } | undefined;
  if (runs('b')) {
    const delivered = new Map<string, number>();
    await sqlMark?.();
    const b0 = performance.now();
    const bUs0 = monotonicUs();
    await inParallel(N, 8, async (k) => {
      const id = `<many-b-${k}@sender.example>`;
      await peers.dovecot.deliver(userOf(k), [`From: Customer <customer@sender.example>`, `To: ${userOf(k)}`, `Subject: Reply ${k}`, `Message-ID: ${id}`, 'Content-Type: text/plain; charset=utf-8', '', 'Re: your quotation.', ''].join('\r\n'));
      delivered.set(id, performance.now());
    });
    const deliverSeconds = (performance.now() - b0) / 1000;
    await until('every message at the webhook', 300_000, async () => ([...delivered.keys()].every((id) => hook.arrived.has(id)) ? true : undefined), 200);
    windows.push({ name: '(b) deliveries until the last webhook', fromUs: bUs0, toUs: monotonicUs() });
    if (sqlMark) printSql('(b) deliveries until the last webhook', await sqlMark(), (performance.now() - b0) / 1000, N);
    const latencies = [...delivered].map(([id, at]) => (hook.arrived.get(id)! - at) / 1000);
    b = { latencies, deliverSeconds };
    // Where the time went: the import (receivedAt, on the same clock) splits each latency in two.
    const wall = Date.now() - performance.now();
    const imported = new Map<string, number>();
    for (let after: string | null = null, more = true; more; ) {
      const page: { json: { items: Array<{ messageId: string; receivedAt: string }>; nextCursor: string | null } } = await api('GET', `/api/v1/inbound-messages?order=asc&limit=100${after ? `&after=${after}` : ''}`);
      for (const m of page.json.items) imported.set(m.messageId, Date.parse(m.receivedAt) - wall);
      more = page.json.items.length > 0 && page.json.nextCursor !== after;
      after = page.json.nextCursor;
    }
    const toImport = [...delivered].map(([id, at]) => (imported.get(id)! - at) / 1000);
    const toHook = [...delivered.keys()].map((id) => (hook.arrived.get(id)! - imported.get(id)!) / 1000);
    console.log(`# (b) delivery → webhook: p50 ${pct(latencies, 50).toFixed(2)} s, p99 ${pct(latencies, 99).toFixed(2)} s; delivery → import p50 ${pct(toImport, 50).toFixed(2)} s, p99 ${pct(toImport, 99).toFixed(2)} s; import → webhook p50 ${pct(toHook, 50).toFixed(2)} s, p99 ${pct(toHook, 99).toFixed(2)} s`);
  }
  console.log(`# (c) ${((rss1 - rss0) / N).toFixed(3)} MB per mailbox; health ${pct(healthMs, 50).toFixed(0)} ms`);

  // (a) one message from each mailbox, beside the same N from one unpaced mailbox.
  let a: { manySeconds: number; oneSeconds: number; bareSeconds: number } | undefined;
  if (runs('a')) {
    const sendRun = async (tag: string, from: (i: number) => string) => {
      const arrived = arrivals(peers, tag, N, 600_000);
      await sqlMark?.();
      const a0 = performance.now();
      const us0 = monotonicUs();
      await postAll(api, N, (i) => ({ from: from(i), to: [`customer${i}@remote.example`], subject: `Quotation ${i}`, text: 'Please find our quotation below.', headers: { 'X-Bench-Run': tag } }));
      const seconds = ((await arrived.done) - a0) / 1000;
      windows.push({ name: `(a) ${tag}`, fromUs: us0, toUs: monotonicUs() });
      if (sqlMark) printSql(`(a) ${tag}`, await sqlMark(), seconds, N);
      return seconds;
    };
    a = { manySeconds: await sendRun('many', userOf), oneSeconds: await sendRun('one', () => SINGLE), bareSeconds: 0 };
    // What the peers allow: the same N sessions (STARTTLS, XOAUTH2 checked at the authorization
    // server, one message) opened by a bare SMTP client, 16 at a time, no Mailroom.
    const bare = arrivals(peers, 'bare', N, 600_000);
    const bare0 = performance.now();
    await inParallel(N, 16, async (k) => {
      const t = nodemailer.createTransport({ host: '127.0.0.1', port: peers.dovecot.submissionPort, secure: false, requireTLS: true, tls: { ca: peers.ca.caPem }, auth: { type: 'OAuth2', user: userOf(k), accessToken: tokens[k]!.access_token } });
      await t.sendMail({ from: userOf(k), to: `customer${k}@remote.example`, subject: `Quotation ${k}`, text: 'Please find our quotation below.', headers: { 'X-Bench-Run': 'bare' } });
      t.close();
    });
    a.bareSeconds = ((await bare.done) - bare0) / 1000;
    console.log(`# (a) ${N} mailboxes ${a.manySeconds.toFixed(1)} s, one mailbox ${a.oneSeconds.toFixed(1)} s: ${(a.manySeconds / a.oneSeconds).toFixed(2)}×; the same ${N} sessions from a bare SMTP client (no Mailroom) ${a.bareSeconds.toFixed(1)} s`);
  }

  // (d) delivery while a burst of POSTs arrives, beside after it.
  let d: { rateDuring: number; rateAfter: number } | undefined;
  if (runs('d')) {
    const burst = arrivals(peers, 'burst', BURST, 600_000);
    await sqlMark?.();
    const d0 = performance.now();
    const us0 = monotonicUs();
    const latency = await postAll(api, BURST, (i) => ({ from: SINGLE, to: [`customer${i}@remote.example`], subject: `Invoice ${i}`, text: 'Your invoice is attached.', headers: { 'X-Bench-Run': 'burst' } }));
    const d1 = performance.now();
    windows.push({ name: '(d) during the POSTs', fromUs: us0, toUs: monotonicUs() });
    const during = burst.count();
    if (sqlMark) printSql('(d) during the POSTs', await sqlMark(), (d1 - d0) / 1000, BURST);
    const dDone = await burst.done;
    if (sqlMark) printSql('(d) after the POSTs', await sqlMark(), (dDone - d1) / 1000, BURST - during);
    windows.push({ name: '(d) after the POSTs', fromUs: windows.at(-1)!.toUs, toUs: monotonicUs() });
    d = { rateDuring: during / ((d1 - d0) / 1000), rateAfter: (BURST - during) / ((dDone - d1) / 1000) };
    console.log(`# (d) during the POSTs ${d.rateDuring.toFixed(0)} msgs/s, after ${d.rateAfter.toFixed(0)} msgs/s: ${(d.rateDuring / d.rateAfter).toFixed(2)}×; the ${BURST} POSTs took ${((d1 - d0) / 1000).toFixed(1)} s (${(BURST / ((d1 - d0) / 1000)).toFixed(0)} accepted/s, each answered in p50 ${pct(latency, 50).toFixed(0)} ms, p99 ${pct(latency, 99).toFixed(0)} ms), all ${BURST} delivered ${((dDone - d0) / 1000).toFixed(1)} s after the first POST`);
  }
  await mr.stop();
  // BENCH_CPU_PROF=dir: where each of Mailroom's threads spent (a)'s and (d)'s time.
  if (process.env.BENCH_CPU_PROF) printProfile(process.env.BENCH_CPU_PROF, mr.pid, windows, { top: 25 });

  // The N mailboxes over PROCESSES instances on one PostgreSQL (they import the messages (b) delivered).
  let cluster: { spread: number[]; seconds: number; imported: number } | undefined;
  if (runs('cluster') && b) {
    header(`${N} mailboxes over ${PROCESSES} Mailroom processes on one PostgreSQL`);
    const key = randomBytes(32);
    const db = await createTestDatabase('mailroom_bench_many');
    onCleanup('bench database', () => db.drop());
    const penv = { ...env, DATABASE_URL: db.url, MAILROOM_SECRET_KEY: key.toString('base64'), OUTBOX_WORKER: 'off' };
    const setup = await startMailroom({ ...penv, INBOUND_WORKER: 'off' });
    const setupApi = httpClient(setup.baseUrl, await createApiKey(setup), 16).request;
    const ids: string[] = [];
    await inParallel(N, 8, async (k) => {
      ids[k] = await createIncoming(setupApi, userOf(k), { imapPort: peers.dovecot.imapsPort });
      await storeTokensPg(db, key, ids[k]!, userOf(k), tokens[k]!, peers.authServer.tenantId);
    });
    const pkey = await createApiKey(setup);
    await setup.stop();
    const c0 = performance.now();
    const procs = await Promise.all(Array.from({ length: PROCESSES }, () => startMailroom({ ...penv, INBOUND_WORKER: 'on' })));
    const client = new pg.Client(db.url);
    await client.connect();
    onCleanup('pg client', () => client.end());
    const count = async () => Number((await client.query<{ n: string }>('select count(*) as n from inbound_messages')).rows[0]!.n);
    await until(`${N} messages imported by ${PROCESSES} processes`, 600_000, async () => ((await count()) >= N ? true : undefined), 500);
    const seconds = (performance.now() - c0) / 1000;
    // The share settles within a few ticks: ceil(N / processes) at most, floor at least.
    const floor = Math.floor(N / PROCESSES);
    const spread = await until('the mailboxes shared out evenly', 120_000, async () => {
      const views = await Promise.all(procs.map(async (p) => (await httpClient(p.baseUrl, pkey, 4).request('GET', '/api/v1/health/servers')).json));
      const instances = views.map((v) => v.instance as string);
      const s = instances.map(() => 0);
      for (const it of views[0].items as Array<{ direction: string; fetchedBy: string | null }>) if (it.direction === 'incoming' && it.fetchedBy) s[instances.indexOf(it.fetchedBy)]!++;
      return s.reduce((a, b) => a + b, 0) === N && s.every((x) => x >= floor && x <= Math.ceil(N / PROCESSES)) ? s : undefined;
    }, 2000);
    await sleep(3000);
    const rows = (await client.query<{ server: string; mid: string }>('select mail_server_id as server, message_id as mid from inbound_messages')).rows;
    const seen = new Set<string>();
    for (const r of rows) {
      const k = ids.indexOf(r.server);
      if (r.mid !== `<many-b-${k}@sender.example>`) throw new Error(`server ${r.server} imported ${r.mid}, not its mailbox's message`);
      if (seen.has(r.mid)) throw new Error(`${r.mid} imported twice`);
      seen.add(r.mid);
    }
    if (rows.length !== N) throw new Error(`${rows.length} rows for ${N} messages`);
    cluster = { spread, seconds, imported: rows.length };
    await Promise.all(procs.map((p) => p.stop()));
    await client.end();
  }

  header('Results');
  const mbPerMailbox = (rss1 - rss0) / N;
  table([
    ...(a ? [{ measure: `(a) 1 message from each of ${N} mailboxes, until all delivered`, value: `${a.manySeconds.toFixed(1)} s`, baseline: `${N} from one unpaced mailbox: ${a.oneSeconds.toFixed(1)} s`, ratio: `${(a.manySeconds / a.oneSeconds).toFixed(2)}×`, target: '≤ 1.5×', verdict: verdict(a.manySeconds / a.oneSeconds, 1.5, false) }] : []),
    ...(a ? [{ measure: `    the peers' own floor: the same ${N} sessions from a bare SMTP client`, value: `${a.bareSeconds.toFixed(1)} s`, baseline: `one mailbox: ${a.oneSeconds.toFixed(1)} s`, ratio: `${(a.bareSeconds / a.oneSeconds).toFixed(2)}× (Mailroom ${(a.manySeconds / a.bareSeconds).toFixed(2)}× the floor)`, target: '', verdict: '' }] : []),
    ...(b ? [{ measure: `(b) delivery → webhook, ${N} watched (deliveries took ${b.deliverSeconds.toFixed(1)} s)`, value: `p50 ${pct(b.latencies, 50).toFixed(2)} s, p99 ${pct(b.latencies, 99).toFixed(2)} s`, baseline: '', ratio: '', target: 'p99 ≤ 5 s', verdict: verdict(pct(b.latencies, 99), 5, false) }] : []),
    { measure: `(c) RSS, 0 → ${N} watched mailboxes`, value: `${rss0.toFixed(0)} → ${rss1.toFixed(0)} MB`, baseline: '', ratio: `${mbPerMailbox.toFixed(3)} MB/mailbox`, target: '≤ 0.3 MB', verdict: verdict(mbPerMailbox, 0.3, false) },
    ...(d ? [{ measure: `(d) delivery rate during ${BURST} POSTs`, value: `${d.rateDuring.toFixed(0)} msgs/s`, baseline: `after them: ${d.rateAfter.toFixed(0)} msgs/s`, ratio: `${(d.rateDuring / d.rateAfter).toFixed(2)}×`, target: '≥ 0.7×', verdict: verdict(d.rateDuring / d.rateAfter, 0.7) }] : []),
    { measure: `GET /api/v1/health/servers, ${2 * N + 1} servers`, value: `median ${pct(healthMs, 50).toFixed(0)} ms`, baseline: '', ratio: '', target: '< 1 s', verdict: verdict(pct(healthMs, 50), 1000, false) },
    ...(cluster ? [{ measure: `${N} mailboxes over ${PROCESSES} PostgreSQL instances`, value: cluster.spread.join(' / '), baseline: `all imported in ${cluster.seconds.toFixed(1)} s`, ratio: '', target: `${Math.ceil(N / PROCESSES)}/${Math.floor(N / PROCESSES)}…, each once`, verdict: `${cluster.imported} imported, each once` }] : []),
  ]);
});
