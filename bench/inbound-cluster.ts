// Inbound import of a cluster: N messages spread over M Dovecot mailboxes, imported by 1 and by 3
// Mailroom processes on one PostgreSQL database, beside 1 process on embedded SQLite, all in this run.
//
//   node --import tsx bench/inbound-cluster.ts [N]
//
// Setup, not timed: N realistic messages (2-50 KB, bench/peers.ts makeMessage) go round-robin into the
// Maildirs of M users, written the way bench/inbound-ingest.ts writes them; Dovecot indexes them and
// one raw fetch of every mailbox warms it up; one access token per user from the test OAuth server.
// Each row then gets a fresh database (PostgreSQL: test/helpers/postgres-db.ts createTestDatabase,
// dropped after the row; SQLite: a fresh DATA_DIR). One Mailroom process with INBOUND_WORKER=off
// creates the M incoming servers through the API (mail left on the server) and stops; the tokens are
// stored as a finished Connect would. Then the row's processes (`node bin/mailroom.js serve`, each its
// own DATA_DIR, the same MAILROOM_SECRET_KEY, OUTBOX_WORKER=off, INBOUND_WORKER=on) are spawned at once.
// Each one's scheduler ticks at start and every 5 s and takes the lease (`leases.mailbox:<id>`) of
// every mailbox that no other process holds. Timed from the spawn until N rows are in inbound_messages
// (the database polled every 100 ms); then which process held which mailbox (GET
// /api/v1/health/servers, fetchedBy) and that every Message-ID was imported exactly once, in its
// own mailbox's server.
//
// Env: BENCH_N (or the first argument, 5000), BENCH_MAILBOXES (10), BENCH_PROCESSES (3, the larger
// PostgreSQL row), BENCH_SEED (1), LOG_LEVEL (warn), BENCH_KEEP_LOGS=/dir. Needs the end-to-end peers
// (Dovecot, openssl) and PostgreSQL at 127.0.0.1:5432 (trust), as the tests do; run as root (the
// Maildir files belong to the mail user).
import SQLite from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { cpus, loadavg } from 'node:os';
import pg from 'pg';
import { storeTokens } from '../test/helpers/connect-directly.ts';
import { createTestDatabase, storeTokensPg } from '../test/helpers/postgres-db.ts';
import type { TokenResponse } from '../test/peers/get-token.ts';
import type { Peers } from '../test/peers/index.ts';
import { childProcesses, createApiKey, cpuMeter, type CpuReport, envNumber, header, httpClient, lifetimeCores, type MailroomChild, onCleanup, runBenchmark, sleep, startMailroom, table, treeMeter } from './lib.ts';
import { benchPeers, createIncoming, doveadmCount, ensureMaildir, fetchToken, makeMessage, prng, rawFetchAll, writeMaildirMessage } from './peers.ts';

const N = Math.round(Number(process.argv[2] ?? envNumber('BENCH_N', 5000)));
const MAILBOXES = Math.round(envNumber('BENCH_MAILBOXES', 10));
const PROCESSES = Math.round(envNumber('BENCH_PROCESSES', 3));
const SEED = Math.round(envNumber('BENCH_SEED', 1));
const LOG_LEVEL = process.env.LOG_LEVEL ?? 'warn';
const PHASE_TIMEOUT_MS = 60_000;

interface Mailbox {
  user: string;
  token: TokenResponse;
  /** Message-IDs of the messages put into it. */
  messageIds: Set<string>;
}

/** The rows' view of the database: progress and the exactly-once check. */
interface Imported {
  count(): Promise<number>;
  rows(): Promise<Array<{ serverId: string; messageId: string | null }>>;
  /** PostgreSQL: pids of the other connections to this database (the Mailroom processes' pools). */
  backends(): Promise<number[]>;
  close(): Promise<void>;
}

function sqliteImported(dataDir: string): Imported {
  const db = new SQLite(join(dataDir, 'mailroom.sqlite'), { readonly: true, fileMustExist: true });
  const unregister = onCleanup('sqlite reader', () => void db.close());
  const count = db.prepare('select count(*) as n from inbound_messages');
  const rows = db.prepare('select mail_server_id as serverId, message_id as messageId from inbound_messages');
  return {
    count: async () => (count.get() as { n: number }).n,
    rows: async () => rows.all() as Array<{ serverId: string; messageId: string | null }>,
    backends: async () => [],
    close: async () => {
      unregister();
      db.close();
    },
  };
}

