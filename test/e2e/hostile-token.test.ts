import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import SQLite from 'better-sqlite3';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { storeTokens } from '../helpers/connect-directly.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { assertResponsive, rssMb, watchRss } from '../helpers/process-health.ts';
import { getToken } from '../peers/get-token.ts';
import { GRAPH_RESOURCE, type Peers, startPeers } from '../peers/index.ts';
import { type GraphServer, startGraphServer } from '../peers/graph-server.ts';
import { type HostileTokenEndpoint, type TokenEndpointBehavior, startHostileTokenEndpoint } from '../peers/hostile-token-endpoint.ts';

// MICROSOFT_AUTHORITY_HOST points at a token endpoint that misbehaves (test/peers/hostile-token-endpoint.ts)
// in front of the real test authorization server. Each behaviour has its own client id; the servers hold
// refresh tokens about to be used. Every token request is bounded (20 s, 1 MB, 16 KB per token), so the
// process stays up and answering, Test Connection explains within 30 s, queued mail waits, and once the
// endpoint behaves again the next refresh works and mail goes out.
const SECRET = 'Ht8Q~hostile.Token-Secret_Value~0123456789';
const CLIENTS = {
  silent: '11111111-1b2c-4d3e-8f40-000000000001',
  drip: '11111111-1b2c-4d3e-8f40-000000000002',
  endless: '11111111-1b2c-4d3e-8f40-000000000003',
  huge: '11111111-1b2c-4d3e-8f40-000000000004',
  long: '11111111-1b2c-4d3e-8f40-000000000005',
  consent: '11111111-1b2c-4d3e-8f40-000000000006',
} as const;
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const T = { timeout: 90_000 };
const SMTP_SCOPE = undefined; // get-token's default: Outlook SMTP and IMAP
const GRAPH_SEND = ['openid', 'profile', 'email', 'offline_access', `${GRAPH_RESOURCE}/Mail.Send`, `${GRAPH_RESOURCE}/Mail.ReadWrite`, `${GRAPH_RESOURCE}/User.Read`].join(' ');
const GRAPH_RECEIVE = ['openid', 'profile', 'email', 'offline_access', `${GRAPH_RESOURCE}/Mail.ReadWrite`, `${GRAPH_RESOURCE}/User.Read`].join(' ');
/** Test Connection against a token endpoint that never answers must end within this (the bound is 20 s). */
const ANSWER_WITHIN_MS = 30_000;

let peers: Peers;
let graph: GraphServer;
let hostile: HostileTokenEndpoint;
let mailroom: MailroomProcess;
let key: string;
let baselineRss: number;
const ids: Record<string, string> = {};
const api = apiClient(() => mailroom.baseUrl, () => key);

/** Stores a fresh grant for the server whose access token has just expired: the next use must refresh it. */
async function connect(serverId: string, clientId: string, login: string, scope: string | undefined) {
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId, clientSecret: SECRET, redirectUri: TOKEN_REDIRECT, login, ...(scope && { scope }) });
  storeTokens(mailroom.dataDir, serverId, login, { ...t, expires_in: -60 }, peers.authServer.tenantId);
}

async function outgoing(name: string, clientId: string, username: string, transport: 'smtp' | 'graph', scope = transport === 'graph' ? GRAPH_SEND : SMTP_SCOPE) {
  const body = { name, username, clientId, clientSecret: SECRET, fromFilter: username, ...(transport === 'graph' ? { sendUsing: 'graph' } : { smtpHost: '127.0.0.1', smtpPort: peers.dovecot.submissionPort, smtpSecurity: 'starttls' }) };
  const s = await api('POST', '/api/v1/mail-servers', body);
  assert.equal(s.status, 201, s.text);
  await connect(s.json.id, clientId, username, scope);
  return s.json.id as string;
}

async function incoming(name: string, clientId: string, username: string, serverType: 'imap' | 'graph') {
  const body = {
    name, username, clientId, clientSecret: SECRET, folder: 'INBOX', afterFetch: 'mark_read', intervalMinutes: 1440,
    ...(serverType === 'graph' ? { serverType } : { imapHost: '127.0.0.1', imapPort: peers.dovecot.imapsPort, imapSecurity: 'tls' }),
  };
  const s = await api('POST', '/api/v1/incoming-servers', body);
  assert.equal(s.status, 201, s.text);
  await connect(s.json.id, clientId, username, serverType === 'graph' ? GRAPH_RECEIVE : SMTP_SCOPE);
  return s.json.id as string;
}

/** Test Connection (outgoing: Test Connection, incoming: Test & Confirm) and how long its answer took. */
async function testConnection(kind: 'mail-servers' | 'incoming-servers', id: string) {
  const start = performance.now();
  const r = await api('POST', `/api/v1/${kind}/${id}/test`);
  return { ...r.json, tookMs: performance.now() - start };
}

