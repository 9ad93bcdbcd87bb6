import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, newContext } from '../helpers/browser.ts';
import { apiClient, logIn, settledMessage, waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { OUTLOOK_APP_RESOURCE } from '../peers/auth-server.ts';
import { type Peers, startPeers } from '../peers/index.ts';

// Access: Application over SMTP submission and IMAP against the real Dovecot, whose Lua passdb asks the
// Microsoft-shaped authorization server what Exchange would decide: the app token's roles
// (SMTP.SendAsApp / IMAP.AccessAsApp) and the app's mailbox permissions (Add-MailboxPermission).
const CLIENT_ID = '2a4c6e80-1b3d-4f5a-8c7e-9d0f1a2b3c4d';
const CLIENT_SECRET = 'Ap9Q~dovecot.App-Secret_Value~0123456789';
const SALES = 'sales@example.test';
const BILLING = 'billing@example.test';
const OUTSIDE = 'ceo@example.test';
const CUSTOMER = 'customer@example.test';
const ADMIN = { email: 'admin@example.test', password: 'correct horse battery staple' };
const T = { timeout: 120_000 };

let peers: Peers;
let mailroom: MailroomProcess;
let key: string;
let browser: Browser;
let page: Page;
const ids: Record<string, string> = {};
const api = apiClient(() => mailroom.baseUrl, () => key);

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: ['http://127.0.0.1:9/unused'] }] });
  mailroom = await startMailroomProcess({ MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost, NODE_EXTRA_CA_CERTS: peers.caFile, OUTBOX_RETRY_BASE_SECONDS: '0.2' });
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  await mailroom.cli('admin', 'create', '--email', ADMIN.email, '--password', ADMIN.password);
  peers.authServer.grantAdminConsent(CLIENT_ID, OUTLOOK_APP_RESOURCE, ['SMTP.SendAsApp', 'IMAP.AccessAsApp']);
  peers.authServer.setMailboxPermissions(CLIENT_ID, [SALES, BILLING]);
  browser = await launchChromium();
  page = await (await newContext(browser)).newPage();
  page.setDefaultTimeout(30_000);
  await logIn(page, mailroom.baseUrl, ADMIN);
});

after(async () => {
  await browser?.close();
  await mailroom?.stop();
  await peers?.stop();
});

/** "Check application access" as the admin's browser sends it. */
async function checkApplicationAccess(path: string): Promise<{ status: number; body: any }> {
  return page.evaluate(async (url) => {
    const session = await (await fetch('/api/v1/session')).json();
    const r = await fetch(url, { method: 'POST', headers: { 'x-csrf-token': session.csrfToken } });
    return { status: r.status, body: await r.json() };
  }, path);
}

async function sendAndSettle(from: string, subject: string) {
  const m = await api('POST', '/api/v1/messages', { from, to: [CUSTOMER], subject, text: 'No user signed in.' });
  assert.equal(m.status, 202, JSON.stringify(m.json));
  return settledMessage(api, m.json.id);
}

