import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { clusterEnv, createTestDatabase, sendRoundRobin, slotHolders, storeTokensPg, type TestPostgres, watchSlotHolders } from '../helpers/postgres-db.ts';
import { getToken } from '../peers/get-token.ts';
import { type GraphServer, MAILBOX_CONCURRENCY, startGraphServer } from '../peers/graph-server.ts';
import { GRAPH_RESOURCE, type Peers, startPeers } from '../peers/index.ts';

// Exchange Online's 4 concurrent Graph requests per mailbox (MailboxConcurrency) hold for the cluster:
// three Mailroom processes on one PostgreSQL, each with 16 outbox workers, send from one mailbox with
// Send Using Microsoft Graph to the Graph stand-in (test/peers/graph-server.ts), which answers a fifth
// request at once with 429 ApplicationThrottled. The slots are lease rows `connections:graph:<mailbox>:<i>`
// shared by the instances, as for SMTP (cluster-connections.test.ts).
const CLIENT_ID = '6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9b';
const CLIENT_SECRET = 'Gc4Q~cluster.Graph-Secret_Value~0123456';
const MAILBOX = 'graphcluster@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const T = { timeout: 240_000 };
const GRAPH_SEND = ['openid', 'profile', 'email', 'offline_access', `${GRAPH_RESOURCE}/Mail.Send`, `${GRAPH_RESOURCE}/Mail.ReadWrite`, `${GRAPH_RESOURCE}/User.Read`].join(' ');

const KEY = randomBytes(32);
let peers: Peers;
let graph: GraphServer;
let pgdb: TestPostgres;
const procs: MailroomProcess[] = [];
let apiKey: string;
let serverId: string;

const apiOf = (p: MailroomProcess) => apiClient(() => p.baseUrl, () => apiKey);
const messageIdOf = (raw: Buffer) => /^Message-ID:\s*(<[^>]+>)/im.exec(raw.toString('latin1'))?.[1];
const deliveredIds = () => graph.sent.filter((s) => s.mailbox === MAILBOX && s.mime).map((s) => messageIdOf(s.mime!));
const slots = () => slotHolders(pgdb, `connections:graph:${MAILBOX}:`);

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  graph = await startGraphServer({ tls: { cert: peers.ca.cert, key: peers.ca.key }, introspectionUrl: peers.authServer.httpIntrospectionUrl, mailboxes: [MAILBOX] });
  pgdb = await createTestDatabase('mailroom_graph_cluster');
  const env = clusterEnv(pgdb, KEY, peers, {
    MICROSOFT_GRAPH_HOST: graph.url,
    OUTBOX_CONCURRENCY: '16',
    OUTBOX_RETRY_BASE_SECONDS: '0.5',
  });
  for (let i = 0; i < 3; i++) procs.push(await startMailroomProcess(env));
  apiKey = /\n(mr_\S+)/.exec(await procs[0]!.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const server = await apiOf(procs[0]!)('POST', '/api/v1/mail-servers', {
    name: 'Graph cluster',
    username: MAILBOX,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    sendUsing: 'graph',
    // No per-minute pace or daily cap: only the concurrency limit is under test.
    messagesPerMinute: null,
    recipientsPerDay: null,
  });
  assert.equal(server.status, 201, server.text);
  assert.equal(server.json.sendUsing, 'graph');
  serverId = server.json.id;
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX, scope: GRAPH_SEND });
  await storeTokensPg(pgdb, KEY, serverId, MAILBOX, t, peers.authServer.tenantId);
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-graph-cluster.log', procs.map((p) => p.output()).join('\n=====\n'));
  await Promise.allSettled(procs.map((p) => p.stop()));
  await pgdb?.drop();
  await graph?.close();
  await peers?.stop();
});

const sendThrough = (live: MailroomProcess[], n: number, tag: string) => sendRoundRobin(live.map(apiOf), MAILBOX, n, tag);

