import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { asAdminInBrowser } from '../helpers/browser.ts';
import { apiClient } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';

const T = { timeout: 120_000 };
const SERVER = { authType: 'outlook_oauth', clientId: '3f0c2d1e-5b6a-4c7d-8e9f-0a1b2c3d4e5f', clientSecret: 'Xy8Q~s3cr3t.Value-Only_Shown~Once1234567', tenant: 'common' };

let mailroom: MailroomProcess;
let adminKey: string;
const api = apiClient(() => mailroom.baseUrl, () => adminKey);
let sales: string;
let relay: string;
let payroll: string;

before(async () => {
  mailroom = await startMailroomProcess({});
  adminKey = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'ops', '--scope', 'admin'))![1]!;
  sales = (await api('POST', '/api/v1/mail-servers', { ...SERVER, name: 'Sales', username: 'sales@contoso.example' })).json.id;
  relay = (await api('POST', '/api/v1/mail-servers', { ...SERVER, name: 'Relay', username: 'relay@example.com', fromFilter: 'example.com' })).json.id;
  payroll = (await api('POST', '/api/v1/incoming-servers', { ...SERVER, name: 'Payroll inbox', username: 'payroll@contoso.example', active: false, afterFetch: 'leave' })).json.id;
  assert.ok(sales && relay && payroll);
});

after(() => mailroom?.stop());

test('the CLI takes several scopes (repeated or comma-separated, the old read included) and server limits', T, async () => {
  const out = await mailroom.cli('apikey', 'create', '--name', 'Scanner', '--scope', 'send,outbox:read', '--mail-server', relay);
  assert.match(out, new RegExp(`API key "Scanner" \\(send, outbox:read; only outgoing servers ${relay}\\) created`));
  const key = /\n(mr_\S+)/.exec(out)![1]!;
  const named = await apiClient(() => mailroom.baseUrl, () => key)('POST', '/api/v1/messages', { from: 'a@example.com', to: ['b@c.example'], subject: 'x', text: 'x', mailServerId: sales });
  assert.equal(named.status, 403);
  assert.match(await mailroom.cli('apikey', 'create', '--name', 'Both', '--scope', 'send', '--scope', 'inbound:read', '--incoming-server', payroll), /\(send, inbound:read; only incoming servers/);
  assert.match(await mailroom.cli('apikey', 'create', '--name', 'Old reader', '--scope', 'read'), /\(outbox:read, inbound:read\)/);
});

test('API Keys page: an admin picks scopes and servers by their labels; the list shows each key\'s scopes and servers', T, async () => {
  await asAdminInBrowser(mailroom, { email: 'ops@example.test', password: 'ops admin passphrase' }, async (page) => {
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('link', { name: 'API Keys', exact: true }).click();
    await page.getByLabel('Name', { exact: true }).fill('Payroll robot');
    const send = page.getByLabel(/^Send — /);
    assert.equal(await send.isChecked(), true, 'Send is ticked by default');
    // The server groups appear for the scopes they limit.
    assert.equal(await page.getByRole('group', { name: 'Incoming servers' }).count(), 0);
    await page.getByLabel(/^Read received mail/).check();
    await page.getByRole('group', { name: 'Outgoing servers' }).getByLabel('Relay', { exact: true }).check();
    await page.getByRole('group', { name: 'Incoming servers' }).getByLabel('Payroll inbox', { exact: true }).check();
    await page.getByRole('button', { name: 'Create API key' }).click();
    const shown = await page.getByLabel('New API key', { exact: true }).inputValue();
    assert.match(shown, /^mr_/);

    const created = (await api('GET', '/api/v1/api-keys')).json.items.find((k: { name: string }) => k.name === 'Payroll robot');
    assert.deepEqual([created.scopes, created.mailServerIds, created.incomingServerIds], [['send', 'inbound:read'], [relay], [payroll]]);
    const row = page.getByRole('row').filter({ hasText: 'Payroll robot' });
    await row.getByText('Send, Read received').waitFor();
    await row.getByText('Outgoing: Relay').waitFor();
    await row.getByText('Incoming: Payroll inbox').waitFor();
    await page.getByRole('row').filter({ hasText: 'ops' }).getByRole('cell', { name: 'Admin', exact: true }).waitFor();

    // An admin key has no server limits to pick.
    await page.getByLabel(/^Admin — /).check();
    assert.equal(await page.getByRole('group', { name: 'Outgoing servers' }).count(), 0);
    // No scope at all is refused next to the scopes.
    await page.getByLabel('Name', { exact: true }).fill('Nothing');
    await page.getByLabel(/^Admin — /).uncheck();
    await page.getByLabel(/^Send — /).uncheck();
    await page.getByLabel(/^Read received mail/).uncheck();
    await page.getByRole('button', { name: 'Create API key' }).click();
    await page.getByText('Choose at least one scope').waitFor();
  });
});
