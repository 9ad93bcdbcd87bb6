import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, newContext } from '../helpers/browser.ts';
import { apiClient, logIn, waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { type GoogleAuthServer, googleSignIn, type Peers, startPeers } from '../peers/index.ts';
import { startTcpProxy, type TcpProxy } from '../peers/tcp-proxy.ts';

// Gmail OAuth Authentication in a real browser against real peers: a Google-shaped authorization server
// (sign-in and token hosts apart, as at Google), Dovecot submission and IMAP checking every token by
// introspection for Google's scope and this client's audience, a relay sink behind it. The same form then
// adds a Username/Password server (Dovecot's password database) and a None relay (the sink).
const CLIENT_ID = '123456789012-mailroomtest0123456789abcdef.apps.googleusercontent.com';
const CLIENT_SECRET = 'GOCSPX-test_client_secret_0123456789';
const MAILBOX = 'alice@example.test';
const CLERK = { user: 'clerk@example.test', password: 'correct horse battery staple' };
const ADMIN = { email: 'admin@example.test', password: 'a long admin passphrase' };
const T = { timeout: 180_000 };

let peers: Peers;
let google: GoogleAuthServer;
let proxy: TcpProxy;
let mailroom: MailroomProcess;
let browser: Browser;
let page: Page;
let key: string;
let serverUrl: string;
let serverId: string;
const api = apiClient(() => mailroom.baseUrl, () => key);

before(async () => {
  peers = await startPeers({ clients: [], google: { audience: CLIENT_ID }, passwords: { [CLERK.user]: CLERK.password } });
  google = peers.google!;
  // In front of submission, so pooled SMTP sessions that logged in before a revocation can be cut.
  proxy = await startTcpProxy(peers.dovecot.submissionPort);
  mailroom = await startMailroomProcess({
    GOOGLE_AUTHORITY_HOST: google.authorityHost,
    GOOGLE_TOKEN_HOST: google.tokenHost,
    NODE_EXTRA_CA_CERTS: peers.caFile,
    OUTBOX_RETRY_BASE_SECONDS: '0.3',
  });
  google.upsertClient({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [`${mailroom.baseUrl}/oauth2/gmail/callback`] });
  assert.match(await mailroom.cli('admin', 'create', '--email', ADMIN.email, '--password', ADMIN.password), /Admin created/);
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  browser = await launchChromium();
  page = await (await newContext(browser)).newPage();
  page.setDefaultTimeout(30_000);
  await logIn(page, mailroom.baseUrl, ADMIN);
});

after(async () => {
  if (process.env.E2E_DEBUG) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync('/tmp/mailroom-e2e.log', mailroom?.output() ?? '');
    writeFileSync('/tmp/mailroom-e2e-dovecot.log', await import('node:fs/promises').then((f) => f.readFile(peers.dovecot.logFile, 'utf8')).catch(() => ''));
    await page?.screenshot({ path: '/tmp/mailroom-e2e.png', fullPage: true });
  }
  await browser?.close();
  await mailroom?.stop();
  await proxy?.close();
  await peers?.stop();
});

const stateIs = (id: string, ...states: string[]) =>
  waitFor(`message ${id} to be ${states.join('/')}`, async () => {
    const m = (await api('GET', `/api/v1/messages/${id}`)).json;
    return states.includes(m.state) ? m : undefined;
  });

async function connect(p: Page) {
  await p.getByRole('button', { name: 'Connect your Gmail account' }).click();
  await googleSignIn(p, MAILBOX);
  await p.waitForURL(/\/settings\/technical\/mail-servers\/[\w-]+\?oauth=/);
}

