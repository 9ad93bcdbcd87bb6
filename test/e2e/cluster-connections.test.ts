import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { clusterEnv, createTestDatabase, sendRoundRobin, slotHolders, storeTokensPg, type TestPostgres, watchSlotHolders } from '../helpers/postgres-db.ts';
import { getToken } from '../peers/get-token.ts';
import { type Peers, startPeers } from '../peers/index.ts';
import { type SmtpSink, startSmtpSink } from '../peers/smtp-sink.ts';

// Exchange Online's 3 submitting connections per mailbox hold for the cluster: three Mailroom
// processes on one PostgreSQL, each with a pool of 3, send from one mailbox to the Exchange stand-in
// (test/peers/smtp-sink.ts, submission mode), which answers a fourth session with 432 4.3.2. The
// slots are lease rows; an instance that has none asks the others to give one up.
const CLIENT_ID = '4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a';
const CLIENT_SECRET = 'Cn3Q~connections.Test-Secret_Value~012345';
const MAILBOX = 'threads@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const T = { timeout: 240_000 };

const KEY = randomBytes(32);
let peers: Peers;
let exchange: SmtpSink;
let pgdb: TestPostgres;
const procs: MailroomProcess[] = [];
let apiKey: string;
let serverId: string;
let clusterEnvOf: Record<string, string>;

const apiOf = (p: MailroomProcess) => apiClient(() => p.baseUrl, () => apiKey);
const messageIdOf = (raw: Buffer) => /^Message-ID:\s*(<[^>]+>)/im.exec(raw.toString('latin1'))?.[1];
const refusals = () => exchange.refusals.filter((r) => r.user === MAILBOX && r.reply.startsWith('432')).length;
const slots = () => slotHolders(pgdb, 'connections:');

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  exchange = await startSmtpSink({ submission: { tls: { cert: peers.ca.cert, key: peers.ca.key }, introspectionUrl: peers.authServer.httpIntrospectionUrl, sessionsPerUser: 3 } });
  pgdb = await createTestDatabase('mailroom_connections');
  const env = clusterEnv(pgdb, KEY, peers, {
    INBOUND_WORKER: 'off',
    OUTBOX_POOL_SIZE: '3',
    OUTBOX_RETRY_BASE_SECONDS: '0.5',
    // A killed instance's claims and connection slots come back after 5 s here (15 s by default).
    OUTBOX_LEASE_SECONDS: '5',
  });
  for (let i = 0; i < 3; i++) procs.push(await startMailroomProcess(env));
  clusterEnvOf = env;
  apiKey = /\n(mr_\S+)/.exec(await procs[0]!.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const server = await apiOf(procs[0]!)('POST', '/api/v1/mail-servers', {
    name: 'Threads',
    username: MAILBOX,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    smtpHost: '127.0.0.1',
    smtpPort: exchange.port,
    // Exchange's numbers (a Microsoft host gets them by default), without the per-minute pace.
    maxConnections: 3,
    messagesPerMinute: null,
  });
  assert.equal(server.status, 201, server.text);
  serverId = server.json.id;
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX });
  await storeTokensPg(pgdb, KEY, serverId, MAILBOX, t, peers.authServer.tenantId);
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-connections.log', procs.map((p) => p.output()).join('\n=====\n'));
  await Promise.allSettled(procs.map((p) => p.stop()));
  await pgdb?.drop();
  await exchange?.close();
  await peers?.stop();
});

const sendThrough = (live: MailroomProcess[], n: number, tag: string) => sendRoundRobin(live.map(apiOf), MAILBOX, n, tag);

const deliveredIds = () => exchange.messages.filter((m) => m.from === MAILBOX).map((m) => messageIdOf(m.raw));

