// Inbound ingest: throughput and peak memory of fetching a mailbox over IMAP (XOAUTH2) into Mailroom,
// against the same peers the end-to-end tests use (Microsoft-shaped OAuth server, Dovecot 2.3 IMAP
// checking tokens by introspection). Not part of `npm test`.
//
//   node --import tsx bench/inbound-ingest.ts
//
// 1. Throughput. N realistic messages (2-50 KB, Microsoft 365-shaped headers, plain / alternative /
//    with attachments) are put into one Dovecot Maildir. A sample is delivered with dovecot-lda (one
//    process per message) to time that way of doing it; the rest are written straight into
//    Maildir/cur/ with Dovecot's file names (S= and W= sizes), owned by the mail user, and Dovecot
//    indexes them (`doveadm mailbox status`) before anything is timed. Then, against that mailbox:
//      raw fetch     imapflow, one connection, UID FETCH 1:* BODY.PEEK[] (fetch source: true), every
//                    message's full source received and dropped: the fastest raw way;
//      raw download  imapflow, download() per UID, one after another (one round trip per message);
//      Mailroom      a Mailroom child process with an incoming server for that mailbox (afterFetch
//                    'leave', interval 1440 min), POST /fetch, polled until importedCount = N: login,
//                    envelopes, then streamed UID FETCHes, parsing on a parse thread, one SQLite
//                    transaction per batch of 100 with the raw messages.
//    raw fetch runs again after Mailroom, so Dovecot's caches favour neither side. After that the
//    steps Mailroom runs per message are replayed in this process without IMAP (mailparser, the SQLite
//    work of the import) and, with the raw fetch's CPU, give the CPU ceiling of any import here.
//    Then the raw fetch and Mailroom again through shaped links (BENCH_LINK_RTT_MS, BENCH_LINK_MBIT).
// 2. Peak memory. Fresh mailboxes of BENCH_BIG_COUNT messages of BENCH_BIG_MB MB (and of a quarter
//    of that size, to see whether memory follows message size), each with a large base64 attachment;
//    a fresh Mailroom process per mailbox. Its VmRSS is sampled every 50 ms (and VmHWM, reset through
//    /proc/PID/clear_refs before the fetch) and compared with its idle RSS just before the fetch. The
//    same is measured in fresh child processes doing only imapflow download() or only storeAndParse(),
//    to tell where memory goes.
//
// Env: BENCH_N (5000), BENCH_LDA_SAMPLE (25 messages delivered with dovecot-lda), BENCH_BIG_MB (20),
// BENCH_BIG_COUNT (5), BENCH_SKIP_THROUGHPUT=1 / BENCH_SKIP_MEMORY=1 / BENCH_SKIP_LINK=1,
// BENCH_LINK_RTT_MS (20), BENCH_LINK_MBIT (50,100,200,400), BENCH_TIME_LIMIT_S (900), BENCH_SEED (1),
// BENCH_NODE_ARGS (node options for Mailroom, e.g. --cpu-prof), INBOUND_PARSE_THREADS (passed on). Everything listens on and talks to 127.0.0.1; peers, Mailroom processes and temp
// directories are removed on every way out (end, error, time limit, Ctrl-C).
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, createReadStream, existsSync, fsyncSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { MailParser } from 'mailparser';
import { type ParsedMessage, parseMessage, storeRaw } from '../src/inbound/parse-message.ts';
import { openDatabase } from '../src/storage/database.ts';
import { importInboundMessages } from '../src/storage/inbound-store.ts';
import { insertMailServer } from '../src/storage/mail-server-store.ts';
import { findOutboxIdsByMessageIds } from '../src/storage/outbox-store.ts';
import { storeTokens } from '../test/helpers/connect-directly.ts';
import { getToken, type TokenResponse } from '../test/peers/get-token.ts';
import { type Peers, startPeers } from '../test/peers/index.ts';
import { startTcpProxy } from '../test/peers/tcp-proxy.ts';
import { type CpuReport, cpuMeter, createApiKey, envNumber, onCleanup, runBenchmark, sleep, startMailroom as startMailroomChild, tempDir } from './lib.ts';
import { b64lines, createIncoming, doveadmCount, ensureMaildir, type ImapAccess, m365Headers, makeMessage, paragraphs, prng, qp, rawClient, rawFetchAll, type RawResult, writeMaildirMessage } from './peers.ts';

const execFileAsync = promisify(execFile);
const SELF = fileURLToPath(import.meta.url);

const N = Math.round(envNumber('BENCH_N', 5000));
const LDA_SAMPLE = Math.min(N, Math.round(envNumber('BENCH_LDA_SAMPLE', 25)));
const BIG_MB = envNumber('BENCH_BIG_MB', 20);
const BIG_COUNT = Math.round(envNumber('BENCH_BIG_COUNT', 5));
const TIME_LIMIT_S = envNumber('BENCH_TIME_LIMIT_S', 900);
const SEED = Math.round(envNumber('BENCH_SEED', 1));
const TARGET_RATIO = 0.7;

