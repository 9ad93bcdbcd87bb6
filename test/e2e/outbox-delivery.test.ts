import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { asAdminInBrowser } from '../helpers/browser.ts';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { storeTokens } from '../helpers/connect-directly.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { getToken } from '../peers/get-token.ts';
import { type Peers, startPeers } from '../peers/index.ts';
import { startTcpProxy, type TcpProxy } from '../peers/tcp-proxy.ts';

// The outbox against real peers: Mailroom (its own process) → pooled SMTP XOAUTH2 → Dovecot submission,
// which checks every token with the authorization server → relay → the sink, which can be told to answer
// 4xx or 5xx. A TCP proxy in front of Dovecot stands for the mail server going down and up.
const CLIENT_ID = '0d7c2f4e-9b1a-4c3d-8e5f-6a7b8c9d0e1f';
const CLIENT_SECRET = 'Qw8Q~outbox.Test-Secret_Value~0123456789';
const MAILBOX = 'outbox@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const T = { timeout: 120_000 };

let peers: Peers;
let proxy: TcpProxy;
let mailroom: MailroomProcess;
let key: string;
let serverId: string;

const api = apiClient(() => mailroom.baseUrl, () => key);

async function connectMailbox() {
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX });
  storeTokens(mailroom.dataDir, serverId, MAILBOX, t, peers.authServer.tenantId);
}

const stateIs = (id: string, ...states: string[]) =>
  waitFor(`message ${id} to be ${states.join('/')}`, async () => {
    const m = (await api('GET', `/api/v1/messages/${id}`)).json;
    return states.includes(m.state) ? m : undefined;
  });

const send = async (subject: string, to = 'someone@remote.example') => {
  const r = await api('POST', '/api/v1/messages', { from: MAILBOX, to: [to], subject, text: `Body of ${subject}` });
  assert.equal(r.status, 202, JSON.stringify(r.json));
  return r.json as { id: string; messageId: string };
};

const copiesOf = (messageId: string) => peers.sink.messages.filter((m) => m.raw.toString().includes(`Message-ID: ${messageId}`)).length;

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  proxy = await startTcpProxy(peers.dovecot.submissionPort);
  mailroom = await startMailroomProcess(
    {
      MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost,
      NODE_EXTRA_CA_CERTS: peers.caFile,
      OUTBOX_RETRY_BASE_SECONDS: '0.3',
      OUTBOX_MAX_ATTEMPTS: '30',
    },
  );
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const s = await api('POST', '/api/v1/mail-servers', {
    name: 'Outbox test',
    username: MAILBOX,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    smtpHost: '127.0.0.1',
    smtpPort: proxy.port,
    smtpSecurity: 'starttls',
  });
  assert.equal(s.status, 201, JSON.stringify(s.json));
  serverId = s.json.id;
  await connectMailbox();
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-outbox.log', mailroom?.output() ?? '');
  await mailroom?.stop();
  await proxy?.close();
  await peers?.stop();
});

test('a queued message is delivered once, with the Message-ID recorded at enqueue', T, async () => {
  const m = await send('Delivered');
  const done = await stateIs(m.id, 'sent', 'failed', 'held');
  assert.equal(done.state, 'sent', JSON.stringify(done.lastError));
  assert.match(done.smtpResponse, /^250/);
  assert.ok(done.sentAt);
  const got = await peers.sink.waitForMessage((x) => x.raw.toString().includes(`Message-ID: ${m.messageId}`), 10_000);
  assert.equal(got.from, MAILBOX);
  assert.deepEqual(got.to, ['someone@remote.example']);
  assert.equal(copiesOf(m.messageId), 1);
});

test('npx mailroom send queues a message from the shell, and it is delivered', T, async () => {
  const out = await mailroom.cli('send', '--from', MAILBOX, '--to', 'shell@remote.example', '--subject', 'From the shell', '--text', 'Sent with the CLI');
  const id = /Queued ([0-9a-f-]{36})/.exec(out)![1]!;
  const done = await stateIs(id, 'sent', 'failed', 'held');
  assert.equal(done.state, 'sent');
  await peers.sink.waitForMessage((x) => x.to.includes('shell@remote.example'), 10_000);
});