test('an admin adds a Gmail server from the form, connects it in Google\'s sign-in, gets Token Valid and a successful test', T, async () => {
  await page.goto(`${mailroom.baseUrl}/settings/technical/mail-servers/new`);
  await page.getByLabel('Mail Server Description', { exact: true }).fill('Gmail — Alice');
  const authType = page.getByLabel('Authenticate Using', { exact: true });
  const options = await authType.locator('option').allTextContents();
  assert.deepEqual(options, ['Outlook OAuth Authentication', 'Gmail OAuth Authentication', 'Username/Password', 'None']);
  await authType.selectOption({ label: 'Gmail OAuth Authentication' });

  // Google's own hosts and redirect URL; no Tenant and no Send Using (Microsoft Graph is Outlook's).
  assert.equal(await page.getByLabel('OAuth2 Redirect Url', { exact: true }).inputValue(), `${mailroom.baseUrl}/oauth2/gmail/callback`);
  assert.equal(await page.getByLabel('SMTP Server', { exact: true }).inputValue(), 'smtp.gmail.com');
  assert.equal(await page.getByLabel('SMTP Port', { exact: true }).inputValue(), '587');
  assert.equal(await page.getByLabel('Connection Security', { exact: true }).inputValue(), 'starttls');
  assert.equal(await page.getByLabel('Tenant', { exact: true }).count(), 0);
  assert.equal(await page.getByLabel('Send Using', { exact: true }).count(), 0);
  assert.equal(await page.getByLabel('Password', { exact: true }).count(), 0);
  await page.getByRole('link', { name: 'How to connect Gmail' }).first().waitFor();

  await page.getByLabel('Username', { exact: true }).fill(MAILBOX);
  await page.getByLabel('Client ID', { exact: true }).fill(CLIENT_ID);
  await page.getByLabel('Client Secret', { exact: true }).fill(CLIENT_SECRET);
  await page.getByLabel('SMTP Server', { exact: true }).fill('127.0.0.1');
  await page.getByLabel('SMTP Port', { exact: true }).fill(String(proxy.port));
  await page.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/\/settings\/technical\/mail-servers\/[0-9a-f-]{36}$/);
  serverUrl = page.url();
  serverId = serverUrl.split('/').pop()!;
  await page.getByText('Not connected', { exact: true }).waitFor();
  assert.equal(await page.getByLabel('Client Secret', { exact: true }).inputValue(), '', 'the secret is write-only');
  assert.equal(await page.getByText('Admin consent link').count(), 0, 'Google has no admin consent page');

  await connect(page);
  const asked = google.lastAuthorizeRequest()!;
  assert.equal(asked.get('access_type'), 'offline');
  assert.equal(asked.get('prompt'), 'consent');
  assert.equal(asked.get('code_challenge_method'), 'S256');
  assert.equal(asked.get('redirect_uri'), `${mailroom.baseUrl}/oauth2/gmail/callback`);
  assert.ok(asked.get('scope')!.split(' ').includes('https://mail.google.com/'));
  await page.getByText('Gmail account connected').waitFor();
  await page.getByText('Token Valid', { exact: true }).waitFor();
  await page.getByText(MAILBOX).first().waitFor();

  await page.getByRole('button', { name: 'Test Connection' }).click();
  await page.getByText('Connection Test Successful!').waitFor();
});

test('mail goes through Dovecot submission with the Gmail token and is read back over IMAP with the same connection', T, async () => {
  const sent = await api('POST', '/api/v1/messages', { from: MAILBOX, to: [MAILBOX], subject: 'Gmail round trip', text: 'Through submission and back over IMAP.' });
  assert.equal(sent.status, 202, sent.text);
  assert.equal((await stateIs(sent.json.id, 'sent', 'failed', 'held')).state, 'sent');
  await peers.sink.waitForMessage((m) => m.raw.toString().includes('Subject: Gmail round trip'), 15_000);

  const incoming = await api('POST', '/api/v1/incoming-servers', {
    name: 'Gmail inbox',
    authType: 'gmail_oauth',
    imapHost: '127.0.0.1',
    imapPort: peers.dovecot.imapsPort,
    imapSecurity: 'tls',
    username: MAILBOX,
    folder: 'INBOX',
    afterFetch: 'mark_read',
    intervalMinutes: 1440,
    tokenSourceId: serverId,
  });
  assert.equal(incoming.status, 201, incoming.text);
  assert.equal(incoming.json.tokenStatus, 'valid');
  const id = incoming.json.id;
  const t = await api('POST', `/api/v1/incoming-servers/${id}/test`);
  assert.equal(t.json.ok, true, t.text);
  const f = await api('POST', `/api/v1/incoming-servers/${id}/fetch`);
  assert.ok(f.status < 300, f.text);
  const got = await waitFor('the message to be imported', async () => {
    const items: Array<{ id: string; subject: string }> = (await api('GET', `/api/v1/inbound-messages?serverId=${id}&limit=50`)).json.items;
    return items.find((m) => m.subject === 'Gmail round trip');
  });
  const full = (await api('GET', `/api/v1/inbound-messages/${got.id}`)).json;
  assert.equal(full.serverId, id, 'imported by the Gmail incoming server');
  assert.match(full.text, /\S/, 'with its body');
  await api('DELETE', `/api/v1/incoming-servers/${id}`);
});