/** The oauth_tokens row as stored: the sealed access token's size tells whether a huge token got in. */
function storedAccessTokenChars(serverId: string): number {
  const db = new SQLite(join(mailroom.dataDir, 'mailroom.sqlite'), { readonly: true });
  try {
    const row = db.prepare('select access_token_sealed as a, refresh_token_sealed as r from oauth_tokens where mail_server_id = ?').get(serverId) as { a: string | null; r: string | null };
    return Math.max(row.a?.length ?? 0, row.r?.length ?? 0);
  } finally {
    db.close();
  }
}

let exited = false;
async function healthy() {
  assert.equal(exited, false, 'the process is running');
  await assertResponsive(mailroom.baseUrl, 1000);
}

/** The token requests of one behaviour, each closed by Mailroom within `ms` of its start (none still open past it). */
function allClosedWithin(behavior: TokenEndpointBehavior, ms: number) {
  const seen = hostile.requests.filter((q) => q.behavior === behavior);
  assert.ok(seen.length > 0, `no ${behavior} request`);
  for (const q of seen) assert.ok(((q.closedAt ?? new Date()).getTime() - q.at.getTime()) < ms, `a ${behavior} answer was open for ${(q.closedAt ?? new Date()).getTime() - q.at.getTime()} ms`);
  return seen;
}

before(async () => {
  peers = await startPeers({ clients: Object.values(CLIENTS).map((clientId) => ({ clientId, clientSecret: SECRET, redirectUris: [TOKEN_REDIRECT] })) });
  graph = await startGraphServer({ tls: { cert: peers.ca.cert, key: peers.ca.key }, introspectionUrl: peers.authServer.httpIntrospectionUrl, mailboxes: ['graph@example.test', 'graphin@example.test', 'long@example.test', 'switch@example.test'] });
  hostile = await startHostileTokenEndpoint({ tls: { cert: peers.ca.cert, key: peers.ca.key }, upstream: { authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem } });
  mailroom = await startMailroomProcess({
    MICROSOFT_AUTHORITY_HOST: hostile.authorityHost,
    MICROSOFT_GRAPH_HOST: graph.url,
    NODE_EXTRA_CA_CERTS: peers.caFile,
    OUTBOX_RETRY_BASE_SECONDS: '5',
  });
  void mailroom.exited.then(() => (exited = true));
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  for (const [behavior, clientId] of Object.entries(CLIENTS)) hostile.behave(clientId, behavior === 'consent' ? 'graph-consent-missing' : (behavior === 'huge' ? 'huge-token' : behavior === 'long' ? 'long-token' : behavior) as TokenEndpointBehavior);
  ids.smtp = await outgoing('SMTP, silent endpoint', CLIENTS.silent, 'smtp@example.test', 'smtp');
  ids.graph = await outgoing('Graph, silent endpoint', CLIENTS.silent, 'graph@example.test', 'graph');
  ids.imap = await incoming('IMAP, silent endpoint', CLIENTS.silent, 'imap@example.test', 'imap');
  ids.graphIn = await incoming('Graph inbox, silent endpoint', CLIENTS.silent, 'graphin@example.test', 'graph');
  ids.drip = await outgoing('SMTP, dripping endpoint', CLIENTS.drip, 'drip@example.test', 'smtp');
  ids.endless = await outgoing('SMTP, endless endpoint', CLIENTS.endless, 'endless@example.test', 'smtp');
  ids.huge = await outgoing('SMTP, 10 MB token', CLIENTS.huge, 'huge@example.test', 'smtp');
  ids.long = await outgoing('Graph, 100 KB token', CLIENTS.long, 'long@example.test', 'graph');
  // Connected for SMTP (the grant covers SMTP and IMAP only), then switched to Send Using Graph.
  ids.switched = await outgoing('Switched to Graph', CLIENTS.consent, 'switch@example.test', 'smtp');
  const switched = await api('PATCH', `/api/v1/mail-servers/${ids.switched}`, { sendUsing: 'graph' });
  assert.equal(switched.status, 200, switched.text);
  baselineRss = rssMb(mailroom.pid);
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-hostile-token.log', mailroom?.output() ?? '');
  await mailroom?.stop();
  await hostile?.close();
  await graph?.close();
  await peers?.stop();
});

