import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { paths } from '../../web/src/routes.ts';
import { launchChromium, newContext } from '../helpers/browser.ts';
import { storeTokens } from '../helpers/connect-directly.ts';
import { apiClient, logIn, waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { getToken } from '../peers/get-token.ts';
import { type Peers, startPeers } from '../peers/index.ts';

// An admin's bulk actions on the server lists, in Chromium against a real Mailroom process, Dovecot
// (SMTP submission and IMAP with XOAUTH2) and the test authorization server: filter by owner, tick
// the owner's mailboxes, Test Connection (one fails, its reason under its row), then Disconnect after
// the confirmation names how many mailboxes.
const CLIENT_ID = '6d3e9f20-4b5c-4d7e-8f90-1a2b3c4d5e6f';
const CLIENT_SECRET = 'Bk9R~bulk.Actions-Secret_Value~0123456';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const ADMIN = { email: 'bulk-admin@example.test', password: 'bulk admin passphrase' };
const T = { timeout: 300_000 };

let peers: Peers;
let mailroom: MailroomProcess;
let key: string;
let browser: Browser;
const api = apiClient(() => mailroom.baseUrl, () => key);
const ann: string[] = [];
let bob: string;
let annInbox: string;
let closedPort: number;

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  closedPort = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));

  mailroom = await startMailroomProcess({ MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost, NODE_EXTRA_CA_CERTS: peers.caFile, INBOUND_WORKER: 'off' });
  await mailroom.cli('admin', 'create', '--email', ADMIN.email, '--password', ADMIN.password);
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;

  // erp-ann: three connected mailboxes, the third pointing at a port where nothing listens; erp-bob: one.
  const mailbox = async (user: string, owner: string, port: number) => {
    const s = await api('POST', '/api/v1/mail-servers', { name: `Out ${user}`, username: user, fromFilter: user, owner, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, smtpHost: '127.0.0.1', smtpPort: port });
    assert.equal(s.status, 201, s.text);
    const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: user });
    storeTokens(mailroom.dataDir, s.json.id, user, t, peers.authServer.tenantId);
    return s.json.id as string;
  };
  ann.push(await mailbox('ann1@example.test', 'erp-ann', peers.dovecot.submissionPort));
  ann.push(await mailbox('ann2@example.test', 'erp-ann', peers.dovecot.submissionPort));
  ann.push(await mailbox('ann3@example.test', 'erp-ann', closedPort));
  bob = await mailbox('bob@example.test', 'erp-bob', peers.dovecot.submissionPort);
  for (const id of [...ann, bob]) assert.equal((await api('GET', `/api/v1/mail-servers/${id}`)).json.tokenStatus, 'valid');

  const inbox = await api('POST', '/api/v1/incoming-servers', { name: 'In ann1', username: 'ann1@example.test', imapHost: '127.0.0.1', imapPort: peers.dovecot.imapsPort, imapSecurity: 'tls', folder: 'INBOX', afterFetch: 'leave', active: false, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
  assert.equal(inbox.status, 201, inbox.text);
  annInbox = inbox.json.id;
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: 'ann1@example.test' });
  storeTokens(mailroom.dataDir, annInbox, 'ann1@example.test', t, peers.authServer.tenantId);

  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await mailroom?.stop();
  await peers?.stop();
});

const pageErrors: string[] = [];

async function adminPage(): Promise<Page> {
  const page = await (await newContext(browser)).newPage();
  page.setDefaultTimeout(60_000);
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  await logIn(page, mailroom.baseUrl, ADMIN);
  return page;
}

const rows = (page: Page) => page.locator('table.list-view tbody.list-row');
const rowOf = (page: Page, username: string) => rows(page).filter({ hasText: username });