test('three instances with a pool of 3 each, one mailbox: never a fourth session at Exchange, the slots shared out, a Test Connection on each gets one', T, async () => {
  const accepted = await sendThrough(procs, 450, 'Shared');
  // Who holds the slots while the burst drains: lease rows, one per connection.
  const watch = watchSlotHolders(pgdb, 'connections:', 100);
  const seen = watch.seen;
  await waitFor('the burst to start', async () => (deliveredIds().length >= 30 ? true : undefined), 60_000, 20);
  const tests = await Promise.all(procs.map((p) => apiOf(p)('POST', `/api/v1/mail-servers/${serverId}/test`)));
  for (const r of tests) assert.equal(r.json.ok, true, r.text);
  // The cluster view: which instance has how many connections open to the server, from any instance.
  const health = await apiOf(procs[2]!)('GET', '/api/v1/health/servers');
  const open: Record<string, number> = health.json.items.find((i: { id: string }) => i.id === serverId).connections;
  const total = Object.values(open).reduce((a, b) => a + b, 0);
  assert.ok(total >= 1 && total <= 3, `1 to 3 connections open for the cluster: ${JSON.stringify(open)}`);
  for (const holder of Object.keys(open)) assert.ok(procs.some((p) => holder.includes(`:${p.pid}:`)), `held by an instance: ${holder}`);
  await waitFor('450 delivered', async () => (deliveredIds().length >= accepted.size ? true : undefined), 180_000, 100);
  watch.stop();
  await new Promise((r) => setTimeout(r, 1000)); // a duplicate would arrive now
  const ids = deliveredIds();
  assert.equal(ids.length, accepted.size, 'each message delivered once');
  assert.deepEqual(new Set(ids), accepted);
  assert.equal(refusals(), 0, 'no 432 4.3.2 sender thread limit exceeded');
  const peak = exchange.peakSessions.get(MAILBOX)!;
  assert.ok(peak <= 3, `at most 3 sessions at once for the cluster (saw ${peak})`);
  assert.equal(peak, 3, 'and the cluster did use all three');
  assert.ok(seen.size >= 2, `the slots were held by more than one instance over the burst (${[...seen].join(', ')})`);
  // Idle connections close and their slots go back: nothing is left held once the pools are idle.
  await waitFor('the slots given back', async () => ((await slots()).length === 0 ? true : undefined), 60_000, 500);
});

test('kill -9 an instance holding slots mid-drain: its sockets close, its slots come back after the lease, the others deliver everything without a 432', T, async () => {
  const before = deliveredIds().length;
  const accepted = await sendThrough(procs, 600, 'Crash');
  await waitFor('an instance holding a slot', async () => {
    const rows = await slots();
    return deliveredIds().length - before >= 60 ? procs.find((p) => rows.some((r) => r.includes(`:${p.pid}:`))) : undefined;
  }, 60_000, 20).then(async (victim) => {
    await victim.crash();
    procs.splice(procs.indexOf(victim), 1);
  });
  await waitFor('everything delivered by the other two', async () => {
    const got = new Set(deliveredIds());
    return [...accepted].every((id) => got.has(id)) ? true : undefined;
  }, 150_000, 250);
  assert.equal(refusals(), 0, 'no 432 4.3.2: the dead instance\'s slots were not reused while its sessions could be open');
  assert.ok(exchange.peakSessions.get(MAILBOX)! <= 3);
  // Duplicates only for messages the dead instance had in flight (at most its OUTBOX_CONCURRENCY).
  const dup = deliveredIds().slice(before).length - accepted.size;
  assert.ok(dup >= 0 && dup <= 16, `duplicates ${dup}`);
  const left = await pgdb.query<{ holder: string }>(`select holder from leases where name like 'connections:%'`);
  for (const r of left) assert.ok(procs.some((p) => r.holder.includes(`:${p.pid}:`)), `a slot row of the dead instance is gone after its lease: ${r.holder}`);
});

test('four instances, three connections: they take turns of seconds, not a new connection and login per message', T, async (t) => {
  while (procs.length < 4) procs.push(await startMailroomProcess(clusterEnvOf));
  const before = deliveredIds().length;
  const loginsBefore = exchange.logins.get(MAILBOX) ?? 0;
  const accepted = await sendThrough(procs, 600, 'Turns');
  await waitFor('600 delivered by four instances', async () => {
    const got = new Set(deliveredIds().slice(before));
    return [...accepted].every((id) => got.has(id)) ? true : undefined;
  }, 150_000, 250);
  const logins = (exchange.logins.get(MAILBOX) ?? 0) - loginsBefore;
  assert.equal(refusals(), 0, 'no 432 4.3.2');
  assert.ok(exchange.peakSessions.get(MAILBOX)! <= 3);
  t.diagnostic(`${logins} logins for 600 messages over four instances`);
  assert.ok(logins <= 60, `${logins} logins for 600 messages: instances hand a connection over after a turn, not after each message`);
});
