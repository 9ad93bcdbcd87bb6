import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { dsn } from '../helpers/dsn.ts';
import { storeTokens } from '../helpers/connect-directly.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { getToken } from '../peers/get-token.ts';
import { GRAPH_RESOURCE, type Peers, startPeers } from '../peers/index.ts';
import { type GraphServer, startGraphServer } from '../peers/graph-server.ts';

// The same after-the-250 flow over Microsoft Graph: a Graph outgoing server watches its own mailbox
// through its own connection (Graph delta), Exchange drops an NDR into it, and the message shows
// Bounced with one message.bounced webhook.
const CLIENT_ID = '7d3e9f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6';
const CLIENT_SECRET = 'Sd9Q~graph.Bounce-Secret_Value~0123456789';
const MAILBOX = 'billing-graph@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const T = { timeout: 120_000 };
const SCOPES = ['openid', 'profile', 'email', 'offline_access', `${GRAPH_RESOURCE}/Mail.Send`, `${GRAPH_RESOURCE}/Mail.ReadWrite`, `${GRAPH_RESOURCE}/User.Read`].join(' ');

let peers: Peers;
let graph: GraphServer;
let mailroom: MailroomProcess;
let receiver: Server;
let key: string;
let outgoingId: string;
let incomingId: string;
const received: Array<{ event: string; body: any }> = [];
const api = apiClient(() => mailroom.baseUrl, () => key);

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  graph = await startGraphServer({ tls: { cert: peers.ca.cert, key: peers.ca.key }, introspectionUrl: peers.authServer.httpIntrospectionUrl, mailboxes: [MAILBOX] });
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ event: String(req.headers['x-mailroom-event']), body: JSON.parse(body) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  mailroom = await startMailroomProcess({ MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost, MICROSOFT_GRAPH_HOST: graph.url, NODE_EXTRA_CA_CERTS: peers.caFile, WEBHOOK_RETRY_BASE_SECONDS: '0.2' });
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  assert.equal((await api('POST', '/api/v1/webhooks', { url: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook` })).status, 201);
  const s = await api('POST', '/api/v1/mail-servers', { name: 'Billing Graph', username: MAILBOX, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, sendUsing: 'graph' });
  assert.equal(s.status, 201, s.text);
  outgoingId = s.json.id;
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX, scope: SCOPES });
  storeTokens(mailroom.dataDir, outgoingId, MAILBOX, t, peers.authServer.tenantId);
  const w = await api('POST', `/api/v1/mail-servers/${outgoingId}/watch`, { intervalMinutes: 1440 });
  assert.equal(w.status, 201, w.text);
  assert.equal(w.json.serverType, 'graph');
  assert.equal(w.json.tokenSourceId, outgoingId);
  incomingId = w.json.id;
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-bounce-graph.log', mailroom?.output() ?? '');
  await mailroom?.stop();
  await new Promise((r) => receiver?.close(r));
  await graph?.close();
  await peers?.stop();
});

test('over Graph: an NDR delivered into the sending mailbox marks the message Bounced and raises one message.bounced', T, async () => {
  const sent = await api('POST', '/api/v1/messages', { from: MAILBOX, to: ['nobody@customer.example'], subject: 'Invoice G-1', text: 'Attached.' });
  assert.equal(sent.status, 202, sent.text);
  await waitFor('sent through Graph', async () => ((await api('GET', `/api/v1/messages/${sent.json.id}`)).json.state === 'sent' ? true : undefined));
  const out = graph.sent.at(-1)!;
  // What Exchange quotes of the original: its headers (MIME path) or the draft's Message-ID and X- headers.
  const headerBlock = out.mime
    ? out.mime.toString('latin1').split('\r\n\r\n')[0]!
    : [`From: ${MAILBOX}`, 'To: nobody@customer.example', 'Subject: Invoice G-1', `Message-ID: ${String(out.draft!.json.internetMessageId ?? sent.json.messageId)}`, ...((out.draft!.json.internetMessageHeaders as Array<{ name: string; value: string }> | undefined) ?? []).map((h) => `${h.name}: ${h.value}`)].join('\r\n');
  graph.deliver(MAILBOX, dsn({ to: MAILBOX, recipient: 'nobody@customer.example', reportingMta: 'AM0PR04MB8000.eurprd04.prod.outlook.com', diagnostic: '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup', status: '5.1.10', original: { headerBlock } }));

  const r = await api('POST', `/api/v1/incoming-servers/${incomingId}/fetch`);
  assert.ok([200, 202, 409].includes(r.status), r.text);
  await waitFor('Bounced', async () => ((await api('GET', `/api/v1/messages/${sent.json.id}`)).json.outcome === 'bounced' ? true : undefined), 60_000);
  const m = (await api('GET', `/api/v1/messages/${sent.json.id}`)).json;
  assert.deepEqual(m.recipients.map((x: any) => [x.address, x.state, x.status]), [['nobody@customer.example', 'bounced', '5.1.10']]);
  const hook = await waitFor('message.bounced', async () => received.find((x) => x.event === 'message.bounced'));
  assert.equal(hook.body.message.id, sent.json.id);
  await api('POST', `/api/v1/incoming-servers/${incomingId}/fetch`);
  await new Promise((res) => setTimeout(res, 1500));
  assert.equal(received.filter((x) => x.event === 'message.bounced').length, 1);
  assert.equal(received.filter((x) => x.event === 'message.received').length, 0, 'the NDR is not new mail');
});
