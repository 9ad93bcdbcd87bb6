import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { apiClient, settledMessage, waitFor } from '../helpers/e2e.ts';
import { storeTokens } from '../helpers/connect-directly.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { getToken } from '../peers/get-token.ts';
import { GRAPH_RESOURCE, type Peers, startPeers } from '../peers/index.ts';
import { type GraphServer, startGraphServer } from '../peers/graph-server.ts';

// Send Using: Microsoft Graph, against the Graph stand-in (tokens checked by introspection at the test
// authorization server: Graph audience, Mail.Send) — the outbox, Test Connection and the retry policy.
const CLIENT_ID = '5b1e7c2d-3a4f-4b6c-8d9e-0f1a2b3c4d5e';
const CLIENT_SECRET = 'Gr8Q~graph.Test-Secret_Value~0123456789';
const MAILBOX = 'graph@example.test';
const NO_SEND = 'nosend@example.test';
const UNLICENSED = 'unlicensed@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const T = { timeout: 120_000 };
const GRAPH_SEND = ['openid', 'profile', 'email', 'offline_access', `${GRAPH_RESOURCE}/Mail.Send`, `${GRAPH_RESOURCE}/Mail.ReadWrite`, `${GRAPH_RESOURCE}/User.Read`].join(' ');

let peers: Peers;
let graph: GraphServer;
let mailroom: MailroomProcess;
let key: string;
const servers: Record<string, string> = {};

const api = apiClient(() => mailroom.baseUrl, () => key);

async function graphServer(name: string, username: string, scope: string, extra: Record<string, unknown> = {}): Promise<string> {
  const s = await api('POST', '/api/v1/mail-servers', { name, username, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, sendUsing: 'graph', ...extra });
  assert.equal(s.status, 201, JSON.stringify(s.json));
  assert.equal(s.json.sendUsing, 'graph');
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: username, scope });
  storeTokens(mailroom.dataDir, s.json.id, username, t, peers.authServer.tenantId);
  return s.json.id as string;
}

const finalState = (id: string) => settledMessage(api, id);

const sendMailRequests = () => graph.requests.filter((r) => r.path.endsWith('/sendMail')).length;

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  graph = await startGraphServer({ tls: { cert: peers.ca.cert, key: peers.ca.key }, introspectionUrl: peers.authServer.httpIntrospectionUrl, mailboxes: [MAILBOX, NO_SEND, UNLICENSED], unlicensed: [UNLICENSED] });
  mailroom = await startMailroomProcess({
    MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost,
    MICROSOFT_GRAPH_HOST: graph.url,
    NODE_EXTRA_CA_CERTS: peers.caFile,
    OUTBOX_RETRY_BASE_SECONDS: '0.2',
    OUTBOX_MAX_ATTEMPTS: '10',
  });
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  servers.main = await graphServer('Graph sales', MAILBOX, GRAPH_SEND, { fromFilter: 'example.test', priority: 1 });
});

after(async () => {
  await mailroom?.stop();
  await graph?.close();
  await peers?.stop();
});

test('Test Connection through Graph: a Graph token, the mailbox found, Mail.Send granted', T, async () => {
  const r = await api('POST', `/api/v1/mail-servers/${servers.main}/test`);
  assert.equal(r.json.ok, true, JSON.stringify(r.json));
  assert.equal(r.json.message, 'Connection Test Successful!');
  assert.ok(graph.requests.some((x) => x.path === `/v1.0/users/${encodeURIComponent(MAILBOX)}` && x.status === 200));
  const s = (await api('GET', `/api/v1/mail-servers/${servers.main}`)).json;
  const login = s.checklist.find((i: { key: string }) => i.key === 'login');
  assert.equal(login.label, 'Microsoft Graph accepted');
  assert.equal(login.state, 'done');
});

test('a message goes out in one sendMail request, as MIME with its Message-ID, threading and custom headers', T, async () => {
  const before = sendMailRequests();
  const r = await api('POST', '/api/v1/messages', {
    from: MAILBOX,
    to: ['customer@remote.example'],
    bcc: ['audit@remote.example'],
    subject: 'Invoice 42 through Graph',
    text: 'Please find the invoice attached.',
    headers: { 'X-Erp-Document': 'INV-42', 'In-Reply-To': '<order-41@erp.example>', References: '<order-41@erp.example>' },
    attachments: [{ filename: 'invoice.pdf', contentType: 'application/pdf', content: Buffer.from('%PDF-1.7 invoice').toString('base64') }],
  });
  assert.equal(r.status, 202, JSON.stringify(r.json));
  const done = await finalState(r.json.id);
  assert.equal(done.state, 'sent', JSON.stringify(done.lastError));
  assert.equal(sendMailRequests() - before, 1, 'one Graph request for a message under 4 MB');
  const sent = graph.sent.find((s) => s.mime?.toString('latin1').includes(`Message-ID: ${r.json.messageId}`));
  assert.ok(sent, 'Graph received the MIME with Mailroom\'s Message-ID');
  const mime = sent.mime!.toString('latin1');
  assert.match(mime, /^X-Erp-Document: INV-42$/m);
  assert.match(mime, /^In-Reply-To: <order-41@erp\.example>$/m);
  assert.match(mime, /^References: <order-41@erp\.example>$/m);
  assert.match(mime, /^Bcc: audit@remote\.example$/m, 'Graph takes Bcc recipients from the MIME headers');
  assert.ok(mime.includes(Buffer.from('%PDF-1.7 invoice').toString('base64')));
});

