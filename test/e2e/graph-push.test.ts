import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { storeTokens } from '../helpers/connect-directly.ts';
import { freePort, type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { assertResponsive, rssMb } from '../helpers/process-health.ts';
import { getToken } from '../peers/get-token.ts';
import { GRAPH_RESOURCE, type Peers, startPeers } from '../peers/index.ts';
import { type GraphServer, MESSAGE_SUBSCRIPTION_MAX_MINUTES, startGraphServer } from '../peers/graph-server.ts';
import { startTcpProxy, type TcpProxy } from '../peers/tcp-proxy.ts';

// Microsoft Graph change notifications against the Graph stand-in, which subscribes, validates the
// endpoint, posts notifications and lifecycle events as Microsoft documents them. Mailroom reaches the
// stand-in over HTTPS; the stand-in reaches Mailroom's endpoint through a TCP proxy (NOTIFICATION_BASE_URL,
// plain http on loopback), so the test can take the endpoint off the network. The server's normal interval
// is 1 minute and the push interval 60: a message imported within seconds came by push, not by a poll.
const CLIENT_ID = '7d3e9f4a-5b6c-4d7e-8f9a-0b1c2d3e4f5a';
const CLIENT_SECRET = 'Pu5Q~graph.Push-Secret_Value~0123456789';
const MAILBOX = 'push-graph@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const T = { timeout: 120_000 };
const GRAPH_RECEIVE = ['openid', 'profile', 'email', 'offline_access', `${GRAPH_RESOURCE}/Mail.ReadWrite`, `${GRAPH_RESOURCE}/User.Read`].join(' ');

let peers: Peers;
let graph: GraphServer;
let mailroom: MailroomProcess;
let proxy: TcpProxy;
let key: string;
let serverId: string;
let n = 0;

const api = apiClient(() => mailroom.baseUrl, () => key);
const mime = (subject: string) =>
  [`From: Customer <customer@sender.example>`, `To: ${MAILBOX}`, `Subject: ${subject}`, `Message-ID: <push-${++n}-${Date.now()}@sender.example>`, 'Date: Mon, 07 Dec 2026 09:00:00 +0000', 'Content-Type: text/plain; charset=utf-8', '', 'Reply to the invoice.', ''].join('\r\n');
const server = async () => (await api('GET', `/api/v1/incoming-servers/${serverId}`)).json;
const imported = async () => (await server()).importedCount as number;
const deltaRequests = () => graph.requests.filter((r) => r.path.endsWith('/messages/delta')).length;
const subscription = () => graph.subscriptions().find((s) => s.mailbox === MAILBOX);
const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pushActive(notId?: string) {
  return waitFor('push to be active', async () => {
    const s = await server();
    const sub = subscription();
    return s.push?.state === 'active' && sub && sub.id !== notId ? { view: s, sub } : undefined;
  }, 40_000);
}

/** Alive, answering /healthz quickly, within the memory bound. */
async function assertHealthy() {
  assert.equal(mailroom.exited !== undefined && (await Promise.race([mailroom.exited.then(() => 'exited'), settle(10).then(() => 'alive')])), 'alive');
  await assertResponsive(mailroom.baseUrl, 1000);
  assert.ok(rssMb(mailroom.pid) < 400, `RSS ${rssMb(mailroom.pid)} MB`);
}

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  graph = await startGraphServer({ tls: { cert: peers.ca.cert, key: peers.ca.key }, introspectionUrl: peers.authServer.httpIntrospectionUrl, mailboxes: [MAILBOX] });
  const port = await freePort();
  proxy = await startTcpProxy(port);
  mailroom = await startMailroomProcess(
    {
      MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost,
      MICROSOFT_GRAPH_HOST: graph.url,
      NODE_EXTRA_CA_CERTS: peers.caFile,
      NOTIFICATION_BASE_URL: `http://127.0.0.1:${proxy.port}`,
      GRAPH_PUSH_POLL_MINUTES: '60',
      GRAPH_PUSH_RETRY_SECONDS: '2',
      // Renewed every 30 s: the test sees renewals, and a silently expired subscription within 30 s.
      GRAPH_SUBSCRIPTION_MINUTES: '1',
    },
    port,
  );
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const s = await api('POST', '/api/v1/incoming-servers', { name: 'Push through Graph', serverType: 'graph', username: MAILBOX, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, folder: 'INBOX', afterFetch: 'leave', intervalMinutes: 1 });
  assert.equal(s.status, 201, s.text);
  serverId = s.json.id;
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX, scope: GRAPH_RECEIVE });
  storeTokens(mailroom.dataDir, serverId, MAILBOX, t, peers.authServer.tenantId);
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-graph-push.log', mailroom?.output() ?? '');
  await mailroom?.stop();
  await proxy?.close();
  await graph?.close();
  await peers?.stop();
});