const CLIENT_ID = '5d1f0c2e-8a3b-4c7d-9e6f-1a2b3c4d5e6f';
const CLIENT_SECRET = 'Qx8Q~inbound.Bench-Secret_Value~0123456789';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const MAILBOX = 'ingest@example.test';

const MiB = 1024 * 1024;
const mb = (bytes: number) => `${(bytes / MiB).toFixed(1)} MB`;
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

// ------------------------------------------------------------------------------------------------
// Cleanup: every step runs on every way out, in reverse order; `sync` is the last resort at exit.

function procStatus(pid: number | 'self'): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}
/** Resets VmHWM to the current RSS (Linux ≥ 4.0, needs to own the process or be root). */
function resetHwm(pid: number | 'self'): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}
/** Samples VmRSS every `ms`; stop() gives the highest value seen. */
function rssSampler(pid: number | 'self', ms = 50) {
  let max = 0;
  const take = () => {
    try {
      max = Math.max(max, procStatus(pid).rss);
    } catch {
      // process gone
    }
  };
  take();
  const t = setInterval(take, ms);
  return {
    stop: () => {
      clearInterval(t);
      take();
      return max;
    },
  };
}

// ------------------------------------------------------------------------------------------------
// Large messages (the realistic ones are made by bench/peers.ts)

/** A message of about `bytes` bytes, nearly all of it one base64 attachment (a scanned PDF, say). */
function bigMessage(i: number, bytes: number, user: string): Buffer {
  const date = new Date(Date.UTC(2026, 10, 28, 9, i));
  const r = prng(1000 + i);
  const head = [
    ...m365Headers(r, i, date, true, true, user),
    'Content-Type: multipart/mixed; boundary="_big_mixed_"',
    '',
    '--_big_mixed_',
    'Content-Type: text/plain; charset="utf-8"',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    qp(paragraphs(r, 2000).join('\n\n')),
    '',
    '--_big_mixed_',
    `Content-Type: application/pdf; name="scan_${i}.pdf"`,
    `Content-Disposition: attachment; filename="scan_${i}.pdf"`,
    'Content-Transfer-Encoding: base64',
    '',
    '',
  ].join('\n');
  const tail = '\n--_big_mixed_--\n';
  const room = bytes - Buffer.byteLength(head) - tail.length;
  const bin = randomBytes(Math.floor((room * 76) / 77 / 4) * 3);
  return Buffer.concat([Buffer.from(head), Buffer.from(b64lines(bin)), Buffer.from(tail)]);
}

// ------------------------------------------------------------------------------------------------
// Tokens, per-UID download

function token(peers: Peers, login: string): Promise<TokenResponse> {
  return getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login });
}

/** Connect + login + SELECT + UID SEARCH, then download() per UID, one after another, streams drained. */
async function rawDownloadEach(a: ImapAccess): Promise<RawResult> {
  const cpu = cpuMeter();
  const t0 = performance.now();
  const c = await rawClient(a);
  let messages = 0;
  let bytes = 0;
  try {
    const lock = await c.getMailboxLock('INBOX');
    try {
      const uids = (await c.search({ all: true }, { uid: true })) || [];
      for (const uid of uids) {
        const dl = await c.download(String(uid), undefined, { uid: true });
        if (!dl.content) continue;
        for await (const chunk of dl.content) bytes += (chunk as Buffer).length;
        messages++;
      }
    } finally {
      lock.release();
    }
  } finally {
    await c.logout().catch(() => c.close());
  }
  return { messages, bytes, ms: performance.now() - t0, cpu: cpu() };
}

// ------------------------------------------------------------------------------------------------
// Mailroom as a child process (bench/lib.ts's startMailroom, as `npm start` runs it)

interface Mailroom {
  pid: number;
  baseUrl: string;
  dataDir: string;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }>;
  stop(): Promise<void>;
  logTail(): string;
}

/**
 * `mailroom serve` builds the web UI first when web/src is newer than web/dist (as it is while the UI
 * is being edited): that Vite build leaves the process at several hundred MB, which would be its
 * "idle" RSS here. Such a process is stopped and a second one started (the UI is then up to date).
 */
async function startMailroom(peers: Peers): Promise<Mailroom> {
  for (let attempt = 1; ; attempt++) {
    const mr = await startMailroomOnce(peers);
    if (!mr.builtUi) return mr;
    console.log(`(Mailroom built the web UI at start (web/src newer than web/dist); restarting it so its idle RSS is a normal start's)`);
    await mr.stop();
    if (attempt === 3) throw new Error('Mailroom rebuilt the web UI at every start: is someone editing web/src continuously?');
  }
}

async function startMailroomOnce(peers: Peers): Promise<Mailroom & { builtUi: boolean }> {
  const mr = await startMailroomChild(
    {
      MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost,
      NODE_EXTRA_CA_CERTS: peers.caFile,
      ...(process.env.INBOUND_PARSE_THREADS !== undefined && { INBOUND_PARSE_THREADS: process.env.INBOUND_PARSE_THREADS }),
    },
    // e.g. BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile Mailroom
    { nodeArgs: (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean) },
  );
  const key = await createApiKey(mr);
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${mr.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await r.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: r.status, json };
  };
  return {
    pid: mr.pid,
    baseUrl: mr.baseUrl,
    dataDir: mr.dataDir,
    api,
    logTail: () => mr.logTail(),
    builtUi: readFileSync(mr.logFile, 'utf8').includes('Building the web UI'),
    stop: () => mr.stop(),
  };
}