test('a 10 MB attachment goes through a draft and an upload session', T, async () => {
  const bytes = Buffer.alloc(10 * 1024 * 1024);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + (i >> 11)) & 0xff;
  const r = await api('POST', '/api/v1/messages', {
    from: MAILBOX,
    to: ['customer@remote.example'],
    subject: 'Large drawing',
    html: '<p>The drawing is attached.</p>',
    headers: { 'X-Erp-Document': 'DRW-7' },
    attachments: [
      { filename: 'drawing.bin', contentType: 'application/octet-stream', content: bytes.toString('base64') },
      { filename: 'note.txt', contentType: 'text/plain', content: Buffer.from('small').toString('base64') },
    ],
  });
  assert.equal(r.status, 202);
  const done = await finalState(r.json.id);
  assert.equal(done.state, 'sent', JSON.stringify(done.lastError));
  const sent = graph.sent.find((s) => s.draft?.json.subject === 'Large drawing');
  assert.ok(sent?.draft);
  const big = sent.draft.attachments.find((a) => a.name === 'drawing.bin')!;
  assert.equal(big.via, 'upload-session');
  assert.ok(big.bytes.equals(bytes), 'the attachment arrived byte for byte');
  assert.equal(sent.draft.attachments.find((a) => a.name === 'note.txt')?.via, 'inline');
  assert.equal(sent.draft.json.internetMessageId, r.json.messageId);
  // Mailroom's own identifier rides along: a bounce that loses the Message-ID still finds the message.
  assert.deepEqual(sent.draft.json.internetMessageHeaders, [{ name: 'X-Erp-Document', value: 'DRW-7' }, { name: 'X-Mailroom-Id', value: r.json.id }]);
});

test('throttling (429 with Retry-After) is waited out and the message sent once', T, async () => {
  graph.throttle(2, 1);
  const started = Date.now();
  const r = await api('POST', '/api/v1/messages', { from: MAILBOX, to: ['later@remote.example'], subject: 'Throttled', text: 'x' });
  const done = await finalState(r.json.id);
  assert.equal(done.state, 'sent', JSON.stringify(done.lastError));
  assert.ok(done.attempts >= 3, `attempts ${done.attempts}`);
  assert.ok(Date.now() - started >= 2000, 'each retry waited for Retry-After (1 s)');
  assert.equal(graph.sent.filter((s) => s.mime?.toString('latin1').includes(`Message-ID: ${r.json.messageId}`)).length, 1);
});

test('Send As denied fails the message with its catalogue entry and Graph\'s reply', T, async () => {
  const r = await api('POST', '/api/v1/messages', { from: 'boss@example.test', to: ['x@remote.example'], subject: 'As the boss', text: 'x' });
  assert.equal(r.status, 202, JSON.stringify(r.json));
  const done = await finalState(r.json.id);
  assert.equal(done.state, 'failed');
  assert.equal(done.lastError.code, 'GRAPH_ErrorSendAsDenied');
  assert.match(done.lastError.message, /ErrorSendAsDenied/);
  assert.match(done.lastError.fix, /Send as/);
  // Both addresses are named: the From the ERP used and the mailbox that signed in.
  assert.ok(done.lastError.message.includes(`The mailbox ${MAILBOX} (the server's Username) may not send as boss@example.test`), done.lastError.message);
  assert.ok(done.lastError.fix.includes(`-Identity boss@example.test -Trustee ${MAILBOX}`), done.lastError.fix);
});

test('a sign-in without Mail.Send: Test Connection names the missing permission, and mail is held, not failed', T, async () => {
  servers.nosend = await graphServer('Graph without Mail.Send', NO_SEND, ['openid', 'profile', 'email', 'offline_access', `${GRAPH_RESOURCE}/User.Read`].join(' '), { fromFilter: NO_SEND });
  const t = await api('POST', `/api/v1/mail-servers/${servers.nosend}/test`);
  assert.equal(t.json.ok, false);
  assert.equal(t.json.code, 'GRAPH_MISSING_PERMISSION');
  assert.match(t.json.message, /Mail\.Send/);
  assert.match(t.json.fix, /API permissions/);
  const r = await api('POST', '/api/v1/messages', { from: NO_SEND, to: ['x@remote.example'], subject: 'Needs Mail.Send', text: 'x' });
  const done = await finalState(r.json.id);
  assert.equal(done.state, 'held');
  assert.equal(done.lastError.code, 'GRAPH_ErrorAccessDenied');
});

test('a mailbox without Exchange Online: Test Connection and sending explain MailboxNotEnabledForRESTAPI', T, async () => {
  servers.unlicensed = await graphServer('Graph unlicensed', UNLICENSED, GRAPH_SEND, { fromFilter: UNLICENSED });
  const t = await api('POST', `/api/v1/mail-servers/${servers.unlicensed}/test`);
  assert.equal(t.json.ok, false);
  assert.equal(t.json.code, 'GRAPH_MailboxNotEnabledForRESTAPI', JSON.stringify(t.json));
  const r = await api('POST', '/api/v1/messages', { from: UNLICENSED, to: ['x@remote.example'], subject: 'No mailbox', text: 'x' });
  const done = await finalState(r.json.id);
  assert.equal(done.state, 'held');
  assert.equal(done.lastError.code, 'GRAPH_MailboxNotEnabledForRESTAPI');
  assert.match(done.lastError.fix, /Exchange Online licence/);
});
