import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, newContext } from '../helpers/browser.ts';
import { apiClient, logIn, waitFor } from '../helpers/e2e.ts';
import { storeTokens } from '../helpers/connect-directly.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { getToken } from '../peers/get-token.ts';
import { type Peers, startPeers } from '../peers/index.ts';
import { type SmtpSink, startSmtpSink } from '../peers/smtp-sink.ts';

// A tenant with SMTP AUTH switched off: Test Connection answers 535 5.7.139, and the form offers
// "Send with Microsoft Graph instead" with the permissions to add — in Chromium, as an admin sees it.
const CLIENT_ID = '8b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e';
const CLIENT_SECRET = 'Sw8Q~switch.Test-Secret_Value~0123456789';
const MAILBOX = 'switch@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const ADMIN = { email: 'admin@example.test', password: 'a long admin passphrase' };
const T = { timeout: 120_000 };

let peers: Peers;
let exchange: SmtpSink;
let mailroom: MailroomProcess;
let browser: Browser;
let page: Page;
let key: string;
let serverId: string;
const api = apiClient(() => mailroom.baseUrl, () => key);

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  exchange = await startSmtpSink({ submission: { tls: { cert: peers.ca.cert, key: peers.ca.key }, introspectionUrl: peers.authServer.httpIntrospectionUrl, smtpAuthDisabled: true } });
  mailroom = await startMailroomProcess({ MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost, NODE_EXTRA_CA_CERTS: peers.caFile });
  await mailroom.cli('admin', 'create', '--email', ADMIN.email, '--password', ADMIN.password);
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const s = await api('POST', '/api/v1/mail-servers', { name: 'Sales', username: MAILBOX, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, smtpHost: '127.0.0.1', smtpPort: exchange.port, smtpSecurity: 'starttls' });
  assert.equal(s.status, 201, s.text);
  serverId = s.json.id;
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX });
  storeTokens(mailroom.dataDir, serverId, MAILBOX, t, peers.authServer.tenantId);
  browser = await launchChromium();
  page = await (await newContext(browser)).newPage();
  page.setDefaultTimeout(30_000);
});

after(async () => {
  await browser?.close();
  await mailroom?.stop();
  await exchange?.close();
  await peers?.stop();
});

test('535 5.7.139 offers "Send with Microsoft Graph instead", which switches Send Using and names the permissions', T, async () => {
  await logIn(page, mailroom.baseUrl, ADMIN);
  await page.goto(`${mailroom.baseUrl}/settings/technical/mail-servers/${serverId}`);
  await page.getByText('Token Valid').first().waitFor();
  assert.equal(await page.getByLabel('Send Using').inputValue(), 'smtp');
  await page.getByRole('button', { name: 'Test Connection' }).click();
  const alert = page.getByRole('alert').filter({ hasText: 'SMTP AUTH' });
  await alert.waitFor();
  assert.match(await alert.innerText(), /SmtpClientAuthentication is disabled for the Tenant/);
  assert.match(await alert.innerText(), /Mail\.Send/);
  await page.getByRole('button', { name: 'Send with Microsoft Graph instead' }).click();
  await page.getByText('Send Using is now Microsoft Graph').waitFor();
  assert.equal(await page.getByLabel('Send Using').inputValue(), 'graph');
  assert.equal(await page.getByLabel('SMTP Server').count(), 0, 'the SMTP fields are hidden for Graph');
  await page.getByText(/Microsoft Graph delegated: Mail\.Send/).waitFor();
  const server = await waitFor('the switch to be saved', async () => {
    const r = (await api('GET', `/api/v1/mail-servers/${serverId}`)).json;
    return r.sendUsing === 'graph' ? r : undefined;
  });
  assert.equal(server.tokenStatus, 'valid', 'the grant stays; the next token is refreshed for Graph');
});
