import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { clusterEnv, createTestDatabase, storeTokensPg, type TestPostgres } from '../helpers/postgres-db.ts';
import { getToken } from '../peers/get-token.ts';
import { type Peers, startPeers } from '../peers/index.ts';
import { startTcpProxy, type TcpProxy } from '../peers/tcp-proxy.ts';

// PostgreSQL going away under a running Mailroom: its connections killed mid-drain, then the network
// path to it black-holed and refused. The API answers 503 MR_DATABASE_UNAVAILABLE within seconds,
// /readyz says not ready, the worker resumes by itself, and every accepted message is delivered once
// (a duplicate only for a message whose "sent" could not be recorded when its connection died).
const CLIENT_ID = '3a4b5c6d-7e8f-4a0b-9c1d-2e3f4a5b6c7d';
const CLIENT_SECRET = 'Ou7Q~outage.Test-Secret_Value~0123456789';
const MAILBOX = 'outage@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const CONCURRENCY = 8;
const T = { timeout: 180_000 };

const KEY = randomBytes(32);
let peers: Peers;
let pgdb: TestPostgres;
let mr: MailroomProcess;
let apiKey: string;

// A TCP path to PostgreSQL that the test can cut: forward, black-hole (accept and never answer) or refuse.
let proxy: TcpProxy;

const api = apiClient(() => mr.baseUrl, () => apiKey);
const messageIdOf = (raw: Buffer) => /^Message-ID:\s*(<[^>]+>)/im.exec(raw.toString('latin1'))?.[1];

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  pgdb = await createTestDatabase('mailroom_outage');
  proxy = await startTcpProxy(5432);
  const url = new URL(pgdb.url);
  url.port = String(proxy.port);
  mr = await startMailroomProcess(clusterEnv(pgdb, KEY, peers, {
    OUTBOX_CONCURRENCY: String(CONCURRENCY),
    OUTBOX_RETRY_BASE_SECONDS: '1',
    OUTBOX_LEASE_SECONDS: '5',
    DATABASE_CONNECT_TIMEOUT_SECONDS: '2',
    INBOUND_WORKER: 'off',
  }, url.href));
  apiKey = /\n(mr_\S+)/.exec(await mr.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const server = await api('POST', '/api/v1/mail-servers', { name: 'Outage', username: MAILBOX, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, smtpHost: '127.0.0.1', smtpPort: peers.dovecot.submissionPort });
  assert.equal(server.status, 201, server.text);
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX });
  await storeTokensPg(pgdb, KEY, server.json.id, MAILBOX, t, peers.authServer.tenantId);
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-outage.log', mr?.output() ?? '');
  await mr?.stop();
  await proxy?.close();
  await pgdb?.drop();
  await peers?.stop();
});

async function sendAll(n: number, tag: string): Promise<Set<string>> {
  const accepted = new Set<string>();
  for (let i = 0; i < n; i += 50) {
    const replies = await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, k) => api('POST', '/api/v1/messages', { from: MAILBOX, to: ['archive@remote.example'], subject: `${tag} ${i + k}`, text: 'x' })));
    for (const r of replies) {
      assert.equal(r.status, 202, r.text);
      accepted.add(r.json.messageId);
    }
  }
  return accepted;
}

test('pg_terminate_backend on all of Mailroom\'s connections in the middle of a drain: every message delivered, duplicates at most those in flight', T, async () => {
  const before = peers.sink.messages.length;
  const accepted = await sendAll(400, 'Terminate');
  await waitFor('the drain under way', async () => (peers.sink.messages.length - before >= 40 ? true : undefined), 60_000, 20);
  let killed = 0;
  for (let round = 0; round < 3; round++) {
    const rows = await pgdb.query<{ n: string }>(`select count(pg_terminate_backend(pid)) as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`);
    killed += Number(rows[0]!.n);
    await new Promise((r) => setTimeout(r, 400));
  }
  assert.ok(killed >= 3, `connections were killed (${killed})`);
  await waitFor('every message delivered', async () => {
    const got = new Set(peers.sink.messages.slice(before).map((m) => messageIdOf(m.raw)));
    return [...accepted].every((id) => got.has(id)) ? true : undefined;
  }, 120_000, 250);
  await waitFor('every row sent', async () => {
    const [r] = await pgdb.query<{ n: string }>(`select count(*) as n from outbox_messages where subject like 'Terminate %' and state <> 'sent'`);
    return Number(r!.n) === 0 ? true : undefined;
  }, 60_000, 250);
  await new Promise((r) => setTimeout(r, 1500)); // a late duplicate would arrive now
  const ids = peers.sink.messages.slice(before).map((m) => messageIdOf(m.raw)!);
  const duplicates = ids.length - new Set(ids).size;
  assert.deepEqual(new Set(ids), accepted, 'nothing lost, nothing foreign');
  assert.ok(duplicates <= 3 * CONCURRENCY, `duplicates (${duplicates}) no more than the messages in flight at the three kills (${3 * CONCURRENCY})`);
  console.log(`# ${killed} connections killed in three rounds mid-drain: ${accepted.size} delivered, ${duplicates} duplicates`);
});

test('PostgreSQL unreachable: the API answers 503 MR_DATABASE_UNAVAILABLE within seconds, /readyz is not ready; once it is back everything resumes by itself', T, async () => {
  const pending = await sendAll(20, 'Outage');
  // Black hole: connections open but nothing answers, the worst case for a hang.
  await proxy.blackhole();
  for (const path of ['/api/v1/messages?limit=5', '/api/v1/mail-servers']) {
    const t0 = Date.now();
    const r = await api('GET', path);
    const took = Date.now() - t0;
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error.code, 'MR_DATABASE_UNAVAILABLE');
    assert.match(r.json.error.message, /database cannot be reached/);
    assert.ok(took < 6000, `answered in ${took} ms, not a hang`);
  }
  const ready = await fetch(`${mr.baseUrl}/readyz`);
  assert.equal(ready.status, 503);
  assert.equal(((await ready.json()) as { error: { code: string } }).error.code, 'MR_DATABASE_UNAVAILABLE');
  const refusedSend = await api('POST', '/api/v1/messages', { from: MAILBOX, to: ['archive@remote.example'], subject: 'Not accepted', text: 'x' });
  assert.equal(refusedSend.status, 503, 'not accepted while it cannot be stored');

  // Refused: nothing listens on the port at all.
  await proxy.down();
  const t0 = Date.now();
  const r = await api('GET', '/api/v1/messages?limit=5');
  assert.equal(r.status, 503, r.text);
  assert.equal(r.json.error.code, 'MR_DATABASE_UNAVAILABLE');
  assert.ok(Date.now() - t0 < 6000);
  assert.equal((await fetch(`${mr.baseUrl}/healthz`)).status, 200, 'the process lives on');

  // Back: ready again, the queued mail goes out, new mail is accepted and sent, without a restart.
  await proxy.up();
  await waitFor('ready again', async () => ((await fetch(`${mr.baseUrl}/readyz`)).status === 200 ? true : undefined), 30_000, 250);
  const after = await sendAll(5, 'After');
  const want = new Set([...pending, ...after]);
  await waitFor('everything accepted delivered', async () => {
    const got = new Set(peers.sink.messages.map((m) => messageIdOf(m.raw)));
    return [...want].every((id) => got.has(id)) ? true : undefined;
  }, 60_000, 250);
  const [notAccepted] = await pgdb.query<{ n: string }>(`select count(*) as n from outbox_messages where subject = 'Not accepted'`);
  assert.equal(Number(notAccepted!.n), 0);
});
