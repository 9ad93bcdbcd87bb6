import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import SQLite from 'better-sqlite3';
import type { Browser, Page } from 'playwright-core';
import { tokenAad } from '../../src/oauth/token-manager.ts';
import { createSealer, loadOrCreateKey } from '../../src/secrets/sealer.ts';
import { launchChromium, newContext } from '../helpers/browser.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { type Peers, signInAndConsent, startPeers } from '../peers/index.ts';

// The admin walks the "Outlook OAuth Authentication" guide in a real browser against real peers:
// a Microsoft-shaped OAuth server, Dovecot submission checking the tokens, and a sink behind it.
const CLIENT_ID = '6731de76-14a6-49ae-97bc-6eba6914391e';
const CLIENT_SECRET = 'kV58Q~n3wSecret.Value_from-Azure~0123456789';
const MAILBOX = 'alice@example.test';
const ADMIN = { email: 'admin@example.test', password: 'a long admin passphrase' };

let peers: Peers;
let mailroom: MailroomProcess;
let browser: Browser;
let page: Page;
let serverUrl: string;
const T = { timeout: 120_000 };

before(async () => {
  peers = await startPeers({ clients: [] });
  mailroom = await startMailroomProcess({ MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost, NODE_EXTRA_CA_CERTS: peers.caFile });
  // The Azure app registration: this installation's redirect URL, known once Mailroom has its port.
  peers.authServer.upsertClient({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [`${mailroom.baseUrl}/oauth2/outlook/callback`] });
  assert.match(await mailroom.cli('admin', 'create', '--email', ADMIN.email, '--password', ADMIN.password), /Admin created/);
  browser = await launchChromium();
  page = await (await newContext(browser)).newPage();
  page.setDefaultTimeout(30_000);
});

after(async () => {
  if (process.env.E2E_DEBUG) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync('/tmp/mailroom-e2e.log', mailroom?.output() ?? '');
    await page?.screenshot({ path: '/tmp/mailroom-e2e.png' });
  }
  await browser?.close();
  await mailroom?.stop();
  await peers?.stop();
});

/** The database row of the server's tokens, opened read-only beside the running process. */
function tokenRow(serverId: string) {
  const db = new SQLite(join(mailroom.dataDir, 'mailroom.sqlite'), { readonly: true });
  try {
    return db.prepare('select * from oauth_tokens where mail_server_id = ?').get(serverId) as Record<string, string>;
  } finally {
    db.close();
  }
}

function expireAccessToken(serverId: string) {
  const db = new SQLite(join(mailroom.dataDir, 'mailroom.sqlite'));
  try {
    db.prepare("update oauth_tokens set access_token_expires_at = '2000-01-01T00:00:00.000Z' where mail_server_id = ?").run(serverId);
  } finally {
    db.close();
  }
}

async function fillServerForm(p: Page, name: string, secret: string) {
  await p.getByLabel('Mail Server Description', { exact: true }).fill(name);
  await p.getByLabel('Authenticate Using', { exact: true }).selectOption({ label: 'Outlook OAuth Authentication' });
  await p.getByLabel('Username', { exact: true }).fill(MAILBOX);
  await p.getByLabel('Client ID', { exact: true }).fill(CLIENT_ID);
  await p.getByLabel('Client Secret', { exact: true }).fill(secret);
  await p.getByLabel('SMTP Server', { exact: true }).fill('127.0.0.1');
  await p.getByLabel('SMTP Port', { exact: true }).fill(String(peers.dovecot.submissionPort));
  await p.getByLabel('Connection Security', { exact: true }).selectOption('starttls');
}

async function connect(p: Page) {
  await p.getByRole('button', { name: 'Connect your Outlook account' }).click();
  await signInAndConsent(p, MAILBOX);
  await p.waitForURL(/\/settings\/technical\/mail-servers\/[\w-]+\?oauth=/);
}