test('an admin filters the Mail Servers by owner, tests the owner\'s mailboxes at once (one fails with its reason), then disconnects them after confirming', T, async () => {
  const page = await adminPage();
  await page.goto(`${mailroom.baseUrl}${paths.mailServers}`);
  await rowOf(page, 'bob@example.test').waitFor();
  assert.equal(await rows(page).count(), 4);

  // The Owner filter's choices come from the API, with how many mailboxes each owner has.
  const owner = page.getByLabel('Owner', { exact: true });
  await waitFor('the owners in the filter', async () => ((await owner.locator('option').allTextContents()).includes('erp-ann (3)') ? true : undefined));
  assert.deepEqual(await owner.locator('option').allTextContents(), ['All', 'Shared mailboxes', 'erp-ann (3)', 'erp-bob (1)']);
  await owner.selectOption('erp-ann');
  await page.waitForURL((u) => u.searchParams.get('owner') === 'erp-ann');
  await waitFor('only erp-ann\'s mailboxes', async () => ((await rows(page).count()) === 3 && (await rowOf(page, 'bob@example.test').count()) === 0 ? true : undefined));

  await page.getByRole('checkbox', { name: 'Select all' }).check();
  const selected = page.getByRole('region', { name: 'Selected' });
  await selected.getByText('3 selected').waitFor();
  await selected.getByRole('button', { name: 'Test Connection' }).click();

  await page.getByRole('status').filter({ hasText: 'Test Connection: 2 of 3 mailboxes passed, 1 failed' }).waitFor();
  for (const user of ['ann1@example.test', 'ann2@example.test']) {
    assert.match(await rowOf(page, user).getByTestId('bulk-result').innerText(), /^Test Connection: passed\. Connection Test Successful!/, user);
  }
  const failed = await rowOf(page, 'ann3@example.test').getByTestId('bulk-result').innerText();
  assert.match(failed, /^Test Connection: failed\. /);
  // The diagnosis in plain words: the cause, then the fix.
  assert.match(failed, /Nothing accepted the connection at that host and port\./, failed);
  assert.match(failed, /Check SMTP Server and SMTP Port/, failed);
  // The checks really reached Dovecot: a passed test is Token Valid with a fresh login.
  for (const id of ann.slice(0, 2)) assert.equal((await api('GET', `/api/v1/mail-servers/${id}`)).json.tokenStatus, 'valid');

  // Disconnect asks first, naming how many mailboxes; Cancel leaves them connected.
  await page.getByRole('checkbox', { name: 'Select all' }).check();
  await selected.getByText('3 selected').waitFor();
  let asked = '';
  page.once('dialog', (d) => {
    asked = d.message();
    void d.dismiss();
  });
  await selected.getByRole('button', { name: 'Disconnect' }).click();
  await waitFor('the confirmation', async () => (asked ? true : undefined));
  assert.match(asked, /^Disconnect 3 mailboxes\?/);
  for (const id of ann) assert.equal((await api('GET', `/api/v1/mail-servers/${id}`)).json.tokenStatus, 'valid', 'cancelled: still connected');

  page.once('dialog', (d) => void d.accept());
  await selected.getByRole('button', { name: 'Disconnect' }).click();
  await page.getByRole('status').filter({ hasText: 'Disconnect: 3 of 3 mailboxes disconnected.' }).waitFor();
  for (const user of ['ann1@example.test', 'ann2@example.test', 'ann3@example.test']) {
    const row = rowOf(page, user);
    assert.match(await row.getByTestId('bulk-result').innerText(), /^Disconnect: done\. Disconnected: the tokens are forgotten\./, user);
    await row.getByText('Not connected', { exact: true }).waitFor();
  }
  for (const id of ann) {
    const v = (await api('GET', `/api/v1/mail-servers/${id}`)).json;
    assert.equal(v.tokenStatus, 'not_connected');
    assert.equal(v.connectedAccount, null);
  }
  assert.equal((await api('GET', `/api/v1/mail-servers/${bob}`)).json.tokenStatus, 'valid', 'the other owner\'s mailbox was not touched');

  // One audit entry per server and action, by this admin.
  const audit = (await api('GET', '/api/v1/audit-events?limit=50')).json.items as Array<{ action: string; targetId: string; actorDisplay: string }>;
  for (const action of ['mail_server.bulk_test', 'mail_server.bulk_disconnect']) {
    const entries = audit.filter((e) => e.action === action);
    assert.deepEqual(entries.map((e) => e.targetId).sort(), [...ann].sort(), action);
    assert.ok(entries.every((e) => e.actorDisplay === ADMIN.email), action);
  }
  assert.deepEqual(pageErrors, []);
  await page.context().close();
});