interface Progress {
  ms: number;
  fetched: number;
  total: number | null;
  imported: number;
}

/**
 * Stores the tokens (as a finished "Connect" would), asks for Fetch Now and polls the server until
 * `expected` messages are imported and the fetch has ended. With tokens in place the scheduler may
 * start the same fetch on its own a moment earlier: then the POST answers 409 and the clock, started
 * before the tokens were stored, still covers it.
 */
async function mailroomFetch(mr: Mailroom, peers: Peers, serverId: string, user: string, t: TokenResponse, expected: number, pollMs: number) {
  const progress: Progress[] = [];
  const t0 = performance.now();
  storeTokens(mr.dataDir, serverId, user, t, peers.authServer.tenantId);
  const post = await mr.api('POST', `/api/v1/incoming-servers/${serverId}/fetch`);
  if (post.status !== 202 && post.status !== 409) throw new Error(`Fetch Now: HTTP ${post.status} ${JSON.stringify(post.json)}`);
  for (;;) {
    const s = (await mr.api('GET', `/api/v1/incoming-servers/${serverId}`)).json;
    const ms = performance.now() - t0;
    progress.push({ ms, fetched: s.fetch?.fetched ?? 0, total: s.fetch?.total ?? null, imported: s.importedCount });
    if (s.fetch?.error) throw new Error(`Mailroom fetch failed: ${JSON.stringify(s.fetch.error)}\n${mr.logTail()}`);
    if (!s.fetch?.running && s.importedCount >= expected) return { ms, progress, startedBy: post.status === 202 ? 'Fetch Now' : 'the scheduler' };
    if (!s.fetch?.running && s.fetch?.finishedAt && s.importedCount < expected) {
      throw new Error(`Mailroom fetch ended with ${s.importedCount}/${expected} imported: ${JSON.stringify(s.fetch)}\n${mr.logTail()}`);
    }
    await sleep(pollMs);
  }
}

// ------------------------------------------------------------------------------------------------
// Part 1: throughput