test('a token endpoint that never answers: Test Connection of outgoing SMTP and Graph, incoming IMAP and Graph each fails within 30 s, explained, while the sends hold every Graph slot; queued Graph mail goes back to the queue', T, async () => {
  // Five messages: the outbox's sends hold all four of the mailbox's Graph slots while they wait for the token.
  const queued: string[] = [];
  for (let i = 1; i <= 5; i++) {
    const r = await api('POST', '/api/v1/messages', { from: 'graph@example.test', to: ['someone@example.test'], subject: `Waits for a token ${i}`, text: 'Queued while the token endpoint hangs.' });
    assert.equal(r.status, 202, r.text);
    queued.push(r.json.id as string);
  }
  const sent = { json: { id: queued[0]! } };
  const queuedAt = performance.now();
  await waitFor('the sends to wait on the token', async () => {
    const states = await Promise.all(queued.map(async (id) => (await api('GET', `/api/v1/messages/${id}`)).json.state));
    return states.filter((x) => x === 'sending').length >= 4 ? true : undefined;
  }, 5000, 50);
  const tests = Promise.all([
    testConnection('mail-servers', ids.smtp!),
    testConnection('mail-servers', ids.graph!),
    testConnection('incoming-servers', ids.imap!),
    testConnection('incoming-servers', ids.graphIn!),
  ]);
  // While four refreshes and a send hang, the process answers at once.
  await new Promise((r) => setTimeout(r, 5000));
  await healthy();
  assert.ok(hostile.pending() >= 4, `the endpoint holds the refreshes (${hostile.pending()})`);
  for (const r of await tests) {
    assert.equal(r.ok, false, JSON.stringify(r));
    assert.ok(r.tookMs < ANSWER_WITHIN_MS, `answered after ${Math.round(r.tookMs)} ms`);
    assert.equal(r.code, 'MR_OAUTH_UNREACHABLE', JSON.stringify(r));
    assert.equal(r.evidence.diagnosis, 'OAUTH_TOKEN_ENDPOINT_TIMEOUT');
    assert.equal(r.evidence.origin, hostile.authorityHost);
    assert.match(r.message, new RegExp(`token endpoint at ${hostile.authorityHost.replace(/\./g, '\\.')} did not finish answering within 20 s`));
    assert.match(r.fix, /MICROSOFT_AUTHORITY_HOST.*proxy.*Service health.*retries by itself/);
    assert.doesNotMatch(JSON.stringify(r), /oauth2\/v2\.0\/token|refresh_token=/, 'the origin only, never the path');
  }
  const message = await waitFor('the message back in the queue with the reason', async () => {
    const m = (await api('GET', `/api/v1/messages/${sent.json.id}`)).json;
    return m.lastError ? m : undefined;
  }, ANSWER_WITHIN_MS, 100);
  assert.ok(performance.now() - queuedAt < ANSWER_WITHIN_MS + 5000, 'not minutes in sending');
  assert.equal(message.state, 'queued', 'a slow token endpoint is a temporary failure: the message is retried');
  assert.equal(message.lastError.code, 'OAUTH_TOKEN_ENDPOINT_TIMEOUT');
  assert.match(message.lastError.fix, /retries by itself/);
  for (const id of [ids.smtp!, ids.graph!]) {
    const s = (await api('GET', `/api/v1/mail-servers/${id}`)).json;
    assert.equal(s.tokenStatus, 'valid', 'no new sign-in is asked for');
    assert.equal(s.lastError.code, 'OAUTH_TOKEN_ENDPOINT_TIMEOUT');
  }
  allClosedWithin('silent', 25_000);
  await healthy();
});

test('an answer dripping a byte a second is cut at 20 s and explained', T, async () => {
  const r = await testConnection('mail-servers', ids.drip!);
  allClosedWithin('drip', 25_000);
  assert.ok(r.tookMs < ANSWER_WITHIN_MS && r.tookMs > 15_000, `answered after ${Math.round(r.tookMs)} ms`);
  assert.equal(r.evidence.diagnosis, 'OAUTH_TOKEN_ENDPOINT_TIMEOUT', JSON.stringify(r));
  await healthy();
});

test('a token answer that never ends is read up to 1 MB, memory stays bounded, and the admin reads why', T, async () => {
  const rss = watchRss(mailroom.pid);
  const r = await testConnection('mail-servers', ids.endless!);
  const peak = rss.stop();
  assert.equal(r.ok, false);
  assert.equal(r.code, 'MR_OAUTH_RESPONSE_INVALID', JSON.stringify(r));
  assert.equal(r.evidence.diagnosis, 'OAUTH_TOKEN_RESPONSE_TOO_LARGE');
  assert.match(r.message, /answered with more than 1 MB, where a token answer holds a few KB; Mailroom stopped reading it/);
  assert.ok(r.tookMs < 10_000, `answered after ${Math.round(r.tookMs)} ms`);
  assert.ok(peak - baselineRss < 100, `RSS rose ${Math.round(peak - baselineRss)} MB`);
  await waitFor('Mailroom to hang up', async () => (hostile.requests.every((q) => q.behavior !== 'endless' || q.closedAt) ? true : undefined), 5000);
  const [endless] = allClosedWithin('endless', 10_000);
  // The socket buffers hold some more than Mailroom read; an endless body drained would be hundreds of MB.
  assert.ok(endless!.bytes < 16 * 1024 * 1024, `the endpoint wrote ${endless!.bytes} bytes before Mailroom hung up`);
  await healthy();
});