test('the Graph server subscribes after the validation handshake; Push: active until the expiry, polling at the long interval', T, async () => {
  const { view, sub } = await pushActive();
  assert.equal(sub.changeType, 'created');
  assert.equal(sub.notificationUrl, `http://127.0.0.1:${proxy.port}/graph/notifications`);
  assert.equal(sub.lifecycleNotificationUrl, `http://127.0.0.1:${proxy.port}/graph/lifecycle`);
  assert.ok(sub.clientState && sub.clientState.length >= 32 && sub.clientState.length <= 128, 'a random clientState of at most 128 characters');
  assert.ok(Date.parse(sub.expirationDateTime) <= Date.now() + MESSAGE_SUBSCRIPTION_MAX_MINUTES * 60_000);
  assert.equal(view.push.until, new Date(sub.expirationDateTime).toISOString());
  assert.equal(view.push.pollEveryMinutes, 60, 'the delta safety net runs at GRAPH_PUSH_POLL_MINUTES');
  const health = (await api('GET', '/api/v1/health/servers')).json.items.find((i: { id: string }) => i.id === serverId);
  assert.equal(health.push.state, 'active');
  // The secret itself is nowhere in what Mailroom shows.
  assert.ok(!JSON.stringify(view).includes(sub.clientState!));
});

test('new mail is imported within 3 s of arriving, with no poll in between', T, async () => {
  await pushActive();
  // Let the first fetch end: whatever it does is not what this measures.
  await waitFor('no fetch running', async () => ((await server()).fetch.running ? undefined : true));
  const before = await imported();
  const at = Date.now();
  graph.deliver(MAILBOX, mime('Re: invoice 1042'));
  await waitFor('the message imported', async () => ((await imported()) > before ? true : undefined), 3000, 50);
  const took = Date.now() - at;
  assert.ok(took < 3000, `imported ${took} ms after it arrived`);
  assert.ok(graph.posted.some((p) => p.kind === 'created' && p.status === 202), 'Graph\'s notification was accepted with 202');
});

test('forged notifications (unknown subscription, wrong clientState), floods and oversized bodies change nothing; the next real one works', T, async () => {
  const { sub } = await pushActive();
  await settle(500);
  const mark = deltaRequests();
  const rowBefore = (await server()).push;
  const endpoint = `${mailroom.baseUrl}/graph/notifications`;
  const post = (body: unknown) => fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const forged = [
    { value: [{ subscriptionId: sub.id, clientState: 'guessed', changeType: 'created', resource: 'Users/x/Messages/y' }] },
    { value: [{ subscriptionId: randomUUID(), clientState: sub.clientState, changeType: 'created' }] },
    { value: [{ subscriptionId: sub.id, changeType: 'created' }] },
    { value: [{ subscriptionId: sub.id, clientState: `${sub.clientState}x`, lifecycleEvent: 'subscriptionRemoved' }] },
  ];
  for (const f of forged) assert.equal((await post(f)).status, 202, 'answered like any notification: no oracle for guessing');
  assert.equal((await post({ value: 'nope' })).status, 400);
  assert.equal((await post({ value: [], pad: 'x'.repeat(300 * 1024) })).status, 413, 'a body over 256 KB is refused');
  // A flood from one address: bounded by the per-source rate limit, not by the database.
  // 40 connections at a time: under HTTP_MAX_CONNECTIONS_PER_ADDRESS, so the rate limit is what answers.
  const statuses: number[] = [];
  for (let k = 0; k < 10; k++) statuses.push(...(await Promise.all(Array.from({ length: 40 }, () => post({ value: [{ subscriptionId: randomUUID(), clientState: 'x' }] }).then((r) => r.status)))));
  assert.ok(statuses.includes(429), 'the flood is answered 429 past the burst');
  await settle(1500);
  assert.equal(deltaRequests(), mark, 'no delta run for a forged notification');
  const rowAfter = (await server()).push;
  assert.deepEqual(rowAfter, rowBefore, 'nothing recorded for them');
  assert.equal(subscription()?.id, sub.id, 'the subscription was not remade on a forged subscriptionRemoved');
  await assertHealthy();
  await settle(3000); // the bucket refills
  const before = await imported();
  graph.deliver(MAILBOX, mime('After the flood'));
  await waitFor('the next real notification imports', async () => ((await imported()) > before ? true : undefined), 5000, 50);
  const s = await server();
  assert.equal(s.push.state, 'active');
});