test('a revoked Gmail grant: Reconnect needed and the mail held, not failed; reconnecting releases it', T, async () => {
  google.revokeGrants(MAILBOX);
  await proxy.down();
  await proxy.up();
  const m = await api('POST', '/api/v1/messages', { from: MAILBOX, to: ['bob@remote.example'], subject: 'Held until Gmail reconnects', text: 'Wait for me.' });
  assert.equal(m.status, 202, m.text);
  const held = await stateIs(m.json.id, 'held', 'sent', 'failed');
  assert.equal(held.state, 'held');
  assert.equal(held.lastError.evidence?.error, 'invalid_grant', JSON.stringify(held.lastError));
  assert.match(JSON.stringify(held.lastError), /Token has been expired or revoked/);

  await page.goto(serverUrl);
  await page.getByText('Reconnect needed', { exact: true }).waitFor();
  await connect(page);
  await page.getByText('Token Valid', { exact: true }).waitFor();
  assert.equal((await stateIs(m.json.id, 'sent', 'failed')).state, 'sent');
  await peers.sink.waitForMessage((x) => x.raw.toString().includes('Subject: Held until Gmail reconnects'), 15_000);
});

test('an app in Testing publishing status: the 7-day refresh token is warned about at connect time', T, async () => {
  google.setPublishingStatus('testing');
  try {
    await page.goto(serverUrl);
    await connect(page);
    await page.getByText('Token Valid', { exact: true }).waitFor();
    await page.getByText(/7 days/).first().waitFor();
    assert.match(await page.content(), /Publish app/);
    // A working connection with a short-lived grant: a notice apart, not the server's Last error.
    assert.equal(await page.getByText(/^Last error/).count(), 0);
    await page.getByText(/^Needs sign-in by /).first().waitFor();
    const s = (await api('GET', `/api/v1/mail-servers/${serverId}`)).json;
    assert.equal(s.lastError, null, JSON.stringify(s.lastError));
    assert.equal(s.notice.code, 'GMAIL_testing_publishing_status');
  } finally {
    google.setPublishingStatus('in_production');
  }
});

test('Disconnect revokes the Gmail grant at Google and forgets the tokens: Not connected, and a bulk disconnect of it has nothing left to revoke', T, async () => {
  await page.goto(serverUrl);
  await page.getByText('Token Valid', { exact: true }).waitFor();
  const before = google.revocations().length;
  page.once('dialog', (d) => void d.accept());
  await page.getByRole('button', { name: 'Disconnect', exact: true }).click();
  await page.getByText('Not connected', { exact: true }).first().waitFor();
  // The revocation endpoint was called with the grant's refresh token (the whole grant ends there).
  assert.deepEqual(google.revocations().slice(before), [MAILBOX]);
  const s = (await api('GET', `/api/v1/mail-servers/${serverId}`)).json;
  assert.equal(s.tokenStatus, 'not_connected');
  assert.equal(s.connectedAccount, null);
  const bulk = await api('POST', '/api/v1/mail-servers/bulk', { action: 'disconnect', ids: [serverId] });
  assert.equal(bulk.status, 200, bulk.text);
  assert.deepEqual(bulk.json.results, [{ id: serverId, ok: true, code: null, message: 'Disconnected: the tokens are forgotten.', grantRevoked: false, note: null }]);
  assert.equal(google.revocations().length, before + 1, 'no second revocation');
});