test('three instances with 16 outbox workers each, one mailbox with Send Using Microsoft Graph: never a fifth request at once, no 429, the slots shared out', T, async (t) => {
  const accepted = await sendThrough(procs, 300, 'Graph shared');
  // Who holds the Graph slots while the burst drains: lease rows, one per request in flight (or lingering).
  const watch = watchSlotHolders(pgdb, `connections:graph:${MAILBOX}:`, 50);
  const seen = watch.seen;
  await waitFor('the burst to start', async () => (deliveredIds().length >= 20 ? true : undefined), 60_000, 20);
  // Test Connection makes Graph requests for the mailbox too: it waits for a slot like a send.
  const tests = await Promise.all(procs.map((p) => apiOf(p)('POST', `/api/v1/mail-servers/${serverId}/test`)));
  await waitFor('300 delivered', async () => (deliveredIds().length >= accepted.size ? true : undefined), 180_000, 100);
  watch.stop();
  await new Promise((r) => setTimeout(r, 1000)); // a duplicate would arrive now
  const ids = deliveredIds();
  assert.equal(ids.length, accepted.size, 'each message delivered once');
  assert.deepEqual(new Set(ids), accepted);
  const peak = graph.peakConcurrent.get(MAILBOX)!;
  const refused: Record<string, number> = {};
  for (const r of graph.requests.filter((x) => x.status === 429)) refused[`${r.method} ${r.path}`] = (refused[`${r.method} ${r.path}`] ?? 0) + 1;
  assert.equal(graph.concurrencyRefusals, 0, `no 429 ApplicationThrottled (MailboxConcurrency) at Graph (peak ${peak}): ${JSON.stringify(refused)}`);
  assert.deepEqual(refused, {});
  assert.ok(peak <= MAILBOX_CONCURRENCY, `at most ${MAILBOX_CONCURRENCY} Graph requests at once for the cluster (saw ${peak})`);
  assert.ok(peak > 1, `and the cluster sent more than one at a time (saw ${peak})`);
  // Checked after the counts: a refused Test Connection is one of the 429s above.
  for (const r of tests) assert.equal(r.json.ok, true, r.text);
  t.diagnostic(`peak ${peak} Graph requests at once; slots held by ${seen.size} instances; ${graph.requests.length} Graph requests`);
  assert.ok(seen.size >= 2, `the slots were held by more than one instance over the burst (${[...seen].join(', ')})`);
  for (const holder of seen) assert.ok(procs.some((p) => holder.includes(`:${p.pid}:`)), `held by an instance: ${holder}`);
  // Lingering slots go back once the senders are idle: nothing is left held.
  await waitFor('the slots given back', async () => ((await slots()).length === 0 ? true : undefined), 60_000, 500);
});

test('receiving through Graph from the same mailbox during a send burst shares its 4 requests: imports, marks as read and sends, and still no 429', T, async () => {
  const before = deliveredIds().length;
  const inbound = Array.from({ length: 150 }, (_, i) => {
    const messageId = `<graph-in-${i}@sender.example>`;
    graph.deliver(MAILBOX, ['From: customer@sender.example', `To: ${MAILBOX}`, `Subject: Order ${i}`, `Message-ID: ${messageId}`, 'Date: Thu, 03 Dec 2026 09:00:00 +0000', '', 'Hello.', ''].join('\r\n'));
    return messageId;
  });
  // The incoming server reuses the outgoing server's Graph connection (one sign-in, Mail.ReadWrite granted).
  const incoming = await apiOf(procs[1]!)('POST', '/api/v1/incoming-servers', { name: 'Graph inbox', serverType: 'graph', username: MAILBOX, tokenSourceId: serverId, folder: 'INBOX', afterFetch: 'mark_read', intervalMinutes: 1 });
  assert.equal(incoming.status, 201, incoming.text);
  const importedCount = async () => (await pgdb.query('select 1 from inbound_messages where mail_server_id = $1', [incoming.json.id])).length;
  await waitFor('the import under way', async () => ((await importedCount()) > 0 ? true : undefined), 60_000, 50);
  const accepted = await sendThrough(procs, 300, 'Graph while receiving');
  assert.ok((await importedCount()) < inbound.length, 'the burst was accepted while the import was still running');
  await waitFor('150 imported and 300 sent', async () => {
    const rows = await pgdb.query<{ message_id: string }>('select message_id from inbound_messages where mail_server_id = $1', [incoming.json.id]);
    return rows.length >= inbound.length && deliveredIds().length - before >= accepted.size ? rows : undefined;
  }, 180_000, 250);
  const rows = await pgdb.query<{ message_id: string }>('select message_id from inbound_messages where mail_server_id = $1', [incoming.json.id]);
  assert.deepEqual(rows.map((r) => r.message_id).sort(), [...inbound].sort(), 'each received message imported once');
  assert.deepEqual(new Set(deliveredIds().slice(before)), accepted);
  assert.equal(graph.concurrencyRefusals, 0, 'no 429 ApplicationThrottled: receiving waits for the same slots as sending');
  assert.ok(graph.peakConcurrent.get(MAILBOX)! <= MAILBOX_CONCURRENCY);
  // Marked as read after each page's import commits.
  await waitFor('every imported message marked as read', async () => (graph.requests.filter((r) => r.method === 'PATCH' && r.status === 200).length >= inbound.length ? true : undefined), 60_000, 250);
  assert.equal(graph.concurrencyRefusals, 0);
});