async function postgresImported(url: string): Promise<Imported> {
  const c = new pg.Client(url);
  await c.connect();
  const close = onCleanup('postgres reader', () => c.end());
  return {
    count: async () => Number((await c.query<{ n: string }>('select count(*) as n from inbound_messages')).rows[0]!.n),
    rows: async () => (await c.query<{ serverId: string; messageId: string | null }>('select mail_server_id as "serverId", message_id as "messageId" from inbound_messages')).rows,
    backends: async () => (await c.query<{ pid: number }>('select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()')).rows.map((r) => r.pid),
    close: async () => {
      close();
      await c.end();
    },
  };
}

// ------------------------------------------------------------------------------------------------
// Setup: the mailboxes

const messageIdOf = (raw: Buffer) => /^Message-ID: (<[^>\r\n]+>)/m.exec(raw.toString('latin1'))?.[1];

async function fillMailboxes(peers: Peers): Promise<Mailbox[]> {
  const t0 = performance.now();
  const boxes = Array.from({ length: MAILBOXES }, (_, k) => {
    const user = `inbox${k + 1}@example.test`;
    return { user, dir: ensureMaildir(peers, user), messageIds: new Set<string>() };
  });
  const r = prng(SEED);
  const start = Date.UTC(2026, 9, 1, 8, 0, 0);
  let bytes = 0;
  for (let i = 1; i <= N; i++) {
    const box = boxes[(i - 1) % MAILBOXES]!;
    const date = new Date(start + i * 37_000);
    const { raw } = makeMessage(r, i, date, box.user);
    const id = messageIdOf(raw);
    if (!id || box.messageIds.has(id)) throw new Error(`message ${i} has no or a repeated Message-ID`);
    box.messageIds.add(id);
    bytes += raw.length;
    writeMaildirMessage(box.dir, raw, date);
  }
  const written = performance.now();
  for (const b of boxes) {
    const count = await doveadmCount(peers, b.user);
    if (count !== b.messageIds.size) throw new Error(`Dovecot sees ${count} messages for ${b.user}, expected ${b.messageIds.size}`);
  }
  const indexed = performance.now();
  const mailboxes: Mailbox[] = [];
  for (const b of boxes) mailboxes.push({ user: b.user, messageIds: b.messageIds, token: await fetchToken(peers, b.user) });
  // Dovecot's first pass over new Maildir files is much slower than later ones: one untimed raw fetch
  // of every mailbox, so every row meets the same warm Dovecot.
  const w0 = performance.now();
  for (const m of mailboxes) {
    const f = await rawFetchAll({ port: peers.dovecot.imapsPort, ca: peers.ca.caPem, user: m.user, accessToken: m.token.access_token });
    if (f.messages !== m.messageIds.size) throw new Error(`raw fetch of ${m.user}: ${f.messages}/${m.messageIds.size}`);
  }
  const warm = performance.now();
  console.log(
    `# setup (not timed): ${N} messages, ${(bytes / 1024 / 1024).toFixed(1)} MB, into ${MAILBOXES} Maildirs (${Math.ceil(N / MAILBOXES)} each) in ${((written - t0) / 1000).toFixed(1)} s; ` +
      `Dovecot indexed them in ${((indexed - written) / 1000).toFixed(1)} s; raw fetch of all (warm-up) ${((warm - w0) / 1000).toFixed(1)} s = ${(N / ((warm - w0) / 1000)).toFixed(0)} msgs/s`,
  );
  return mailboxes;
}

// ------------------------------------------------------------------------------------------------
// One row

interface Row {
  setup: string;
  processes: number;
  /** Spawn until every process answered /healthz. */
  readySeconds: number;
  /** Spawn until the first row, and until all N. */
  firstSeconds: number;
  seconds: number;
  /** Mailboxes held by each process at the end, in spawn order. */
  spread: number[];
  cpu: CpuReport;
  /** Dovecot (master, login, auth and imap processes). */
  dovecotCores: number;
  /** The backends serving this database, over their lifetime (all started after the spawn); those closed before the end are missing. */
  postgresCores: number;
  load1: number;
}