test('a burst of 100 notifications for one mailbox is one delta run', T, async () => {
  const { sub } = await pushActive();
  await waitFor('no fetch running', async () => ((await server()).fetch.running ? undefined : true));
  await settle(500);
  graph.notifications = false;
  graph.deliver(MAILBOX, mime('One of a burst'));
  graph.notifications = true;
  const before = await imported();
  const mark = deltaRequests();
  await graph.notify(sub.id, 100);
  await waitFor('the message imported', async () => ((await imported()) > before ? true : undefined), 5000, 50);
  await settle(1500);
  assert.equal(deltaRequests() - mark, 1, 'one delta request for 100 notifications');
  assert.equal(graph.posted.filter((p) => p.at >= 0 && p.kind === 'created').slice(-100).every((p) => p.status === 202), true);
});

test('a missed lifecycle event runs delta at once', T, async () => {
  const { sub } = await pushActive();
  graph.notifications = false;
  graph.deliver(MAILBOX, mime('Dropped by Graph'));
  graph.notifications = true;
  const before = await imported();
  await graph.lifecycle(sub.id, 'missed');
  await waitFor('the missed message imported', async () => ((await imported()) > before ? true : undefined), 5000, 50);
});

test('reauthorizationRequired renews the subscription; subscriptionRemoved makes a new one with a new clientState', T, async () => {
  const { sub } = await pushActive();
  const mark = graph.requests.length;
  await graph.lifecycle(sub.id, 'reauthorizationRequired');
  await waitFor('a renewal', async () => (graph.requests.slice(mark).some((r) => r.method === 'PATCH' && r.path === `/v1.0/subscriptions/${sub.id}` && r.status === 200) ? true : undefined), 10_000);
  await graph.lifecycle(sub.id, 'subscriptionRemoved');
  const { sub: again } = await pushActive(sub.id);
  assert.notEqual(again.clientState, sub.clientState);
  assert.equal(graph.subscriptions().filter((s) => s.mailbox === MAILBOX).length, 1, 'one subscription for the mailbox');
  const before = await imported();
  graph.deliver(MAILBOX, mime('After the new subscription'));
  await waitFor('imported through the new subscription', async () => ((await imported()) > before ? true : undefined), 5000, 50);
});

test('with the endpoint unreachable the subscription cannot be made: Mail Health says why, polling runs at the normal interval, and push comes back when it heals', T, async () => {
  const { sub } = await pushActive();
  await proxy.down();
  // Graph drops it (expired) without a word; the renewal finds it gone and validation fails.
  graph.expire(sub.id);
  const off = await waitFor('push off with the reason', async () => {
    const s = await server();
    return s.push?.state === 'off' && /validat/i.test(s.push.reason ?? '') ? s : undefined;
  }, 45_000);
  assert.equal(off.push.pollEveryMinutes, 1, 'back to the normal interval');
  assert.match(off.push.reason, /NOTIFICATION_BASE_URL/);
  const health = (await api('GET', '/api/v1/health/servers')).json.items.find((i: { id: string }) => i.id === serverId);
  assert.equal(health.push.state, 'off');
  const mark = graph.requests.filter((r) => r.path === '/v1.0/subscriptions' && r.method === 'POST').length;
  await settle(5000);
  assert.ok(graph.requests.filter((r) => r.path === '/v1.0/subscriptions' && r.method === 'POST').length - mark <= 3, 'retried every GRAPH_PUSH_RETRY_SECONDS, not in a loop');
  await proxy.up();
  await pushActive(sub.id);
  const before = await imported();
  graph.deliver(MAILBOX, mime('After the endpoint came back'));
  await waitFor('imported by push again', async () => ((await imported()) > before ? true : undefined), 5000, 50);
  await assertHealthy();
  mailroom.assertNoUnhandled();
});