test('the CLI lists servers, runs Test Connection, and resets an admin password', T, async () => {
  const list = await mailroom.cli('servers', 'list');
  assert.match(list, /^ID +NAME +USERNAME +AUTHENTICATE USING +SENDS VIA +TOKEN$/m);
  assert.match(list, new RegExp(`^${serverId} +Outbox test +${MAILBOX} +outlook_oauth +127\\.0\\.0\\.1:${proxy.port} +valid$`, 'm'));
  assert.match(await mailroom.cli('servers', 'test', serverId), /Connection Test Successful!/);
  await mailroom.cli('admin', 'create', '--email', 'cli@example.test', '--password', 'first long password');
  assert.match(await mailroom.cli('admin', 'create', '--email', 'cli@example.test', '--password', 'second long password', '--reset'), /Password changed/);
  const login = await fetch(`${mailroom.baseUrl}/api/v1/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'cli@example.test', password: 'second long password' }),
  });
  assert.equal(login.status, 200);
});

test('a 4xx reply is retried with backoff and the message then goes out exactly once', T, async () => {
  peers.sink.setBehavior({ tempFail: '451 4.3.0 Mailbox temporarily unavailable' });
  const m = await send('Temporary failure first');
  const retrying = await waitFor('a failed attempt', async () => {
    const x = (await api('GET', `/api/v1/messages/${m.id}`)).json;
    return x.attempts >= 1 && x.lastError ? x : undefined;
  });
  assert.equal(retrying.lastError.evidence.kind, 'smtp');
  assert.match(String(retrying.lastError.evidence.responseCode), /^4/);
  peers.sink.setBehavior('accept');
  const done = await stateIs(m.id, 'sent', 'failed');
  assert.equal(done.state, 'sent');
  assert.equal(copiesOf(m.messageId), 1);
});

test('a 5xx reply fails the message with the server\'s reply kept', T, async () => {
  peers.sink.setBehavior({ permFail: '550 5.1.1 No such user here' });
  try {
    const m = await send('Permanent failure');
    const done = await stateIs(m.id, 'failed', 'sent');
    assert.equal(done.state, 'failed');
    assert.equal(done.attempts, 1, 'a permanent failure is not retried');
    assert.match(done.lastError.evidence.response, /5\.1\.1/);
    assert.match(done.lastError.message, /The server said/);
    assert.equal(copiesOf(m.messageId), 0);
  } finally {
    peers.sink.setBehavior('accept');
  }
});

test('a revoked grant holds the server\'s messages; after reconnecting they go out by themselves', T, async () => {
  await peers.authServer.revokeGrants(MAILBOX);
  // Cut the pooled connections: an SMTP session that already logged in would carry on regardless.
  await proxy.down();
  await proxy.up();
  const m = await send('Held until reconnect');
  const held = await stateIs(m.id, 'held', 'sent', 'failed');
  assert.equal(held.state, 'held');
  assert.equal(held.lastError.code, 'AADSTS50173');
  const server = (await api('GET', `/api/v1/mail-servers/${serverId}`)).json;
  assert.equal(server.tokenStatus, 'reconnect_needed');
  await connectMailbox();
  const done = await stateIs(m.id, 'sent', 'failed');
  assert.equal(done.state, 'sent');
  assert.equal(copiesOf(m.messageId), 1);
});

test('while the mail server is down messages wait; when it is back they are all delivered', T, async () => {
  await proxy.down();
  const ids: Array<{ id: string; messageId: string }> = [];
  for (let i = 0; i < 5; i++) ids.push(await send(`Outage ${i}`));
  await waitFor('failed attempts during the outage', async () => {
    const x = (await api('GET', `/api/v1/messages/${ids[0]!.id}`)).json;
    return x.attempts >= 2 ? x : undefined;
  });
  const during = (await api('GET', `/api/v1/messages/${ids[0]!.id}`)).json;
  assert.equal(during.state, 'queued');
  assert.equal(during.lastError.evidence.kind, 'network');
  await proxy.up();
  for (const m of ids) {
    assert.equal((await stateIs(m.id, 'sent', 'failed')).state, 'sent');
    assert.equal(copiesOf(m.messageId), 1);
  }
});

test('Settings > Technical > Emails shows a failed message in plain words with the raw reply, and Retry sends it', T, async () => {
  peers.sink.setBehavior({ permFail: '550 5.7.1 Relaying denied for this recipient' });
  const m = await send('Shown in the Emails page');
  await stateIs(m.id, 'failed');
  peers.sink.setBehavior('accept');

  const admin = { email: 'ops@example.test', password: 'ops admin passphrase' };
  await asAdminInBrowser(mailroom, admin, async (page) => {
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('link', { name: 'Emails', exact: true }).click();
    await page.getByRole('heading', { name: 'Emails' }).waitFor();
    await page.getByLabel('State', { exact: true }).selectOption('failed');
    const row = page.getByRole('link', { name: 'Shown in the Emails page' });
    await row.waitFor();
    await page.getByText(/Relaying denied for this recipient/).first().waitFor();
    await row.click();
    await page.getByRole('button', { name: 'Retry' }).click();
    await stateIs(m.id, 'sent');
    assert.equal(copiesOf(m.messageId), 1);

    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('link', { name: 'API Keys', exact: true }).click();
    await page.getByLabel('Name', { exact: true }).fill('Warehouse ERP');
    await page.getByLabel(/^Send — /).check();
    await page.getByRole('button', { name: 'Create API key' }).click();
    const shown = await page.getByLabel('New API key', { exact: true }).inputValue();
    assert.match(shown, /^mr_/);
    const viaUiKey = await fetch(`${mailroom.baseUrl}/api/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${shown}`, 'content-type': 'application/json' },
      body: JSON.stringify({ from: MAILBOX, to: ['x@remote.example'], subject: 'Key from the UI', text: 'x' }),
    });
    assert.equal(viaUiKey.status, 202);
  });
});