async function row(peers: Peers, mailboxes: Mailbox[], backend: 'sqlite' | 'postgres', processes: number): Promise<Row> {
  const load1 = loadavg()[0]!;
  const key = randomBytes(32);
  const db = backend === 'postgres' ? await createTestDatabase('mailroom_bench_inbound') : undefined;
  const dropDb = db ? onCleanup('bench database', () => db.drop()) : () => undefined;
  const env: Record<string, string> = {
    MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost,
    NODE_EXTRA_CA_CERTS: peers.caFile,
    LOG_LEVEL,
    OUTBOX_WORKER: 'off',
    ...(db && { DATABASE_URL: db.url, MAILROOM_SECRET_KEY: key.toString('base64') }),
  };

  // The incoming servers, created through the API of a process that does not fetch.
  const setup = await startMailroom({ ...env, INBOUND_WORKER: 'off' });
  const apiKey = await createApiKey(setup);
  const setupApi = httpClient(setup.baseUrl, apiKey).request;
  const serverIds: string[] = [];
  for (const m of mailboxes) serverIds.push(await createIncoming(setupApi, m.user, { imapPort: peers.dovecot.imapsPort }));
  for (const [k, m] of mailboxes.entries()) {
    if (db) await storeTokensPg(db, key, serverIds[k]!, m.user, m.token, peers.authServer.tenantId);
    else storeTokens(setup.dataDir, serverIds[k]!, m.user, m.token, peers.authServer.tenantId);
  }
  await setup.stop();
  const imported = db ? await postgresImported(db.url) : sqliteImported(setup.dataDir);

  // Timed: spawn → N rows.
  const procs: MailroomChild[] = [];
  const cpu = cpuMeter(() => procs.map((p) => p.pid));
  const dovecot = treeMeter(childProcesses('dovecot'));
  const t0 = performance.now();
  const started = Array.from({ length: processes }, () =>
    startMailroom({ ...env, INBOUND_WORKER: 'on' }, db ? {} : { dataDir: setup.dataDir }).then((p) => (procs.push(p), p)),
  );
  let ready = Number.NaN;
  let failed: unknown;
  void Promise.all(started).then(() => (ready = performance.now()), (e: unknown) => (failed = e));
  let first = Number.NaN;
  let done = Number.NaN;
  while (Number.isNaN(done)) {
    if (failed) throw failed;
    const n = await imported.count();
    const now = performance.now();
    if (n > 0 && Number.isNaN(first)) first = now;
    if (n >= N) done = now;
    else if (now - t0 > PHASE_TIMEOUT_MS) throw new Error(`${backend}, ${processes} processes: ${n}/${N} imported after ${PHASE_TIMEOUT_MS / 1000} s\n${procs.map((p) => p.logTail(10)).join('\n---\n')}`);
    await sleep(100);
  }
  const usage = cpu();
  const dovecotCores = dovecot();
  const postgresCores = lifetimeCores(await imported.backends(), (done - t0) / 1000);
  const all = await Promise.all(started);

  // Who held which mailbox: every process names itself (instance) and the holder of each mailbox.
  const views = await Promise.all(all.map(async (p) => (await httpClient(p.baseUrl, apiKey).request('GET', '/api/v1/health/servers')).json));
  const instances = views.map((v) => v.instance as string);
  const spread = instances.map(() => 0);
  for (const id of serverIds) {
    const holders = new Set(views.map((v) => v.items.find((s: { id: string }) => s.id === id)?.fetchedBy as string | null));
    if (holders.size !== 1) throw new Error(`the processes disagree on who holds mailbox ${id}: ${[...holders].join(', ')}`);
    const k = instances.indexOf([...holders][0]!);
    if (k < 0) throw new Error(`mailbox ${id} is held by ${[...holders][0]}, none of ${instances.join(', ')}`);
    spread[k]!++;
  }

  // Exactly once: a second fetch of a mailbox would import again by now.
  await sleep(1500);
  const rows = await imported.rows();
  const seen = new Set<string>();
  for (const r of rows) {
    const k = serverIds.indexOf(r.serverId);
    if (!r.messageId || !mailboxes[k]?.messageIds.has(r.messageId)) throw new Error(`imported a message that is not in its mailbox: ${r.messageId} (server ${r.serverId})`);
    if (seen.has(r.messageId)) throw new Error(`${r.messageId} imported twice`);
    seen.add(r.messageId);
  }
  if (rows.length !== N || seen.size !== N) throw new Error(`${rows.length} rows, ${seen.size} distinct Message-IDs, expected ${N}`);

  await Promise.all(all.map((p) => p.stop()));
  await imported.close();
  if (db) {
    await db.drop();
    dropDb();
  }
  return {
    setup: backend === 'postgres' ? 'PostgreSQL' : 'SQLite',
    processes,
    readySeconds: (ready - t0) / 1000,
    firstSeconds: (first - t0) / 1000,
    seconds: (done - t0) / 1000,
    spread,
    cpu: usage,
    dovecotCores,
    postgresCores,
    load1,
  };
}