test('a 10 MB access_token is refused unread, and a 100 KB one is neither stored nor sent to Graph', T, async () => {
  const huge = await testConnection('mail-servers', ids.huge!);
  assert.equal(huge.evidence.diagnosis, 'OAUTH_TOKEN_RESPONSE_TOO_LARGE', JSON.stringify(huge));
  const long = await testConnection('mail-servers', ids.long!);
  assert.equal(long.ok, false);
  assert.equal(long.evidence.diagnosis, 'OAUTH_TOKEN_TOO_LONG', JSON.stringify(long));
  assert.equal(long.evidence.tokenName, 'access_token');
  assert.equal(long.evidence.tokenLength, 100 * 1024);
  assert.match(long.message, /issued an access_token of 102,400 characters; Mailroom accepts at most 16,384 and neither stored nor used it/);
  assert.doesNotMatch(JSON.stringify([huge, long]), /QQQQ/, 'never the token');
  for (const id of [ids.huge!, ids.long!]) assert.ok(storedAccessTokenChars(id) < 4096, 'the stored tokens are the earlier, small ones');
  assert.equal(graph.requests.filter((q) => q.path.includes('long%40example.test') || q.path.includes('long@example.test')).length, 0, 'Graph never saw a request for that mailbox');
  await healthy();
});

test('a refresh for Graph on a grant consented for SMTP only (AADSTS65001) holds the mail and names Graph\'s permissions', T, async () => {
  const sent = await api('POST', '/api/v1/messages', { from: 'switch@example.test', to: ['someone@example.test'], subject: 'Needs Graph consent', text: 'Held until consent.' });
  assert.equal(sent.status, 202, sent.text);
  const m = await waitFor('the message held', async () => {
    const x = (await api('GET', `/api/v1/messages/${sent.json.id}`)).json;
    return x.state === 'held' ? x : undefined;
  });
  assert.equal(m.lastError.code, 'AADSTS65001_GRAPH', JSON.stringify(m.lastError));
  assert.match(m.lastError.message, /Microsoft Graph permissions this server asks for \(Mail\.Send, Mail\.ReadWrite, User\.Read\)/);
  assert.doesNotMatch(m.lastError.message, /SMTP\.Send|IMAP\.AccessAsUser\.All/);
  assert.match(m.lastError.fix, /API permissions › Add a permission › Microsoft Graph › Delegated permissions.*Connect your Outlook account again/);
  const s = (await api('GET', `/api/v1/mail-servers/${ids.switched}`)).json;
  assert.equal(s.tokenStatus, 'reconnect_needed');
  assert.equal(s.lastError.code, 'AADSTS65001_GRAPH');
  assert.deepEqual(s.lastError.evidence.permissions, ['Mail.Send', 'Mail.ReadWrite', 'User.Read']);
  await healthy();
});

test('once the endpoint behaves again, the next refresh works: Test Connection passes and the queued message goes out', T, async () => {
  for (const clientId of Object.values(CLIENTS)) hostile.behave(clientId, 'pass');
  // A retry of the queued message may still be waiting on the silent endpoint: it ends by its deadline.
  await waitFor('the last silent request to end', async () => (hostile.pending() === 0 ? true : undefined), 25_000);
  const results = await Promise.all([
    testConnection('mail-servers', ids.smtp!),
    testConnection('mail-servers', ids.graph!),
    testConnection('incoming-servers', ids.imap!),
    testConnection('incoming-servers', ids.graphIn!),
    testConnection('mail-servers', ids.endless!),
    testConnection('mail-servers', ids.long!),
  ]);
  for (const r of results) assert.equal(r.ok, true, JSON.stringify(r));
  await waitFor('the queued Graph messages to go out', async () => (graph.sent.filter((x) => x.mime?.toString('utf8').includes('Waits for a token')).length === 5 ? true : undefined), 40_000);
  const sent = await api('POST', '/api/v1/messages', { from: 'endless@example.test', to: ['someone@example.test'], subject: 'After the storm', text: 'Mail flows.' });
  assert.equal(sent.status, 202, sent.text);
  await peers.sink.waitForMessage((x) => x.raw.toString('utf8').includes('After the storm'), 20_000);
  const s = (await api('GET', `/api/v1/mail-servers/${ids.smtp}`)).json;
  assert.equal(s.tokenStatus, 'valid');
  await healthy();
});