test('the same form saves a Username/Password server (write-only Password) and a None relay, each tested without tokens', T, async () => {
  await page.goto(`${mailroom.baseUrl}/settings/technical/mail-servers/new`);
  await page.getByLabel('Mail Server Description', { exact: true }).fill('Relay with password');
  await page.getByLabel('Authenticate Using', { exact: true }).selectOption({ label: 'Username/Password' });
  assert.equal(await page.getByLabel('Client ID', { exact: true }).count(), 0);
  assert.equal(await page.getByLabel('OAuth2 Redirect Url', { exact: true }).count(), 0);
  assert.equal(await page.getByLabel('SMTP Server', { exact: true }).inputValue(), '', 'no provider host for a password server');
  await page.getByLabel('Username', { exact: true }).fill(CLERK.user);
  await page.getByLabel('SMTP Server', { exact: true }).fill('localhost');
  await page.getByLabel('SMTP Port', { exact: true }).fill(String(peers.dovecot.submissionPort));
  await page.getByRole('button', { name: 'Create' }).click();
  // No password yet: the API names the field.
  await page.getByText('Enter the mailbox password').first().waitFor();
  assert.equal(await page.getByLabel('Password', { exact: true }).getAttribute('aria-invalid'), 'true');
  await page.getByLabel('Password', { exact: true }).fill(CLERK.password);
  await page.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/\/settings\/technical\/mail-servers\/[0-9a-f-]{36}$/);
  const password = page.getByLabel('Password', { exact: true });
  assert.equal(await password.inputValue(), '', 'the password is write-only');
  assert.match((await password.getAttribute('placeholder')) ?? '', /set/);
  assert.equal(await page.getByText('Token Valid', { exact: true }).count(), 0);
  assert.equal(await page.getByText('Not connected', { exact: true }).count(), 0, 'no token status without OAuth');
  assert.equal(await page.getByRole('button', { name: /^Connect your/ }).count(), 0);
  await page.getByText('Password saved').waitFor();
  await page.getByRole('button', { name: 'Test Connection' }).click();
  await page.getByText('Connection Test Successful!').waitFor();
  // Saving with the Password left empty keeps the stored one.
  await page.getByLabel('Priority', { exact: true }).fill('20');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Saved.').waitFor();
  await page.getByRole('button', { name: 'Test Connection' }).click();
  await page.getByText('Connection Test Successful!').waitFor();
  assert.ok(!mailroom.output().includes(CLERK.password), 'the password is never logged');

  await page.goto(`${mailroom.baseUrl}/settings/technical/mail-servers/new`);
  await page.getByLabel('Mail Server Description', { exact: true }).fill('Office relay');
  await page.getByLabel('Authenticate Using', { exact: true }).selectOption({ label: 'None' });
  assert.equal(await page.getByLabel('Password', { exact: true }).count(), 0);
  assert.equal(await page.getByLabel('Client Secret', { exact: true }).count(), 0);
  await page.getByLabel('Username', { exact: true }).fill('erp@example.test');
  await page.getByLabel('SMTP Server', { exact: true }).fill('127.0.0.1');
  await page.getByLabel('SMTP Port', { exact: true }).fill(String(peers.sink.port));
  await page.getByLabel('Connection Security', { exact: true }).selectOption('none');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/\/settings\/technical\/mail-servers\/[0-9a-f-]{36}$/);
  assert.equal(await page.getByLabel('Authenticate Using', { exact: true }).inputValue(), 'none');
  await page.getByRole('button', { name: 'Test Connection' }).click();
  await page.getByText('Connection Test Successful!').waitFor();
});

test('the Gmail guide shows this installation\'s redirect URL and the Google Cloud steps, and is linked from Settings', T, async () => {
  await page.goto(`${mailroom.baseUrl}/settings`);
  await page.getByRole('link', { name: 'How to connect Gmail' }).click();
  await page.getByRole('heading', { name: 'How to connect Gmail', level: 1 }).waitFor();
  assert.equal(await page.getByLabel('Authorized redirect URI', { exact: true }).inputValue(), `${mailroom.baseUrl}/oauth2/gmail/callback`);
  const text = await page.locator('main, body').first().innerText();
  for (const s of ['OAuth consent screen', 'Publishing status', 'https://mail.google.com/', 'Web application', 'Client ID', 'Client secret']) assert.ok(text.includes(s), s);
});