test('an admin follows the guide: log in, add the server, connect, Token Valid, test, send', T, async () => {
  await page.goto(mailroom.baseUrl);
  await page.waitForURL(/\/login/);
  await page.getByLabel('Email', { exact: true }).fill(ADMIN.email);
  await page.getByLabel('Password', { exact: true }).fill(ADMIN.password);
  await page.getByRole('button', { name: 'Sign in' }).click();

  await page.getByRole('link', { name: 'Settings' }).click();
  await page.getByRole('heading', { name: 'Technical' }).waitFor();
  await page.getByRole('link', { name: 'Mail Servers', exact: true }).click();
  await page.getByRole('button', { name: 'Add' }).click();

  const redirect = page.getByLabel('OAuth2 Redirect Url', { exact: true });
  assert.equal(await redirect.inputValue(), `${mailroom.baseUrl}/oauth2/outlook/callback`);
  assert.equal(await redirect.getAttribute('readonly'), '');
  assert.equal(await page.getByLabel('Tenant', { exact: true }).inputValue(), 'common');
  // Exchange Online's per-mailbox limits come with the default SMTP Server, editable.
  assert.equal(await page.getByLabel('Connections per mailbox', { exact: true }).inputValue(), '3');
  assert.equal(await page.getByLabel('Messages per minute', { exact: true }).inputValue(), '30');
  assert.equal(await page.getByLabel('Recipients per day', { exact: true }).inputValue(), '10000');
  assert.equal(await page.getByLabel('Recipients per message', { exact: true }).inputValue(), '500');
  await fillServerForm(page, 'Outlook — Alice', CLIENT_SECRET);
  await page.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/\/settings\/technical\/mail-servers\/[0-9a-f-]{36}$/);
  serverUrl = page.url();
  await page.getByText('Not connected', { exact: true }).waitFor();
  assert.equal(await page.getByLabel('Client Secret', { exact: true }).inputValue(), '', 'the secret is write-only');
  await page.getByText(/^Sent today: 0 \/ 10,000 recipients$/).waitFor();

  await connect(page);
  await page.getByText('Token Valid', { exact: true }).waitFor();
  await page.getByText(MAILBOX).first().waitFor();

  await page.getByRole('button', { name: 'Test Connection' }).click();
  await page.getByText('Connection Test Successful!').waitFor();

  await page.getByLabel('Recipient', { exact: true }).fill('bob@example.test');
  await page.getByRole('button', { name: 'Send test email' }).click();
  await page.getByText('Test email sent to bob@example.test').waitFor();
  const msg = await peers.sink.waitForMessage((m) => m.to.includes('bob@example.test'), 15_000);
  assert.equal(msg.from, MAILBOX);
  assert.match(msg.raw.toString(), /^From: .*alice@example\.test/im);
  assert.match(msg.raw.toString(), /^Subject: Mailroom test email/im);
});

test('an expired access token is refreshed, the refresh token rotates, and mail still goes', T, async () => {
  const serverId = serverUrl.split('/').pop()!;
  const before = tokenRow(serverId);
  expireAccessToken(serverId);
  await page.goto(serverUrl);
  await page.getByLabel('Recipient', { exact: true }).fill('carol@example.test');
  await page.getByRole('button', { name: 'Send test email' }).click();
  await page.getByText('Test email sent to carol@example.test').waitFor();
  await peers.sink.waitForMessage((m) => m.to.includes('carol@example.test'), 15_000);
  const after = tokenRow(serverId);
  assert.ok(Date.parse(after.access_token_expires_at!) > Date.now(), 'a fresh access token was stored');
  assert.notEqual(after.refresh_token_sealed, before.refresh_token_sealed, 'the rotated refresh token was stored');
  assert.notEqual(after.refreshed_at, before.refreshed_at);
});

