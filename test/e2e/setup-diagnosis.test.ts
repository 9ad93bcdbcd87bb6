import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, newContext } from '../helpers/browser.ts';
import { logIn, waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { type Peers, signInAndConsent, startPeers } from '../peers/index.ts';

// A deliberately broken setup, seen in the browser: each failure names its cause and its fix.
const CLIENT_ID = '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f';
const CLIENT_SECRET = 'Dx8Q~diagnosis.Secret-Value_0123456789';
const MAILBOX = 'alice@example.test';
const ADMIN = { email: 'admin@example.test', password: 'a long admin passphrase' };
const T = { timeout: 120_000 };

let peers: Peers;
let mailroom: MailroomProcess;
let browser: Browser;
let page: Page;

before(async () => {
  peers = await startPeers({ clients: [] });
  mailroom = await startMailroomProcess({ MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost, NODE_EXTRA_CA_CERTS: peers.caFile });
  peers.authServer.upsertClient({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [`${mailroom.baseUrl}/oauth2/outlook/callback`] });
  await mailroom.cli('admin', 'create', '--email', ADMIN.email, '--password', ADMIN.password);
  browser = await launchChromium();
  page = await (await newContext(browser)).newPage();
  page.setDefaultTimeout(30_000);
  await logIn(page, mailroom.baseUrl, ADMIN);
});

after(async () => {
  if (process.env.E2E_DEBUG) await page?.screenshot({ path: '/tmp/mailroom-diagnosis.png', fullPage: true });
  await browser?.close();
  await mailroom?.stop();
  await peers?.stop();
});

async function newServer(name: string): Promise<string> {
  await page.goto(`${mailroom.baseUrl}/settings/technical/mail-servers/new`);
  await page.getByLabel('Mail Server Description', { exact: true }).fill(name);
  await page.getByLabel('Username', { exact: true }).fill(MAILBOX);
  await page.getByLabel('Client ID', { exact: true }).fill(CLIENT_ID);
  await page.getByLabel('Client Secret', { exact: true }).fill(CLIENT_SECRET);
  await page.getByLabel('SMTP Server', { exact: true }).fill('127.0.0.1');
  await page.getByLabel('SMTP Port', { exact: true }).fill(String(peers.dovecot.submissionPort));
  await page.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/\/mail-servers\/[0-9a-f-]{36}$/);
  return page.url();
}

async function connectAs(login: string) {
  // Forget the sign-in at the authorization server (its cookies start with "_"), keep Mailroom's session.
  await page.context().clearCookies({ name: /^_/ });
  await page.getByRole('button', { name: 'Connect your Outlook account' }).click();
  await signInAndConsent(page, login);
  await page.waitForURL(/\?oauth=/);
}

test('an expired client secret is named, with where to make a new one', T, async () => {
  await newServer('Expired secret');
  peers.authServer.expireClientSecret(CLIENT_ID);
  try {
    await connectAs(MAILBOX);
    await page.getByText(/client secret has expired/i).first().waitFor();
    await page.getByText(/Certificates & secrets/).first().waitFor();
    assert.match(await page.content(), /AADSTS7000222/);
  } finally {
    peers.authServer.upsertClient({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [`${mailroom.baseUrl}/oauth2/outlook/callback`] });
  }
});

test('consenting with the wrong account is said right after consent; the SMTP 535 that follows is explained too', T, async () => {
  await newServer('Wrong account');
  await connectAs('bob@example.test');
  await page.getByText(/bob@example\.test/).first().waitFor();
  await page.getByText(/is not the Username on this form/).first().waitFor();
  await page.getByRole('button', { name: 'Test Connection' }).click();
  // Dovecot refuses bob's token for alice's mailbox: a 535, explained with the server's reply.
  await page.getByText(/The server said: 535/).first().waitFor();
  await page.getByText(/SMTP AUTH/).first().waitFor();
});

test('a shared mailbox can be allowed deliberately after the mismatch is shown', T, async () => {
  await newServer('Shared mailbox');
  await connectAs('bob@example.test');
  await page.getByRole('button', { name: 'Allow this (shared mailbox)' }).click();
  const box = page.getByLabel('Send as a shared mailbox', { exact: true });
  await waitFor('the saved choice to show in the form', async () => ((await box.isChecked()) ? true : undefined), 10_000);
  await page.reload();
  assert.equal(await page.getByText(/is not the Username on this form/).count(), 0, 'the mismatch is no longer reported');
});

test('a secret close to expiry shows a banner on every page and the date on the form', T, async () => {
  const url = await newServer('Expiring soon');
  const in5Days = new Date(Date.now() + 5 * 86_400_000).toISOString().slice(0, 10);
  await page.getByLabel('Client Secret Expiration', { exact: true }).fill(in5Days);
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText(/Expires in [45] days/).first().waitFor();
  await page.goto(`${mailroom.baseUrl}/settings`);
  await page.getByText(/The client secret of "Expiring soon" expires in [45] days/).waitFor();
  await page.getByRole('link', { name: '"Expiring soon"' }).click();
  assert.equal(page.url(), url);
});

test('the guide page fills in this installation\'s values and shows the server\'s live checklist', T, async () => {
  const url = await newServer('Guide check');
  const id = url.split('/').pop()!;
  await page.goto(`${mailroom.baseUrl}/settings/technical/outlook-guide?server=${id}`);
  await page.getByRole('heading', { name: 'Checklist' }).waitFor();
  await page.getByText('Credentials saved').first().waitFor();
  await page.getByText(/Consent given/).first().waitFor();
  assert.ok((await page.content()).includes(`${mailroom.baseUrl}/oauth2/outlook/callback`), 'the redirect URL of this installation');
  assert.match(await page.content(), /Set-CASMailbox -Identity alice@example\.test -SmtpClientAuthenticationDisabled \$false/);
});

test('opening Mailroom at another address than BASE_URL warns before the admin goes to Azure (redirect mismatch)', T, async () => {
  const other = mailroom.baseUrl.replace('127.0.0.1', 'localhost');
  const p2 = await (await newContext(browser)).newPage();
  try {
    await logIn(p2, other, ADMIN);
    await p2.goto(`${other}/settings/technical/mail-servers/new`);
    await p2.getByText(`You opened Mailroom at ${other}, but the redirect URL Microsoft will use is ${mailroom.baseUrl}/oauth2/outlook/callback`).waitFor();
    await p2.getByText(/AADSTS50011/).first().waitFor();
  } finally {
    await p2.close();
  }
});
