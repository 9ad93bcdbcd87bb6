import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { storeTokens } from '../helpers/connect-directly.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { getToken } from '../peers/get-token.ts';
import { GRAPH_RESOURCE, type Peers, startPeers } from '../peers/index.ts';
import { type GraphServer, startGraphServer } from '../peers/graph-server.ts';

// Server Type: Microsoft Graph for incoming mail, against the Graph stand-in: delta paging, raw MIME
// from $value, exactly-once import across an outage and a kill -9, after-fetch actions through Graph,
// webhooks and the pull API as for IMAP.
const CLIENT_ID = '6c2f8d3e-4b5a-4c6d-9e0f-1a2b3c4d5e6f';
const CLIENT_SECRET = 'Rc8Q~graph.Receive-Secret_Value~0123456789';
const MAILBOX = 'inbox-graph@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const T = { timeout: 180_000 };
const GRAPH_RECEIVE = ['openid', 'profile', 'email', 'offline_access', `${GRAPH_RESOURCE}/Mail.ReadWrite`, `${GRAPH_RESOURCE}/User.Read`].join(' ');

let peers: Peers;
let graph: GraphServer;
let mailroom: MailroomProcess;
let receiver: Server;
let key: string;
let serverId: string;
const received: string[] = [];
let n = 0;

const api = apiClient(() => mailroom.baseUrl, () => key);
const env = () => ({ MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost, MICROSOFT_GRAPH_HOST: graph.url, NODE_EXTRA_CA_CERTS: peers.caFile, WEBHOOK_RETRY_BASE_SECONDS: '0.2' });