test('the Incoming Mail Servers list offers the same bulk Test Connection', T, async () => {
  const page = await adminPage();
  await page.goto(`${mailroom.baseUrl}${paths.incomingMailServers}`);
  const row = rowOf(page, 'ann1@example.test');
  await row.waitFor();
  await row.getByRole('checkbox', { name: 'Select' }).check();
  await page.getByRole('region', { name: 'Selected' }).getByRole('button', { name: 'Test Connection' }).click();
  await page.getByRole('status').filter({ hasText: 'Test Connection: 1 of 1 mailbox passed.' }).waitFor();
  assert.match(await row.getByTestId('bulk-result').innerText(), /^Test Connection: passed\. Connection Test Successful! \d+ messages? in INBOX/);
  assert.deepEqual(pageErrors, []);
  await page.context().close();
});

test('more mailboxes match than the list shows (1,001): Select all 1001 matching, and Disconnect reaches every one in requests of at most 200', T, async () => {
  const N = 1001;
  for (let i = 0; i < N; i += 50) {
    const made = await Promise.all(
      Array.from({ length: Math.min(50, N - i) }, (_, j) =>
        api('POST', '/api/v1/mail-servers', { name: `Many ${String(i + j).padStart(4, '0')}`, authType: 'none', username: `many${i + j}@example.test`, fromFilter: `many${i + j}@example.test`, owner: 'erp-many', smtpHost: '127.0.0.1', smtpPort: peers.sink.port, smtpSecurity: 'none' }),
      ),
    );
    for (const r of made) assert.equal(r.status, 201, r.text);
  }
  const page = await adminPage();
  const bulkRequests: number[] = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().endsWith('/api/v1/mail-servers/bulk')) bulkRequests.push((JSON.parse(r.postData() ?? '{}') as { ids: string[] }).ids.length);
  });
  await page.goto(`${mailroom.baseUrl}${paths.mailServers}?owner=erp-many`);
  await waitFor('the first 1,000 rows', async () => ((await rows(page).count()) === 1000 ? true : undefined), 60_000);
  await page.getByRole('checkbox', { name: 'Select all' }).check();
  const selected = page.getByRole('region', { name: 'Selected' });
  await selected.getByText('1000 selected').waitFor();
  await selected.getByRole('button', { name: 'Select all 1001 matching' }).click();
  await selected.getByText('All 1001 matching selected').waitFor();

  let asked = '';
  page.once('dialog', (d) => {
    asked = d.message();
    void d.accept();
  });
  await selected.getByRole('button', { name: 'Disconnect' }).click();
  await page.getByRole('status').filter({ hasText: 'Disconnect: 1001 of 1001 mailboxes disconnected.' }).waitFor({ timeout: 120_000 });
  assert.match(asked, /^Disconnect 1001 mailboxes\?/);
  assert.deepEqual(bulkRequests, [200, 200, 200, 200, 200, 1]);
  // The one beyond the first page was reached too.
  const last = (await api('GET', '/api/v1/audit-events?limit=5')).json.items as Array<{ action: string; targetId: string }>;
  const lastServer = (await api('GET', '/api/v1/mail-servers?owner=erp-many&q=Many%201000')).json.items[0];
  assert.ok(last.some((e) => e.action === 'mail_server.bulk_disconnect' && e.targetId === lastServer.id), JSON.stringify(last));
  assert.deepEqual(pageErrors, []);
  await page.context().close();
});

