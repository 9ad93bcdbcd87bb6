import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { freePort, type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { clusterEnv, createTestDatabase, storeTokensPg, type TestPostgres } from '../helpers/postgres-db.ts';
import { getToken } from '../peers/get-token.ts';
import { type GraphServer, startGraphServer } from '../peers/graph-server.ts';
import { GRAPH_RESOURCE, type Peers, startPeers } from '../peers/index.ts';

// Three Mailroom processes on one PostgreSQL with three Graph mailboxes: one subscription per mailbox
// for the whole cluster (claimed in the database), notifications all posted to one instance (as a load
// balancer may send them anywhere) and the delta run made by whichever instance holds the mailbox
// (LISTEN/NOTIFY), each message imported once.
const CLIENT_ID = '8e4f0a5b-6c7d-4e8f-9a0b-1c2d3e4f5a6b';
const CLIENT_SECRET = 'Cl5Q~graph.PushCluster-Secret~012345678';
const MAILBOXES = ['push-a@example.test', 'push-b@example.test', 'push-c@example.test'];
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const T = { timeout: 150_000 };
const GRAPH_RECEIVE = ['openid', 'profile', 'email', 'offline_access', `${GRAPH_RESOURCE}/Mail.ReadWrite`, `${GRAPH_RESOURCE}/User.Read`].join(' ');

const KEY = randomBytes(32);
let peers: Peers;
let graph: GraphServer;
let pgdb: TestPostgres;
const procs: MailroomProcess[] = [];
let apiKey: string;
const serverIds: string[] = [];

const apiOf = (p: MailroomProcess) => apiClient(() => p.baseUrl, () => apiKey);

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  graph = await startGraphServer({ tls: { cert: peers.ca.cert, key: peers.ca.key }, introspectionUrl: peers.authServer.httpIntrospectionUrl, mailboxes: MAILBOXES });
  pgdb = await createTestDatabase('mailroom_graph_push');
  const first = await freePort();
  const env = clusterEnv(pgdb, KEY, peers, { MICROSOFT_GRAPH_HOST: graph.url, NOTIFICATION_BASE_URL: `http://127.0.0.1:${first}`, GRAPH_PUSH_POLL_MINUTES: '60', GRAPH_PUSH_RETRY_SECONDS: '2' });
  procs.push(await startMailroomProcess(env, first));
  for (let i = 1; i < 3; i++) procs.push(await startMailroomProcess(env));
  apiKey = /\n(mr_\S+)/.exec(await procs[0]!.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  for (const mailbox of MAILBOXES) {
    const s = await apiOf(procs[0]!)('POST', '/api/v1/incoming-servers', { name: `Push ${mailbox}`, serverType: 'graph', username: mailbox, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, folder: 'INBOX', afterFetch: 'leave', intervalMinutes: 1440 });
    assert.equal(s.status, 201, s.text);
    serverIds.push(s.json.id);
    const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: mailbox, scope: GRAPH_RECEIVE });
    await storeTokensPg(pgdb, KEY, s.json.id, mailbox, t, peers.authServer.tenantId);
  }
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-graph-push-cluster.log', procs.map((p) => p.output()).join('\n=====\n'));
  await Promise.allSettled(procs.map((p) => p.stop()));
  await pgdb?.drop();
  await graph?.close();
  await peers?.stop();
});

test('three instances on PostgreSQL: one subscription per mailbox, notifications to any instance, each message imported once', T, async () => {
  const api = apiOf(procs[1]!);
  await waitFor('every mailbox pushing', async () => {
    const list = (await api('GET', '/api/v1/incoming-servers')).json.items as Array<{ push?: { state: string } }>;
    return list.length === 3 && list.every((s) => s.push?.state === 'active') ? list : undefined;
  }, 60_000);
  // A few ticks more: nobody makes a second one.
  await new Promise((r) => setTimeout(r, 6000));
  const subs = graph.subscriptions();
  assert.deepEqual(subs.map((s) => s.mailbox).sort(), [...MAILBOXES].sort(), 'one subscription per mailbox');
  assert.equal(graph.requests.filter((r) => r.method === 'POST' && r.path === '/v1.0/subscriptions' && r.status === 201).length, 3, 'created once each, cluster-wide');
  const rows = await pgdb.query<{ resource_key: string; state: string }>('select resource_key, state from graph_subscriptions');
  assert.equal(rows.length, 3);
  const holders = await pgdb.query<{ holder: string }>("select distinct holder from leases where name like 'mailbox:%'");
  assert.ok(holders.length >= 2, `the mailboxes are spread over the instances (${holders.length})`);

  const sent: string[] = [];
  const at = Date.now();
  for (let k = 0; k < 10; k++) {
    for (const mailbox of MAILBOXES) {
      const id = `<cluster-push-${k}-${mailbox}@sender.example>`;
      sent.push(id);
      graph.deliver(mailbox, [`From: c@sender.example`, `To: ${mailbox}`, `Subject: Push ${k}`, `Message-ID: ${id}`, '', 'x', ''].join('\r\n'));
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await waitFor('all 30 imported', async () => {
    const [row] = await pgdb.query<{ n: string }>('select count(*) as n from inbound_messages');
    return Number(row?.n) >= 30 ? true : undefined;
  }, 30_000, 100);
  const took = Date.now() - at;
  await new Promise((r) => setTimeout(r, 2000));
  const msgs = await pgdb.query<{ message_id: string }>('select message_id from inbound_messages');
  assert.equal(msgs.length, 30, 'nothing imported twice');
  assert.deepEqual(new Set(msgs.map((m) => m.message_id)), new Set(sent));
  assert.ok(took < 15_000, `imported by push within ${took} ms, not at the 24 h interval`);
  assert.ok(graph.posted.filter((p) => p.kind === 'created').every((p) => p.status === 202));
  for (const p of procs) p.assertNoUnhandled();
});