function mime(subject: string, body = 'Hello through Graph.'): { raw: string; messageId: string } {
  const messageId = `<graph-in-${++n}-${Date.now()}@sender.example>`;
  const raw = ['From: Customer <customer@sender.example>', `To: ${MAILBOX}`, `Subject: ${subject}`, `Message-ID: ${messageId}`, 'Date: Sat, 28 Nov 2026 09:00:00 +0000', 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', body, ''].join('\r\n');
  return { raw, messageId };
}

const imported = async () => (await api('GET', `/api/v1/incoming-servers/${serverId}`)).json.importedCount as number;
async function fetchUntil(count: number) {
  const r = await api('POST', `/api/v1/incoming-servers/${serverId}/fetch`);
  assert.ok([202, 204, 200, 409].includes(r.status), r.text);
  let last: unknown;
  return waitFor(`${count} imported`, async () => {
    const s = (await api('GET', `/api/v1/incoming-servers/${serverId}`)).json;
    last = { importedCount: s.importedCount, fetch: s.fetch, lastError: s.lastError };
    if (s.fetch?.running) return undefined;
    return s.importedCount >= count ? s : undefined;
  }, 60_000).catch((e: Error) => {
    throw new Error(`${e.message}: ${JSON.stringify(last)}`);
  });
}
async function allMessages(): Promise<Array<{ id: string; messageId: string; subject: string }>> {
  // The pull API: ascending pages, each handing back the cursor to continue from, until one is empty.
  const out = [];
  let cursor: string | null = null;
  for (;;) {
    const r = await api('GET', `/api/v1/inbound-messages?serverId=${serverId}&limit=200${cursor ? `&after=${cursor}` : ''}`);
    if (!r.json.items.length) return out;
    out.push(...r.json.items);
    cursor = r.json.nextCursor;
  }
}

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  graph = await startGraphServer({ tls: { cert: peers.ca.cert, key: peers.ca.key }, introspectionUrl: peers.authServer.httpIntrospectionUrl, mailboxes: [MAILBOX] });
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push(JSON.parse(body).message.messageId);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  mailroom = await startMailroomProcess(env());
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const hook = await api('POST', '/api/v1/webhooks', { url: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`, description: 'ERP inbox' });
  assert.equal(hook.status, 201, hook.text);
  const s = await api('POST', '/api/v1/incoming-servers', { name: 'Inbox through Graph', serverType: 'graph', username: MAILBOX, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, folder: 'INBOX', afterFetch: 'mark_read', intervalMinutes: 1440 });
  assert.equal(s.status, 201, s.text);
  assert.equal(s.json.serverType, 'graph');
  serverId = s.json.id;
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX, scope: GRAPH_RECEIVE });
  storeTokens(mailroom.dataDir, serverId, MAILBOX, t, peers.authServer.tenantId);
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-graph-receive.log', mailroom?.output() ?? '');
  await mailroom?.stop();
  await new Promise((r) => receiver?.close(r));
  await graph?.close();
  await peers?.stop();
});

test('Test & Confirm through Graph counts the folder\'s messages', T, async () => {
  graph.deliver(MAILBOX, mime('Before the test').raw);
  const r = await api('POST', `/api/v1/incoming-servers/${serverId}/test`);
  assert.equal(r.json.ok, true, r.text);
  assert.match(r.json.message, /Connection Test Successful! 1 message in INBOX/);
});

test('delta pages import every message once with parsed fields and the raw MIME; each is marked read in the mailbox', T, async () => {
  const sent = [];
  for (let i = 0; i < 119; i++) sent.push(mime(`Order ${i}`));
  const ids = sent.map((m) => graph.deliver(MAILBOX, m.raw));
  const big = mime('Large scan', 'x'.repeat(2 * 1024 * 1024));
  ids.push(graph.deliver(MAILBOX, big.raw));
  await fetchUntil(121);
  assert.equal(await imported(), 121);
  const msgs = await allMessages();
  assert.equal(new Set(msgs.map((m) => m.messageId)).size, 121);
  const order7 = msgs.find((m) => m.subject === 'Order 7')!;
  const full = (await api('GET', `/api/v1/inbound-messages/${order7.id}`)).json;
  assert.equal(full.from, 'Customer <customer@sender.example>');
  assert.match(full.text, /Hello through Graph/);
  const bigRow = msgs.find((m) => m.subject === 'Large scan')!;
  const raw = await fetch(`${mailroom.baseUrl}/api/v1/inbound-messages/${bigRow.id}/raw`, { headers: { authorization: `Bearer ${key}` } });
  assert.ok(Buffer.from(await raw.arrayBuffer()).equals(Buffer.from(big.raw)), 'the 2 MB message\'s raw MIME is kept byte for byte');
  assert.ok(ids.every((id) => graph.message(MAILBOX, id)?.isRead), 'every imported message is marked read through Graph');
  assert.ok(graph.requests.filter((r) => r.path.endsWith('/messages/delta')).length >= 3, 'more than one delta page');
  await waitFor('one webhook delivery per message', async () => (received.length >= 121 ? true : undefined));
  assert.equal(new Set(received).size, received.length, 'no message delivered to the webhook twice');
});

test('an outage mid-fetch, then kill -9 and a restart: the next fetch resumes from the committed link and downloads only what is missing, nothing twice', T, async () => {
  const before = await imported();
  const sent = Array.from({ length: 130 }, (_, i) => mime(`Batch two ${i}`));
  for (const m of sent) graph.deliver(MAILBOX, m.raw);
  // The first delta page and its downloads go through, then Graph answers 503.
  graph.failAfter(70);
  await api('POST', `/api/v1/incoming-servers/${serverId}/fetch`);
  const failed = await waitFor('the fetch to fail', async () => {
    const s = (await api('GET', `/api/v1/incoming-servers/${serverId}`)).json;
    return !s.fetch?.running && s.fetch?.error ? s : undefined;
  });
  assert.equal(failed.fetch.error.code, 'GRAPH_THROTTLED');
  const partial = await imported();
  assert.ok(partial > before && partial < before + 130, `a part was committed (${partial - before})`);
  await mailroom.crash();
  mailroom = await startMailroomProcess(env(), undefined, mailroom.dataDir);
  const mark = graph.requests.length;
  await fetchUntil(before + 130);
  const after = graph.requests.slice(mark);
  const firstDelta = after.find((r) => r.path.endsWith('/messages/delta'));
  assert.match(firstDelta?.query ?? '', /\$skiptoken=/, 'the delta query starts from the page link committed with the last import');
  assert.equal(after.filter((r) => r.path.endsWith('/$value') && r.status === 200).length, before + 130 - partial, 'only the messages not yet imported are downloaded');
  const msgs = await allMessages();
  assert.equal(msgs.length, before + 130);
  assert.equal(new Set(msgs.map((m) => m.messageId)).size, msgs.length, 'every message exactly once');
});

test('Move to a folder goes through Graph, creating the folder', T, async () => {
  const r = await api('PATCH', `/api/v1/incoming-servers/${serverId}`, { afterFetch: 'move', moveToFolder: 'Processed' });
  assert.equal(r.status, 200, r.text);
  const id = graph.deliver(MAILBOX, mime('To be moved').raw);
  await fetchUntil((await imported()) + 1);
  await waitFor('the message to be moved', async () => (graph.message(MAILBOX, id)?.folder === 'processed' ? true : undefined));
});