test('with more owners than a drop-down holds (203), the Owner filter suggests the owners matching what is typed, asking the API for them, and applies the one chosen', T, async () => {
  for (let i = 0; i < 200; i += 50) {
    const made = await Promise.all(
      Array.from({ length: 50 }, (_, j) => {
        const n = String(i + j).padStart(3, '0');
        return api('POST', '/api/v1/mail-servers', { name: `Person ${n}`, authType: 'none', username: `person${n}@example.test`, fromFilter: `person${n}@example.test`, owner: `erp-user-${n}`, smtpHost: '127.0.0.1', smtpPort: peers.sink.port, smtpSecurity: 'none' });
      }),
    );
    for (const r of made) assert.equal(r.status, 201, r.text);
  }
  const page = await adminPage();
  const ownerRequests: URL[] = [];
  page.on('request', (r) => {
    if (r.url().includes('/api/v1/owners')) ownerRequests.push(new URL(r.url()));
  });
  await page.goto(`${mailroom.baseUrl}${paths.mailServers}`);
  // A box with suggestions (an input), not the drop-down (a select) of a few owners.
  const owner = page.getByRole('combobox', { name: 'Owner', exact: true }).and(page.locator('input[list]'));
  await owner.waitFor();
  // One page of owners was asked for, not every page.
  assert.equal(ownerRequests.filter((u) => u.searchParams.has('cursor')).length, 0, ownerRequests.join(' '));

  await owner.fill('erp-user-01');
  const choices = page.locator(`datalist#${await owner.getAttribute('list')} option`);
  const offered = await waitFor('the owners matching "erp-user-01"', async () => {
    const values = await choices.evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value));
    return values.includes('erp-user-019') ? values : undefined;
  });
  assert.deepEqual(offered, ['Shared mailboxes', ...Array.from({ length: 10 }, (_, k) => `erp-user-01${k}`)]);
  assert.ok(ownerRequests.some((u) => u.searchParams.get('q') === 'erp-user-01' && u.searchParams.get('limit') === '20'), ownerRequests.join(' '));

  await owner.fill('erp-user-017');
  await owner.press('Enter');
  await page.waitForURL((u) => u.searchParams.get('owner') === 'erp-user-017');
  await waitFor('only erp-user-017\'s mailbox', async () => ((await rows(page).count()) === 1 && (await rowOf(page, 'person017@example.test').count()) === 1 ? true : undefined));

  // The fixed choice is typed by its label and is the API's shared=true.
  await owner.fill('Shared mailboxes');
  await owner.press('Enter');
  await page.waitForURL((u) => u.searchParams.get('owner') === 'shared');
  await waitFor('no owned mailbox listed', async () => ((await rows(page).count()) === 0 || (await rowOf(page, 'person').count()) === 0 ? true : undefined));
  assert.equal(await rowOf(page, 'ann1@example.test').count(), 0);

  // An empty box is no filter; a linked filter shows in the box.
  await owner.fill('');
  await page.waitForURL((u) => !u.searchParams.has('owner'));
  await waitFor('every owner\'s mailboxes listed again', async () => ((await rows(page).count()) > 2 ? true : undefined));
  await page.goto(`${mailroom.baseUrl}${paths.mailServers}?owner=erp-user-005`);
  await waitFor('the box to show the linked owner', async () => ((await owner.count()) === 1 && (await owner.inputValue()) === 'erp-user-005' ? true : undefined));
  await waitFor('only erp-user-005\'s mailbox', async () => ((await rows(page).count()) === 1 && (await rowOf(page, 'person005@example.test').count()) === 1 ? true : undefined));
  assert.deepEqual(pageErrors, []);
  await page.context().close();
});