async function throughput(peers: Peers): Promise<void> {
  console.log(`\n## 1. Ingest throughput: ${N} messages`);
  const r = prng(SEED);
  const t0 = Date.UTC(2026, 9, 1, 8, 0, 0);
  const gen0 = performance.now();
  const messages = Array.from({ length: N }, (_, i) => makeMessage(r, i + 1, new Date(t0 + i * 37_000), MAILBOX));
  const genMs = performance.now() - gen0;
  const sizes = messages.map((m) => m.raw.length).sort((a, b) => a - b);
  const totalBytes = sizes.reduce((a, b) => a + b, 0);
  const withAttach = messages.filter((m) => m.attachments > 0).length;
  console.log(
    `messages: ${N}, ${mb(totalBytes)} (LF line ends as stored), sizes min ${(sizes[0]! / 1024).toFixed(1)} KB / median ${(sizes[N >> 1]! / 1024).toFixed(1)} KB / ` +
      `mean ${(totalBytes / N / 1024).toFixed(1)} KB / max ${(sizes[N - 1]! / 1024).toFixed(1)} KB; ${withAttach} (${((100 * withAttach) / N).toFixed(0)} %) with attachments; generated in ${secs(genMs)}`,
  );

  // Setup (not timed against anything): a sample with dovecot-lda, the rest as Maildir files.
  const lda0 = performance.now();
  for (let i = 0; i < LDA_SAMPLE; i++) await peers.dovecot.deliver(MAILBOX, messages[i]!.raw);
  const ldaMs = performance.now() - lda0;
  const box = ensureMaildir(peers, MAILBOX);
  const ldaFiles = readdirSync(join(box.dir, 'new')).length + readdirSync(join(box.dir, 'cur')).length;
  if (ldaFiles !== LDA_SAMPLE) throw new Error(`dovecot-lda left ${ldaFiles} files in ${box.dir}, expected ${LDA_SAMPLE}`);
  const w0 = performance.now();
  for (let i = LDA_SAMPLE; i < N; i++) writeMaildirMessage(box, messages[i]!.raw, new Date(t0 + i * 37_000));
  const writeMs = performance.now() - w0;
  const ix0 = performance.now();
  const count = await doveadmCount(peers, MAILBOX);
  const indexMs = performance.now() - ix0;
  if (count !== N) throw new Error(`Dovecot sees ${count} messages in INBOX, expected ${N}`);
  const perLda = ldaMs / LDA_SAMPLE;
  console.log(
    `setup (not timed): dovecot-lda ${perLda.toFixed(1)} ms/message for ${LDA_SAMPLE} (all ${N} that way: ~${secs(perLda * N)}); ` +
      `${N - LDA_SAMPLE} written into Maildir/cur in ${secs(writeMs)}; Dovecot indexed ${count} messages in ${secs(indexMs)}`,
  );

  const t = await token(peers, MAILBOX);
  const access: ImapAccess = { port: peers.dovecot.imapsPort, ca: peers.ca.caPem, user: MAILBOX, accessToken: t.access_token };

  // Dovecot's first pass over new Maildir files is much slower than any later one (it fills its
  // caches): one untimed pass first, so every timed run meets the same warm Dovecot.
  const warm = await rawFetchAll(access);
  console.log(`warm-up (not timed): raw fetch of all ${warm.messages} messages in ${secs(warm.ms)} (${(N / (warm.ms / 1000)).toFixed(0)} msg/s)`);
  await longUidListProbe(access);

  const load: number[] = [];
  const fetch1 = (load.push(loadavg()[0]!), await rawFetchAll(access));
  if (fetch1.messages !== N) throw new Error(`raw fetch got ${fetch1.messages}/${N}`);
  load.push(loadavg()[0]!);
  const download = await rawDownloadEach(access);
  if (download.messages !== N) throw new Error(`raw download got ${download.messages}/${N}`);

  const mr = await startMailroom(peers);
  const serverId = await createIncoming(mr.api, MAILBOX, { imapPort: peers.dovecot.imapsPort, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
  load.push(loadavg()[0]!);
  const cpu = cpuMeter(mr.pid);
  const run = await mailroomFetch(mr, peers, serverId, MAILBOX, t, N, 200);
  const mrCpu = cpu();
  const rssAfter = procStatus(mr.pid);
  const dataBytes = dirBytes(join(mr.dataDir, 'inbound'));
  const dbBytes = ['mailroom.sqlite', 'mailroom.sqlite-wal'].reduce((n, f) => n + (existsSync(join(mr.dataDir, f)) ? statSync(join(mr.dataDir, f)).size : 0), 0);
  await mr.stop();

  load.push(loadavg()[0]!);
  const fetch2 = await rawFetchAll(access);
  if (fetch2.messages !== N) throw new Error(`raw fetch (again) got ${fetch2.messages}/${N}`);

  const rate = (ms: number) => N / (ms / 1000);
  const rows: Array<[string, RawResult | { ms: number; bytes: number; cpu: CpuReport }, string]> = [
    ['raw fetch (UID FETCH 1:* BODY[], 1st)', fetch1, 'this process'],
    ['raw download() per UID', download, 'this process'],
    ['Mailroom (fetch + parse + store)', { ms: run.ms, bytes: fetch1.bytes, cpu: mrCpu }, 'Mailroom'],
    ['raw fetch (UID FETCH 1:* BODY[], 2nd)', fetch2, 'this process'],
  ];
  console.log('');
  console.log(`${'run'.padEnd(40)}  ${'time'.padStart(9)}  ${'msg/s'.padStart(8)}  ${'MB/s'.padStart(7)}  load1  CPU`);
  for (const [k, [name, res, who]] of rows.entries()) {
    const c = res.cpu;
    const cpuCol = who === 'Mailroom' ? `Mailroom ${c.childCores.toFixed(2)}, bench ${c.selfCores.toFixed(2)}, other ${c.otherCores.toFixed(2)}` : `client ${c.selfCores.toFixed(2)}, other ${c.otherCores.toFixed(2)}`;
    console.log(`${name.padEnd(40)}  ${secs(res.ms).padStart(9)}  ${rate(res.ms).toFixed(0).padStart(8)}  ${(res.bytes / MiB / (res.ms / 1000)).toFixed(1).padStart(7)}  ${load[k]!.toFixed(2).padStart(5)}  ${cpuCol}`);
  }
  console.log('(load1: the 1-minute load average as the run started; other processes on this machine share its cores)');
  const best = Math.max(rate(fetch1.ms), rate(fetch2.ms), rate(download.ms));
  const bestName = best === rate(download.ms) ? 'raw download()' : 'raw fetch 1:*';
  const ratio = rate(run.ms) / best;
  console.log(
    `\nMailroom/raw = ${ratio.toFixed(2)} (Mailroom ${rate(run.ms).toFixed(0)} msg/s vs fastest raw, ${bestName}, ${best.toFixed(0)} msg/s; target ≥ ${TARGET_RATIO}: ${ratio >= TARGET_RATIO ? 'met' : `MISSED by ${((1 - ratio / TARGET_RATIO) * 100).toFixed(0)} %`})`,
  );
  console.log(`Mailroom/raw download() per UID (one round trip per message) = ${(rate(run.ms) / rate(download.ms)).toFixed(2)}`);
  console.log(`Mailroom fetch started by ${run.startedBy}; after it: RSS ${mb(rssAfter.rss)}, peak ${mb(rssAfter.hwm)}; database ${mb(dbBytes)} (with its WAL: raw MIME, text and HTML of each message), ${mb(dataBytes)} of .eml files in DATA_DIR/inbound (messages over 512 KB)`);

  // Time split from the progress the server reports (polled every 200 ms).
  const p = run.progress;
  const firstTotal = p.find((x) => x.total !== null && x.total > 0);
  if (firstTotal) {
    console.log(`Mailroom time split (from polled progress): login + SELECT + UID SEARCH + envelope FETCH of ${N} ≤ ${secs(firstTotal.ms)}; per-message loop ${secs(run.ms - firstTotal.ms)} (${(N / ((run.ms - firstTotal.ms) / 1000)).toFixed(0)} msg/s, ${((run.ms - firstTotal.ms) / N).toFixed(2)} ms/message)`);
    const marks = [0.25, 0.5, 0.75, 1].map((f) => p.find((x) => x.imported >= f * N)!);
    let prev = { ms: firstTotal.ms, imported: 0 };
    const parts = marks.map((m) => {
      const s = `${prev.imported}-${m.imported}: ${((m.imported - prev.imported) / ((m.ms - prev.ms) / 1000)).toFixed(0)} msg/s`;
      prev = m;
      return s;
    });
    console.log(`Mailroom import rate by quarter: ${parts.join(', ')}`);
  }

  // Replay of Mailroom's per-message steps in this process, without IMAP (CRLF, as IMAP delivers).
  console.log('\nPer-message steps of Mailroom replayed in this process without IMAP (same messages, CRLF):');
  const crlf = messages.map((m) => Buffer.from(m.raw.toString('latin1').replace(/\n/g, '\r\n'), 'latin1'));
  messages.length = 0;
  const stream = (b: Buffer) => Readable.from([b], { objectMode: false });
  const parse0 = performance.now();
  for (const b of crlf) await parseOnly(stream(b));
  const parseMs = performance.now() - parse0;
  const parsed: ParsedMessage[] = [];
  const lean0 = performance.now();
  for (const b of crlf) parsed.push(await parseMessage(b));
  const leanMs = performance.now() - lean0;
  const dir = tempDir('mailroom-bench-replay-');
  const { db, close } = await openDatabase(`sqlite:${join(dir, 'replay.sqlite')}`);
  const serverIdReplay = randomUUID();
  await insertMailServer(
    db,
    serverIdReplay,
    {
      name: 'Replay',
      authType: 'outlook_oauth',
      username: MAILBOX,
      clientId: CLIENT_ID,
      clientSecretSealed: null,
      clientSecretExpiresAt: null,
      tenant: 'common',
      smtpHost: '',
      smtpPort: 0,
      smtpSecurity: 'tls',
      priority: 0,
      fromFilter: null,
      active: true,
      lastError: null,
      direction: 'incoming',
      imap: { host: '127.0.0.1', port: 993, security: 'tls', folder: 'INBOX', afterFetch: 'leave', moveToFolder: null, intervalMinutes: 1440 },
      tokenSourceId: null,
    },
    new Date(),
  );
  const db0 = performance.now();
  for (let k = 0; k < parsed.length; k += 100) {
    const part = parsed.slice(k, k + 100);
    const links = await findOutboxIdsByMessageIds(db, part.map((m) => [m.inReplyTo, ...m.references].filter((x): x is string => !!x)));
    const rows = part.map(({ sha256, ...fields }, j) => ({
      ...fields,
      id: randomUUID(),
      serverId: serverIdReplay,
      folder: 'INBOX',
      uidValidity: '1',
      uid: k + j + 1,
      dedupeKey: fields.messageId ?? `sha256:${sha256}`,
      raw: { mime: crlf[k + j]! },
      outboxMessageId: links[j] ?? null,
      afterFetchPending: false,
    }));
    await importInboundMessages(db, { serverId: serverIdReplay, folder: 'INBOX', uidValidity: '1', lastUid: k + part.length }, rows, [], randomUUID, new Date());
  }
  const dbMs = performance.now() - db0;
  await close();
  const perMsg = (ms: number) => `${(ms / N).toFixed(2)} ms/message (${(N / (ms / 1000)).toFixed(0)} msg/s)`;
  const loopMs = firstTotal ? run.ms - firstTotal.ms : run.ms;
  console.log(`  mailparser, default options (attachments drained): ${perMsg(parseMs)}`);
  console.log(`  parseMessage (mailparser without textAsHtml/links): ${perMsg(leanMs)} (Mailroom's parse, on the parse threads)`);
  console.log(`  SQLite: reply links + import tx per 100, raw in DB: ${perMsg(dbMs)}`);
  console.log(`  sum ${((leanMs + dbMs) / N).toFixed(2)} ms/message on one thread vs Mailroom's per-message loop ${(loopMs / N).toFixed(2)} ms/message`);
  // The least CPU any import of these messages needs here: serving and reading them over IMAP (the
  // CPU of the cheaper raw fetch: client + Dovecot + kernel), plus Mailroom's parse and its SQLite
  // work (replayed above). With every core busy on nothing else, this is the fastest possible import.
  const fetchCpuMs = Math.min(...[fetch1, fetch2].map((f) => ((f.cpu.selfCores + f.cpu.otherCores) * f.ms) / N));
  const needMs = fetchCpuMs + leanMs / N + dbMs / N;
  const cores = cpus().length;
  const ceiling = (cores / needMs) * 1000;
  console.log(
    `  CPU a message needs: IMAP fetch ${fetchCpuMs.toFixed(2)} ms (client + Dovecot, from the raw fetch) + parse ${(leanMs / N).toFixed(2)} ms + SQLite ${(dbMs / N).toFixed(2)} ms = ${needMs.toFixed(2)} ms`,
  );
  console.log(
    `  ceiling with all ${cores} cores busy and nothing wasted: ${ceiling.toFixed(0)} msg/s = ${(ceiling / best).toFixed(2)}× the fastest raw; ${TARGET_RATIO}× (${(TARGET_RATIO * best).toFixed(0)} msg/s) would need ${((TARGET_RATIO * best * needMs) / 1000).toFixed(1)} cores`,
  );
  const fsyncMs = fsyncCost(dir, 300);
  console.log(`  for scale: one small file write + fsync on this disk (${tmpdir()}): ${fsyncMs.toFixed(2)} ms; Mailroom syncs once per chunk of up to 100 messages (the SQLite commit)`);
  if (!process.env.BENCH_SKIP_LINK) await linkRuns(peers, access, t);
}

// ------------------------------------------------------------------------------------------------
// Part 1b: the same over a link with Internet-like delay and bandwidth

const LINK_RTT_MS = envNumber('BENCH_LINK_RTT_MS', 20);
const LINK_MBIT = (process.env.BENCH_LINK_MBIT ?? '50,100,200,400').split(',').map(Number).filter((x) => x > 0);

/**
 * A TCP forwarder on 127.0.0.1 that delays each direction by half the round-trip time and lets
 * `mbit` Mbit/s through it, in order; it stops reading from a side while more than two
 * bandwidth-delay products wait, as TCP's window would.
 */
async function startShapedLink(targetPort: number, rttMs: number, mbit: number): Promise<{ port: number; close(): Promise<void> }> {
  const bytesPerMs = (mbit * 1e6) / 8 / 1000;
  const high = Math.max(256 * 1024, 2 * bytesPerMs * rttMs);
  const shape = (from: Socket, to: Socket) => {
    const queue: Array<{ at: number; chunk: Buffer }> = [];
    let queued = 0;
    let free = 0;
    let ended = false;
    let timer: NodeJS.Timeout | undefined;
    const pump = () => {
      timer = undefined;
      const now = performance.now();
      while (queue.length && queue[0]!.at <= now) {
        const { chunk } = queue.shift()!;
        queued -= chunk.length;
        if (!to.destroyed) to.write(chunk);
      }
      if (queued < high / 2 && from.isPaused()) from.resume();
      if (queue.length) timer = setTimeout(pump, Math.max(0, queue[0]!.at - now));
      else if (ended && !to.destroyed) to.end();
    };
    from.on('data', (chunk: Buffer) => {
      const now = performance.now();
      free = Math.max(now, free) + chunk.length / bytesPerMs;
      queue.push({ at: free + rttMs / 2, chunk });
      queued += chunk.length;
      if (queued > high) from.pause();
      if (!timer) timer = setTimeout(pump, Math.max(0, free + rttMs / 2 - now));
    });
    from.on('end', () => {
      ended = true;
      if (!timer && !queue.length && !to.destroyed) to.end();
    });
  };
  const proxy = await startTcpProxy(targetPort, (client, upstream) => {
    shape(client, upstream);
    shape(upstream, client);
  });
  onCleanup('link forwarder', () => proxy.close());
  return proxy;
}

/**
 * The raw fetch and Mailroom against the same mailbox through links of LINK_RTT_MS round trip and
 * each bandwidth in LINK_MBIT: where the link, not the CPU, is what limits a fetch (as with a mail
 * service across the Internet), parsing and storing run beside the transfer.
 */
async function linkRuns(peers: Peers, access: ImapAccess, t: TokenResponse): Promise<void> {
  console.log(`\nThe same ${N} messages through a shaped link (${LINK_RTT_MS} ms round trip; each direction limited to the bandwidth):`);
  console.log(`${'link'.padEnd(22)}  ${'raw fetch 1:*'.padStart(14)}  ${'Mailroom'.padStart(14)}  Mailroom/raw`);
  for (const mbit of LINK_MBIT) {
    const link = await startShapedLink(peers.dovecot.imapsPort, LINK_RTT_MS, mbit);
    try {
      const raw = await rawFetchAll({ ...access, port: link.port });
      if (raw.messages !== N) throw new Error(`raw fetch through the link got ${raw.messages}/${N}`);
      const mr = await startMailroom(peers);
      try {
        const serverId = await createIncoming(mr.api, MAILBOX, { imapPort: link.port, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
        const run = await mailroomFetch(mr, peers, serverId, MAILBOX, t, N, 200);
        const rawRate = N / (raw.ms / 1000);
        const mrRate = N / (run.ms / 1000);
        const ratio = mrRate / rawRate;
        console.log(
          `${`${mbit} Mbit/s, ${LINK_RTT_MS} ms`.padEnd(22)}  ${`${rawRate.toFixed(0)} msg/s`.padStart(14)}  ${`${mrRate.toFixed(0)} msg/s`.padStart(14)}  ${ratio.toFixed(2)} (${ratio >= TARGET_RATIO ? 'met' : 'missed'})`,
        );
      } finally {
        await mr.stop();
      }
    } finally {
      await link.close();
    }
  }
}

async function parseOnly(source: Readable, extra: Record<string, boolean> = {}): Promise<void> {
  const parser = new MailParser({ skipImageLinks: true, ...extra } as ConstructorParameters<typeof MailParser>[0]);
  parser.on('data', (d: { type: string; content?: Readable; release?: () => void }) => {
    if (d.type === 'attachment') {
      d.content!.on('end', () => d.release?.());
      d.content!.resume();
    }
  });
  await new Promise<void>((resolve, reject) => {
    parser.on('end', () => resolve());
    parser.on('error', reject);
    source.pipe(parser);
  });
}

/** Mean ms of writing a 4 KB file with fsync (as createWriteStream's flush: true does at close). */
function fsyncCost(dir: string, times: number): number {
  const data = Buffer.alloc(4096, 120);
  const t0 = performance.now();
  for (let i = 0; i < times; i++) {
    const fd = openSync(join(dir, `fsync-${i}.tmp`), 'w');
    writeSync(fd, data);
    fsyncSync(fd);
    closeSync(fd);
  }
  return (performance.now() - t0) / times;
}

/**
 * Mailroom asks for the envelopes of all new UIDs in one UID FETCH with the UIDs joined by commas,
 * not packed into ranges: does Dovecot (imap_max_line_length 64 KB by default) take such a command
 * for 15,000 new messages (~79 KB)? UIDs past the end are fine in a UID FETCH; only the length counts.
 */
async function longUidListProbe(a: ImapAccess): Promise<void> {
  for (const count of [N, 15_000]) {
    const list = Array.from({ length: count }, (_, i) => i + 1).join(',');
    const c = await rawClient(a);
    try {
      const lock = await c.getMailboxLock('INBOX');
      try {
        let got = 0;
        for await (const _m of c.fetch(list, { uid: true, envelope: true }, { uid: true })) got++;
        console.log(`probe: UID FETCH of ${count} comma-joined UIDs (${(list.length / 1024).toFixed(0)} KB command, as fetchNew sent it before it used UID ranges): OK, ${got} envelopes`);
      } finally {
        lock.release();
      }
    } catch (e) {
      const err = e as { message?: string; responseText?: string; response?: string };
      console.log(`probe: UID FETCH of ${count} comma-joined UIDs (${(list.length / 1024).toFixed(0)} KB command, as fetchNew sent it before it used UID ranges): FAILED: ${err.responseText ?? err.response ?? err.message}`);
    } finally {
      await c.logout().catch(() => c.close());
    }
  }
}

function dirBytes(dir: string): number {
  let total = 0;
  if (!existsSync(dir)) return 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += statSync(join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).size;
  }
  return total;
}

// ------------------------------------------------------------------------------------------------
// Part 2: peak memory with large messages

interface ChildMemory {
  idle: number;
  peak: number;
  hwmReset: boolean;
  ms: number;
  messages: number;
  bytes: number;
}

/** A fresh process (this file, --child MODE) doing only one step over the big mailbox, its memory measured by itself. */
async function childMemory(mode: 'download' | 'parse', env: Record<string, string>): Promise<ChildMemory> {
  const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', SELF, '--child', mode], {
    env: { ...process.env, ...env },
    maxBuffer: 1 << 20,
    timeout: 300_000,
  });
  const line = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as ChildMemory;
}

async function childMain(mode: string): Promise<void> {
  const before = () => {
    const idle = procStatus('self').rss;
    const hwmReset = resetHwm('self');
    return { idle, hwmReset, sampler: rssSampler('self'), t0: performance.now() };
  };
  const after = (b: ReturnType<typeof before>, messages: number, bytes: number): ChildMemory => {
    const sampled = b.sampler.stop();
    const st = procStatus('self');
    return { idle: b.idle, peak: b.hwmReset ? Math.max(st.hwm, sampled) : sampled, hwmReset: b.hwmReset, ms: performance.now() - b.t0, messages, bytes };
  };
  if (mode === 'download') {
    const a: ImapAccess = { port: Number(process.env.BENCH_CHILD_PORT), ca: readFileSync(process.env.BENCH_CHILD_CA!, 'utf8'), user: process.env.BENCH_CHILD_USER!, accessToken: process.env.BENCH_CHILD_TOKEN! };
    const c = await rawClient(a);
    const lock = await c.getMailboxLock('INBOX');
    const uids = (await c.search({ all: true }, { uid: true })) || [];
    const b = before();
    let bytes = 0;
    for (const uid of uids) {
      const dl = await c.download(String(uid), undefined, { uid: true });
      if (dl.content) {
        // drained into a sink the way storeAndParse's file stream drains it
        await pipeline(dl.content, new Writable({ write: (chunk: Buffer, _e, cb) => ((bytes += chunk.length), cb()) }));
      }
    }
    const res = after(b, uids.length, bytes);
    lock.release();
    await c.logout().catch(() => c.close());
    console.log(JSON.stringify(res));
  } else if (mode === 'parse') {
    const files = readdirSync(process.env.BENCH_CHILD_DIR!).map((f) => join(process.env.BENCH_CHILD_DIR!, f));
    const out = mkdtempSync(join(tmpdir(), 'mailroom-bench-child-'));
    try {
      const b = before();
      let bytes = 0;
      for (const [k, f] of files.entries()) bytes += (await storeRaw(createReadStream(f, { highWaterMark: 64 * 1024 }), { db: undefined as never, dataDir: out, rawInDatabase: false }, 'bench', `m${k}`)).sizeBytes;
      console.log(JSON.stringify(after(b, files.length, bytes)));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  } else {
    throw new Error(`unknown child mode ${mode}`);
  }
}

async function memoryRun(peers: Peers, user: string, sizeBytes: number): Promise<void> {
  const box = ensureMaildir(peers, user);
  let actual = 0;
  for (let i = 0; i < BIG_COUNT; i++) {
    const raw = bigMessage(i + 1, sizeBytes, user);
    actual = raw.length;
    writeMaildirMessage(box, raw, new Date(Date.UTC(2026, 10, 28, 9, i)));
  }
  const count = await doveadmCount(peers, user);
  if (count !== BIG_COUNT) throw new Error(`Dovecot sees ${count} messages for ${user}, expected ${BIG_COUNT}`);
  const t = await token(peers, user);

  const mr = await startMailroom(peers);
  const serverId = await createIncoming(mr.api, user, { imapPort: peers.dovecot.imapsPort, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
  await sleep(3000); // let start-up garbage settle
  const startHwm = procStatus(mr.pid).hwm;
  const idle = procStatus(mr.pid).rss;
  const hwmReset = resetHwm(mr.pid);
  const sampler = rssSampler(mr.pid, 50);
  const run = await mailroomFetch(mr, peers, serverId, user, t, BIG_COUNT, 250);
  const sampled = sampler.stop();
  const st = procStatus(mr.pid);
  const peak = hwmReset ? Math.max(st.hwm, sampled) : sampled;
  await mr.stop();

  const dl = await childMemory('download', { BENCH_CHILD_PORT: String(peers.dovecot.imapsPort), BENCH_CHILD_CA: peers.caFile, BENCH_CHILD_USER: user, BENCH_CHILD_TOKEN: t.access_token });
  const ps = await childMemory('parse', { BENCH_CHILD_DIR: join(box.dir, 'cur') });

  const per = (peakB: number, idleB: number) => `${mb(peakB - idleB)} = ${((peakB - idleB) / actual).toFixed(2)} × message`;
  console.log(`\n${BIG_COUNT} messages of ${mb(actual)} (${user}), one at a time:`);
  console.log(
    `  Mailroom process:         idle ${mb(idle)} → peak ${mb(peak)} (${hwmReset ? 'VmHWM reset before the fetch + VmRSS every 50 ms' : 'VmRSS every 50 ms'}), growth ${per(peak, idle)}; ` +
      `RSS after ${mb(st.rss)}; start-up peak ${mb(startHwm)}; fetch ${secs(run.ms)} (${(((BIG_COUNT * actual) / MiB) / (run.ms / 1000)).toFixed(1)} MB/s)`,
  );
  console.log(`  imapflow download() only: idle ${mb(dl.idle)} → peak ${mb(dl.peak)}, growth ${per(dl.peak, dl.idle)}; ${secs(dl.ms)} (${((dl.bytes / MiB) / (dl.ms / 1000)).toFixed(1)} MB/s)`);
  console.log(`  storeAndParse() only:     idle ${mb(ps.idle)} → peak ${mb(ps.peak)}, growth ${per(ps.peak, ps.idle)}; ${secs(ps.ms)} from .eml files on disk`);
}

async function memory(peers: Peers): Promise<void> {
  console.log(`\n## 2. Peak memory with large messages`);
  const big = Math.round(BIG_MB * MiB);
  await memoryRun(peers, 'big-small@example.test', Math.round(big / 4));
  await memoryRun(peers, 'big@example.test', big);
}

// ------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const c = cpus();
  console.log(`# Mailroom inbound ingest benchmark`);
  console.log(`# ${new Date().toISOString()} · ${c.length} cores (${c[0]?.model ?? 'unknown cpu'}) · Node ${process.version} · ${process.platform} · tmp on ${tmpdir()}`);
  const p0 = performance.now();
  const peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  onCleanup('peers', () => peers.stop());
  console.log(`peers (OAuth server, Dovecot ${(await execFileAsync('dovecot', ['--version'])).stdout.trim()}) up in ${secs(performance.now() - p0)}`);
  if (!process.env.BENCH_SKIP_THROUGHPUT) await throughput(peers);
  if (!process.env.BENCH_SKIP_MEMORY) await memory(peers);
}

if (process.argv[2] === '--child') {
  childMain(process.argv[3] ?? '').then(
    () => process.exit(0),
    (e: unknown) => {
      console.error((e as Error)?.stack ?? String(e));
      process.exit(1);
    },
  );
} else {
  runBenchmark('inbound ingest', TIME_LIMIT_S, main);
}