test('a revoked grant shows Reconnect needed with the reason, and reconnecting recovers', T, async () => {
  const serverId = serverUrl.split('/').pop()!;
  // The access token is still within its lifetime: Dovecot's 535 makes Mailroom refresh once, which
  // Microsoft (here: the stand-in) refuses with invalid_grant.
  await peers.authServer.revokeGrants(MAILBOX);
  await page.goto(serverUrl);
  await page.getByRole('button', { name: 'Test Connection' }).click();
  await page.getByText(/revoked/).first().waitFor();
  await page.reload();
  await page.getByText('Reconnect needed', { exact: true }).waitFor();
  assert.equal(tokenRow(serverId).status, 'reconnect_needed');

  await connect(page);
  await page.getByText('Token Valid', { exact: true }).waitFor();
  await page.getByRole('button', { name: 'Test Connection' }).click();
  await page.getByText('Connection Test Successful!').waitFor();
});

test('the form shows each validation error next to its field', T, async () => {
  await page.goto(`${mailroom.baseUrl}/settings/technical/mail-servers/new`);
  await page.getByLabel('Mail Server Description', { exact: true }).fill('Incomplete');
  await page.getByLabel('Username', { exact: true }).fill('not-an-address');
  await page.getByLabel('Client ID', { exact: true }).fill('abc');
  await page.getByRole('button', { name: 'Create' }).click();
  const username = page.getByLabel('Username', { exact: true });
  await page.getByText('Enter the mailbox address, e.g. sales@contoso.com').waitFor();
  assert.equal(await username.getAttribute('aria-invalid'), 'true');
  const describedBy = (await username.getAttribute('aria-describedby'))!.split(' ');
  const messages = await Promise.all(describedBy.map((id) => page.locator(`[id="${id}"]`).textContent()));
  assert.ok(messages.some((m) => m?.includes('Enter the mailbox address')), 'the message is tied to the field');
  await page.getByText(/Paste the Application \(client\) ID from Azure/).waitFor();
  assert.match(page.url(), /\/new$/, 'nothing was created');
});

test('declining at Microsoft\'s sign-in page is explained on the form', T, async () => {
  await page.goto(serverUrl);
  await page.getByRole('button', { name: 'Connect your Outlook account' }).click();
  await page.waitForURL((u) => u.pathname.includes('/interaction/'));
  await page.getByText('[ Cancel ]').click();
  await page.waitForURL(/\?oauth=error/);
  await page.getByText(/declined/).first().waitFor();
  assert.match(await page.content(), /AADSTS65004/);
});

test('a wrong client secret is explained on the form with the AADSTS code kept', T, async () => {
  await page.goto(`${mailroom.baseUrl}/settings/technical/mail-servers/new`);
  await fillServerForm(page, 'Outlook — wrong secret', 'Wr0ng~Secret.Value_typed-by-hand~99999999');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/\/settings\/technical\/mail-servers\/[0-9a-f-]{36}$/);
  await connect(page);
  await page.getByText(/Microsoft rejected the client secret/).first().waitFor();
  await page.getByText(/Secret ID/).first().waitFor();
  assert.match(await page.content(), /AADSTS7000215/);
  await page.getByText('Not connected', { exact: true }).waitFor();
});

test('neither the database nor the log holds a client secret or token in clear', T, async () => {
  const serverId = serverUrl.split('/').pop()!;
  const row = tokenRow(serverId);
  const sealer = createSealer(loadOrCreateKey(null, mailroom.dataDir));
  const access = sealer.open(row.access_token_sealed!, tokenAad(serverId, 'access_token'));
  const refresh = sealer.open(row.refresh_token_sealed!, tokenAad(serverId, 'refresh_token'));
  assert.ok(access.length > 20 && refresh.length > 20);
  const files = ['mailroom.sqlite', 'mailroom.sqlite-wal'].map((f) => {
    try {
      return readFileSync(join(mailroom.dataDir, f)).toString('latin1');
    } catch {
      return '';
    }
  });
  const log = mailroom.output();
  assert.match(log, /oauth\.connected/, 'the log was captured');
  for (const secret of [access, refresh, CLIENT_SECRET, ADMIN.password]) {
    for (const haystack of [...files, log]) assert.ok(!haystack.includes(secret), 'secret found in clear');
  }
});