test('SMTP with application access: Token Valid without sign-in, Test Connection, and the mail reaches Dovecot', T, async () => {
  const r = await api('POST', '/api/v1/mail-servers', {
    name: 'SMTP app — sales', username: SALES, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, access: 'application', tenant: peers.authServer.tenantId,
    smtpHost: '127.0.0.1', smtpPort: peers.dovecot.submissionPort, smtpSecurity: 'starttls', fromFilter: 'sales@example.test',
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  ids.sales = r.json.id;
  const checked = await checkApplicationAccess(`/api/v1/mail-servers/${ids.sales}/connect`);
  assert.equal(checked.status, 200, JSON.stringify(checked.body));
  assert.equal(checked.body.status, 'valid');
  assert.ok(checked.body.roles.includes('SMTP.SendAsApp'), JSON.stringify(checked.body));
  assert.equal((await api('GET', `/api/v1/mail-servers/${ids.sales}`)).json.tokenStatus, 'valid');

  const t = await api('POST', `/api/v1/mail-servers/${ids.sales}/test`);
  assert.equal(t.json.ok, true, JSON.stringify(t.json));

  const done = await sendAndSettle(SALES, 'Sent by the app over SMTP');
  assert.equal(done.state, 'sent', JSON.stringify(done.lastError));
  const arrived = await peers.sink.waitForMessage((m) => m.raw.toString('latin1').includes('Sent by the app over SMTP'), 30_000);
  assert.equal(arrived.from.toLowerCase(), SALES);
  // The sink hands local mail to dovecot-lda before it acknowledges: it is in the customer's Maildir.
  const maildir = join(peers.dovecot.dir, 'mail', CUSTOMER, 'Maildir', 'new');
  const files = await readdir(maildir);
  const contents = await Promise.all(files.map((f) => readFile(join(maildir, f), 'latin1')));
  assert.ok(contents.some((c) => c.includes('Sent by the app over SMTP')), `not in ${maildir}`);
});

test('two SMTP servers share one application connection, each sending from its own mailbox', T, async () => {
  const r = await api('POST', '/api/v1/mail-servers', {
    name: 'SMTP app — billing', username: BILLING, tokenSourceId: ids.sales,
    smtpHost: '127.0.0.1', smtpPort: peers.dovecot.submissionPort, smtpSecurity: 'starttls', fromFilter: 'billing@example.test',
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  assert.equal(r.json.access, 'application');
  ids.billing = r.json.id;
  const t = await api('POST', `/api/v1/mail-servers/${ids.billing}/test`);
  assert.equal(t.json.ok, true, JSON.stringify(t.json));
  const [a, b] = await Promise.all([sendAndSettle(SALES, 'Shared app, sales'), sendAndSettle(BILLING, 'Shared app, billing')]);
  assert.equal(a.state, 'sent', JSON.stringify(a.lastError));
  assert.equal(b.state, 'sent', JSON.stringify(b.lastError));
  await peers.sink.waitForMessage((m) => m.raw.toString('latin1').includes('Shared app, billing'), 30_000);
});

test('SMTP: a mailbox outside the app\'s mailbox permissions fails Test Connection with the PowerShell naming it', T, async () => {
  const r = await api('POST', '/api/v1/mail-servers', {
    name: 'SMTP app — ceo', username: OUTSIDE, tokenSourceId: ids.sales,
    smtpHost: '127.0.0.1', smtpPort: peers.dovecot.submissionPort, smtpSecurity: 'starttls',
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  const t = await api('POST', `/api/v1/mail-servers/${r.json.id}/test`);
  assert.equal(t.json.ok, false, JSON.stringify(t.json));
  assert.equal(t.json.code, 'SMTP_APP_535_5.7.3', JSON.stringify(t.json));
  const oid = peers.authServer.servicePrincipalId(CLIENT_ID);
  assert.ok(t.json.fix.includes(`Add-MailboxPermission -Identity ${OUTSIDE} -User ${oid} -AccessRights FullAccess`), t.json.fix);
  assert.ok(t.json.fix.includes(`New-ServicePrincipal -AppId ${CLIENT_ID} -ObjectId ${oid}`), t.json.fix);

  // A message sent through it anyway is explained the same way on the message, not as a person's
  // failed sign-in: the fix is the app's mailbox right, with this mailbox and app filled in.
  const m = await api('POST', '/api/v1/messages', { from: OUTSIDE, mailServerId: r.json.id, to: [CUSTOMER], subject: 'From outside the app\'s scope', text: 'Refused.' });
  assert.equal(m.status, 202, JSON.stringify(m.json));
  const settled = await settledMessage(api, m.json.id);
  assert.notEqual(settled.state, 'sent');
  assert.equal(settled.lastError.code, 'SMTP_APP_535_5.7.3', JSON.stringify(settled.lastError));
  assert.ok(settled.lastError.fix.includes(`Add-MailboxPermission -Identity ${OUTSIDE} -User ${oid} -AccessRights FullAccess`), settled.lastError.fix);
  assert.match(JSON.stringify(settled.lastError.evidence), /535/);
});

test('IMAP with application access: an incoming server fetches, and a mailbox outside the permissions is explained', T, async () => {
  const base = '/api/v1/incoming-servers';
  const r = await api('POST', base, {
    name: 'IMAP app — sales', username: SALES, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, access: 'application', tenant: peers.authServer.tenantId,
    imapHost: '127.0.0.1', imapPort: peers.dovecot.imapsPort, imapSecurity: 'tls', afterFetch: 'leave',
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  const id = r.json.id as string;
  await peers.dovecot.deliver(SALES, Buffer.from(`From: a@example.test\r\nTo: ${SALES}\r\nSubject: For the app inbox\r\nMessage-ID: <app-inbox@example.test>\r\n\r\nHello\r\n`));
  const checked = await checkApplicationAccess(`${base}/${id}/connect`);
  assert.equal(checked.status, 200, JSON.stringify(checked.body));
  assert.ok(checked.body.roles.includes('IMAP.AccessAsApp'), JSON.stringify(checked.body));
  const t = await api('POST', `${base}/${id}/test`);
  assert.equal(t.json.ok, true, JSON.stringify(t.json));
  // A new server is fetched at once by itself: Fetch Now may find that fetch still running.
  const fetchNow = await api('POST', `${base}/${id}/fetch`);
  assert.ok(fetchNow.status === 202 || fetchNow.json?.error?.code === 'MR_CONFLICT', fetchNow.text);
  const fetched = await waitFor('the fetch to import mail', async () => {
    const v = (await api('GET', `${base}/${id}`)).json;
    return !v.fetch.running && v.importedCount >= 1 ? v : undefined;
  }, 60_000);
  assert.ok(fetched.importedCount >= 1, JSON.stringify(fetched.fetch));

  const outside = await api('POST', base, {
    name: 'IMAP app — ceo', username: OUTSIDE, tokenSourceId: id, imapHost: '127.0.0.1', imapPort: peers.dovecot.imapsPort, imapSecurity: 'tls', afterFetch: 'leave',
  });
  assert.equal(outside.status, 201, JSON.stringify(outside.json));
  const refused = await api('POST', `${base}/${outside.json.id}/test`);
  assert.equal(refused.json.ok, false, JSON.stringify(refused.json));
  assert.equal(refused.json.code, 'IMAP_APP_AUTHENTICATE_FAILED', JSON.stringify(refused.json));
  assert.ok(refused.json.fix.includes(`Add-MailboxPermission -Identity ${OUTSIDE}`), refused.json.fix);

  // The background fetch records the same explanation on the server, where Mail Health shows it.
  const again = await api('POST', `${base}/${outside.json.id}/fetch`);
  assert.ok(again.status === 202 || again.json?.error?.code === 'MR_CONFLICT', again.text);
  const failed = await waitFor('the fetch failure to be recorded', async () => {
    const v = (await api('GET', `${base}/${outside.json.id}`)).json;
    return v.lastError ? v : undefined;
  }, 60_000);
  assert.equal(failed.lastError.code, 'IMAP_APP_AUTHENTICATE_FAILED', JSON.stringify(failed.lastError));
  assert.ok(failed.lastError.fix.includes(`Add-MailboxPermission -Identity ${OUTSIDE}`), failed.lastError.fix);
});

test('POST /api/v1/mailboxes with an application-access template: the owner\'s mailbox sends with no sign-in', T, async () => {
  const ANN = 'ann@example.test';
  peers.authServer.setMailboxPermissions(CLIENT_ID, [SALES, BILLING, ANN]);
  const r = await api('POST', '/api/v1/mailboxes', { templateServerId: ids.sales, owner: 'erp-user-42', mailbox: ANN, purposes: ['send'] });
  assert.ok(r.status === 200 || r.status === 201, `${r.status} ${r.text}`);
  assert.ok(r.json.serverId, r.text);
  const server = (await api('GET', `/api/v1/mail-servers/${r.json.serverId}`)).json;
  assert.equal(server.tokenSourceId, ids.sales);
  assert.equal(server.access, 'application');
  assert.equal(server.owner, 'erp-user-42');
  assert.equal(server.username, ANN);
  assert.equal(server.smtpPort, peers.dovecot.submissionPort);

  const checked = await checkApplicationAccess(`/api/v1/mail-servers/${r.json.serverId}/connect`);
  assert.equal(checked.status, 200, JSON.stringify(checked.body));
  assert.equal(checked.body.status, 'valid');
  assert.equal((await api('GET', `/api/v1/mail-servers/${r.json.serverId}`)).json.tokenStatus, 'valid');

  const m = await api('POST', '/api/v1/messages', { owner: 'erp-user-42', to: [CUSTOMER], subject: 'From Ann, by the app', text: 'No sign-in.' });
  assert.equal(m.status, 202, JSON.stringify(m.json));
  const done = await settledMessage(api, m.json.id);
  assert.equal(done.state, 'sent', JSON.stringify(done.lastError));
  assert.equal(done.mailServerId, r.json.serverId, JSON.stringify(done));
  const arrived = await peers.sink.waitForMessage((x) => x.raw.toString('latin1').includes('From Ann, by the app'), 30_000);
  assert.equal(arrived.from.toLowerCase(), ANN);
});

test('the in-app guide shows the Application access steps with this app\'s ids and the mailbox filled in', T, async () => {
  const oid = peers.authServer.servicePrincipalId(CLIENT_ID);
  const guide = await api('GET', `/api/v1/mail-servers/${ids.billing}/application-guide`);
  assert.equal(guide.status, 200, guide.text);
  assert.ok(guide.json.steps.some((s: { command?: string }) => s.command?.includes(`Add-MailboxPermission -Identity ${BILLING} -User ${oid} -AccessRights FullAccess`)), guide.text);

  await page.goto(`${mailroom.baseUrl}/settings/technical/outlook-guide?server=${ids.billing}`);
  const section = page.locator('section.guide-application');
  await section.getByRole('heading', { name: 'Application access' }).waitFor();
  const commands = await section.locator('pre.guide-command').allTextContents();
  assert.ok(commands.some((c) => c.includes(`Add-MailboxPermission -Identity ${BILLING} -User ${oid} -AccessRights FullAccess`)), commands.join('\n---\n'));
  assert.ok(commands.some((c) => c.includes(`New-ServicePrincipal -AppId ${CLIENT_ID} -ObjectId ${oid} -Organization ${peers.authServer.tenantId}`)), commands.join('\n---\n'));
  assert.match(await section.textContent() ?? '', /reach every mailbox the tenant lets it/);

  // A delegated server has no such steps, and the route says why.
  const delegated = await api('POST', '/api/v1/mail-servers', { name: 'Delegated', username: SALES, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, smtpHost: '127.0.0.1', smtpPort: peers.dovecot.submissionPort, smtpSecurity: 'starttls' });
  assert.equal(delegated.status, 201, delegated.text);
  const refused = await api('GET', `/api/v1/mail-servers/${delegated.json.id}/application-guide`);
  assert.equal(refused.status, 400, refused.text);
  assert.ok(refused.json.error.fields.access, refused.text);
  await page.goto(`${mailroom.baseUrl}/settings/technical/outlook-guide?server=${delegated.json.id}`);
  await page.getByRole('heading', { name: 'Register the app' }).waitFor();
  assert.equal(await page.locator('section.guide-application').count(), 0);
});