// ------------------------------------------------------------------------------------------------

runBenchmark('inbound cluster', 175, async () => {
  header(`Inbound cluster: ${N} messages in ${MAILBOXES} mailboxes imported by 1 and ${PROCESSES} processes on PostgreSQL, beside 1 on SQLite`);
  const peers = await benchPeers();
  const mailboxes = await fillMailboxes(peers);
  const rows: Row[] = [];
  for (const [backend, processes] of [['sqlite', 1], ['postgres', 1], ['postgres', PROCESSES]] as const) {
    const r = await row(peers, mailboxes, backend, processes);
    console.log(`# ${r.setup}, ${r.processes} process${r.processes > 1 ? 'es' : ''}: ${r.seconds.toFixed(2)} s, mailboxes per process ${r.spread.join(' / ')}`);
    rows.push(r);
  }
  console.log('');
  table(
    rows.map((r) => ({
      setup: r.setup,
      processes: r.processes,
      'load1 before': r.load1,
      'all up (s)': r.readySeconds,
      'first row (s)': r.firstSeconds,
      'all imported (s)': r.seconds,
      'msgs/s': N / r.seconds,
      'msgs/s from the first row': N / (r.seconds - r.firstSeconds),
      'mailboxes per process': r.spread.join(' / '),
      'CPU cores: machine': r.cpu.machineCores,
      Mailroom: r.cpu.childCores,
      Dovecot: r.dovecotCores,
      PostgreSQL: r.setup === 'PostgreSQL' ? r.postgresCores : '',
      bench: r.cpu.selfCores,
      'rest (kernel, other work)': Math.max(0, r.cpu.otherCores - r.dovecotCores - r.postgresCores),
    })),
  );
  const [sqlite, pg1, pgN] = rows as [Row, Row, Row];
  const rate = (r: Row) => N / r.seconds;
  console.log(`\nratios: PostgreSQL ${PROCESSES} processes / 1 process ${(rate(pgN) / rate(pg1)).toFixed(2)}×; PostgreSQL 1 process / SQLite 1 process ${(rate(pg1) / rate(sqlite)).toFixed(2)}×`);
  console.log('(times from the spawn of the processes; every message was imported exactly once, by its own mailbox\'s server, in every row)');
  console.log('(CPU in cores over spawn → all imported; Dovecot: its whole process tree; PostgreSQL: the backends of the row\'s database still connected at the end; rest: the kernel and everything else on the machine)');
  const busy = (r: Row) => `${r.cpu.machineCores.toFixed(2)} of ${cpus().length} cores busy (Mailroom ${r.cpu.childCores.toFixed(2)}, Dovecot ${r.dovecotCores.toFixed(2)}, PostgreSQL ${r.postgresCores.toFixed(2)})`;
  const idle = pgN.spread.filter((n) => n === 0).length;
  const full = pg1.cpu.machineCores >= 0.9 * cpus().length;
  const uneven = Math.max(...pgN.spread) - Math.min(...pgN.spread) > 1;
  console.log(
    `\nlimits: with 1 process on PostgreSQL ${busy(pg1)}; with ${PROCESSES}, ${busy(pgN)}` +
      (full ? ': the machine is full with one process, so more processes bring more start-up, parse threads and connections, not more cores.' : '.') +
      ` Each process fetches its share of the mailboxes (at most ceil(N / processes)); they went ${pgN.spread.join(' / ')}` +
      (uneven ? `, not evenly${idle ? ` (${idle} process${idle > 1 ? 'es' : ''} fetched nothing)` : ''}` : '') + '.',
  );
});
