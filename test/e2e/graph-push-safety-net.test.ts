import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { storeTokens } from '../helpers/connect-directly.ts';
import { freePort, type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { getToken } from '../peers/get-token.ts';
import { GRAPH_RESOURCE, type Peers, startPeers } from '../peers/index.ts';
import { type GraphServer, startGraphServer } from '../peers/graph-server.ts';

// Delta stays the safety net: Graph stops posting notifications while the subscription lives on (the
// stand-in keeps it but posts nothing). The next scheduled delta (GRAPH_PUSH_POLL_MINUTES=1 here, 15 by
// default) imports the mail, marks push as not arriving with the reason, and the mailbox polls at its
// normal interval until a notification arrives again.
const CLIENT_ID = '9f5a1b6c-7d8e-4f9a-8b1c-2d3e4f5a6b7c';
const CLIENT_SECRET = 'Sn6Q~graph.SafetyNet-Secret~0123456789';
const MAILBOX = 'safety-net@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const GRAPH_RECEIVE = ['openid', 'profile', 'email', 'offline_access', `${GRAPH_RESOURCE}/Mail.ReadWrite`, `${GRAPH_RESOURCE}/User.Read`].join(' ');

let peers: Peers;
let graph: GraphServer;
let mailroom: MailroomProcess;
let key: string;
let serverId: string;
const api = apiClient(() => mailroom.baseUrl, () => key);
const server = async () => (await api('GET', `/api/v1/incoming-servers/${serverId}`)).json;
const mime = (subject: string) => [`From: c@sender.example`, `To: ${MAILBOX}`, `Subject: ${subject}`, `Message-ID: <${subject.replace(/\W/g, '')}-${Date.now()}@sender.example>`, '', 'x', ''].join('\r\n');

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  graph = await startGraphServer({ tls: { cert: peers.ca.cert, key: peers.ca.key }, introspectionUrl: peers.authServer.httpIntrospectionUrl, mailboxes: [MAILBOX] });
  const port = await freePort();
  mailroom = await startMailroomProcess({ MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost, MICROSOFT_GRAPH_HOST: graph.url, NODE_EXTRA_CA_CERTS: peers.caFile, NOTIFICATION_BASE_URL: `http://127.0.0.1:${port}`, GRAPH_PUSH_POLL_MINUTES: '1' }, port);
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const s = await api('POST', '/api/v1/incoming-servers', { name: 'Safety net', serverType: 'graph', username: MAILBOX, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, folder: 'INBOX', afterFetch: 'leave', intervalMinutes: 1 });
  assert.equal(s.status, 201, s.text);
  serverId = s.json.id;
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX, scope: GRAPH_RECEIVE });
  storeTokens(mailroom.dataDir, serverId, MAILBOX, t, peers.authServer.tenantId);
});

after(async () => {
  await mailroom?.stop();
  await graph?.close();
  await peers?.stop();
});

test('notifications that stop arriving: the scheduled delta imports the mail, Mail Health says push is not arriving, and the next notification makes it active again', { timeout: 150_000 }, async () => {
  await waitFor('push active', async () => ((await server()).push?.state === 'active' ? true : undefined), 40_000);
  graph.notifications = false;
  graph.deliver(MAILBOX, mime('Never announced'));
  const silent = await waitFor('the safety net to find it', async () => {
    const s = await server();
    return s.importedCount >= 1 && s.push?.state === 'silent' ? s : undefined;
  }, 100_000, 500);
  assert.match(silent.push.reason, /no change notification announced/);
  assert.equal(silent.push.pollEveryMinutes, 1, 'the normal interval');
  const health = (await api('GET', '/api/v1/health/servers')).json.items.find((i: { id: string }) => i.id === serverId);
  assert.equal(health.push.state, 'silent');
  graph.notifications = true;
  const at = Date.now();
  graph.deliver(MAILBOX, mime('Announced again'));
  await waitFor('imported by push', async () => ((await server()).importedCount >= 2 ? true : undefined), 5000, 50);
  assert.ok(Date.now() - at < 5000);
  await waitFor('push active again', async () => ((await server()).push?.state === 'active' ? true : undefined), 5000);
  mailroom.assertNoUnhandled();
});
