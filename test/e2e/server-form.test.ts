import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, newContext, watchPageErrors } from '../helpers/browser.ts';
import { apiClient, logIn } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { type SmtpSink, startSmtpSink } from '../peers/smtp-sink.ts';

// The one server form, rendered from the description of each Authenticate Using option and transport,
// in a real Chromium at 1280 and 390 px; the sink stands for a relay that trusts this machine.
const ADMIN = { email: 'forms@example.test', password: 'a long forms passphrase' };
const CLIENT_ID = '1b2c3d4e-0000-1111-2222-333344445555';
const SECRET = 'Dx8Q~a.Client-Secret_Value-0123456789abcdefgh';
const T = { timeout: 120_000 };

let sink: SmtpSink;
let mailroom: MailroomProcess;
let key: string;
let browser: Browser;
let page: Page;
const api = apiClient(() => mailroom.baseUrl, () => key);

before(async () => {
  sink = await startSmtpSink();
  mailroom = await startMailroomProcess({});
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'forms', '--scope', 'admin'))![1]!;
  await mailroom.cli('admin', 'create', '--email', ADMIN.email, '--password', ADMIN.password);
  browser = await launchChromium();
  page = await (await newContext(browser)).newPage();
  page.setDefaultTimeout(30_000);
  consoleErrors = watchPageErrors(page, { refused: 'allowed' });
  await logIn(page, mailroom.baseUrl, ADMIN);
});

after(async () => {
  await browser?.close();
  await mailroom?.stop();
  await sink?.close();
});

let consoleErrors: string[] = [];
/** A new server's form, loaded with the default method's fields (Outlook OAuth). */
async function newOutgoing() {
  await page.goto(`${mailroom.baseUrl}/settings/technical/mail-servers/new`);
  await page.locator('#mail-server-clientSecretExpiresAt-help').waitFor();
}
async function newIncoming() {
  await page.goto(`${mailroom.baseUrl}/settings/technical/incoming-mail-servers/new`);
  await page.locator('#incoming-server-clientId').waitFor();
}
const method = (label: string) => page.getByLabel('Authenticate Using', { exact: true }).selectOption({ label });
const mainText = () => page.locator('main').innerText();

/** Whether the input shows its whole value (nothing scrolled out of sight). */
const showsWhole = (label: string) =>
  page.getByLabel(label, { exact: true }).evaluate((el) => {
    const i = el as HTMLInputElement;
    return i.scrollWidth <= i.clientWidth;
  });

/** The page is no wider than the viewport. */
const noSidewaysScroll = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);

async function outlookServer(name: string) {
  const r = await api('POST', '/api/v1/mail-servers', { name, authType: 'outlook_oauth', username: 'sales@contoso.com', clientId: CLIENT_ID, clientSecret: SECRET, tenant: 'contoso.com', smtpHost: '127.0.0.1', smtpPort: sink.port, smtpSecurity: 'none' });
  assert.equal(r.status, 201, r.text);
  return r.json.id as string;
}

test('at 1280 px the OAuth2 Redirect Url, Client ID and secret show their whole values; a pasted URL is compared for the admin', T, async () => {
  await newOutgoing();
  const redirect = page.getByLabel('OAuth2 Redirect Url', { exact: true });
  assert.equal(await redirect.inputValue(), `${mailroom.baseUrl}/oauth2/outlook/callback`);
  await page.getByLabel('Client ID', { exact: true }).fill(CLIENT_ID);
  await page.getByLabel('Client Secret', { exact: true }).fill(SECRET);
  for (const f of ['OAuth2 Redirect Url', 'Client ID', 'Client Secret']) assert.ok(await showsWhole(f), `${f} shows its whole value`);
  await page.getByRole('button', { name: 'Copy' }).first().waitFor();

  const compare = page.getByLabel('Check a registered redirect URL', { exact: true });
  await compare.fill(`${mailroom.baseUrl}/oauth2/outlook/callback/`);
  await page.getByText(/extra “\/”/).waitFor();
  await compare.fill(`https://mailroom.contoso.com/oauth2/outlook/callback`);
  await page.getByText(/The origin differs/).waitFor();
  await compare.fill(`${mailroom.baseUrl}/oauth2/outlook/callback`);
  await page.getByText(/Identical/).waitFor();
  assert.ok(await noSidewaysScroll());
});

test('Gmail, Username/Password and None speak their own words; Outlook keeps Microsoft\'s', T, async () => {
  await newOutgoing();
  const outlook = await mainText();
  for (const s of ['Certificates & secrets', 'Send as a shared mailbox', 'Exchange Online: 3']) assert.ok(outlook.includes(s), `Outlook says ${s}`);
  for (const label of ['Gmail OAuth Authentication', 'Username/Password', 'None']) {
    await method(label);
    const text = await mainText();
    for (const s of ['Certificates & secrets', 'Send as a shared mailbox', 'Exchange Online']) assert.ok(!text.includes(s), `${label} does not say ${s}`);
    const usernameHelp = await page.locator('#mail-server-username-help').innerText();
    assert.ok(!usernameHelp.includes('Username/Password'), `${label}: ${usernameHelp}`);
  }
  // None's Username is the sender through the relay, not a login.
  assert.match(await page.locator('#mail-server-username-help').innerText(), /relay/);
  await newIncoming();
  await method('Username/Password');
  assert.ok(!(await page.locator('#incoming-server-username-help').innerText()).includes('Username/Password'));
});

test('Outlook OAuth offers Client Credential and Access; Application and Certificate change the form and the Create request carries them', T, async () => {
  await newOutgoing();
  const access = page.getByLabel('Access', { exact: true });
  const credential = page.getByLabel('Client Credential', { exact: true });
  assert.deepEqual(await access.locator('option').allTextContents(), ['Delegated — Connect your Outlook account', 'Application — no user sign-in']);
  assert.deepEqual(await credential.locator('option').allTextContents(), ['Client secret', 'Certificate']);
  assert.equal(await access.inputValue(), 'delegated');
  assert.equal(await credential.inputValue(), 'secret');

  await access.selectOption({ label: 'Application — no user sign-in' });
  assert.match(await page.locator('#mail-server-tenant-help').innerText(), /acts for the organisation itself.*common, organizations and consumers name no organisation/);
  await page.getByText(/can reach every mailbox the tenant lets the app reach/).waitFor();
  assert.match(await mainText(), /RBAC for Applications/);
  assert.match(await page.locator('#mail-server-sendUsing-help').innerText(), /SMTP\.SendAsApp/);

  await credential.selectOption({ label: 'Certificate' });
  assert.equal(await page.getByLabel('Client Secret', { exact: true }).count(), 0, 'no secret with a certificate');
  assert.equal(await page.getByLabel('Client Secret Expiration', { exact: true }).count(), 0);
  await page.getByText(/Create the server first: then generate a certificate here/).waitFor();

  await page.getByLabel('Mail Server Description', { exact: true }).fill('App access');
  await page.getByLabel('Username', { exact: true }).fill('sales@contoso.com');
  await page.getByLabel('Client ID', { exact: true }).fill(CLIENT_ID);
  await page.getByLabel('Tenant', { exact: true }).fill('common');
  // The answer the API gives for a tenant that names no organisation (contract A).
  let sent: Record<string, unknown> | undefined;
  await page.route('**/api/v1/mail-servers', async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    sent = route.request().postDataJSON();
    await route.fulfill({
      status: 400,
      contentType: 'application/json',
      body: JSON.stringify({ error: { code: 'MR_VALIDATION', message: 'Check the highlighted fields.', fields: { tenant: 'Application access acts for the organisation itself: enter its tenant ID or domain' } } }),
    });
  });
  try {
    await page.getByRole('button', { name: 'Create' }).click();
    await page.locator('#mail-server-tenant-error').waitFor();
    assert.equal(await page.getByLabel('Tenant', { exact: true }).getAttribute('aria-invalid'), 'true');
  } finally {
    await page.unroute('**/api/v1/mail-servers');
  }
  assert.equal(sent?.access, 'application');
  assert.equal(sent?.clientCredential, 'certificate');
  assert.equal(sent?.clientSecret, undefined, 'no client secret is sent with a certificate');

  for (const label of ['Gmail OAuth Authentication', 'Username/Password', 'None']) {
    await method(label);
    assert.equal(await page.getByLabel('Access', { exact: true }).count(), 0, label);
    assert.equal(await page.getByLabel('Client Credential', { exact: true }).count(), 0, label);
  }
  await newIncoming();
  await page.getByLabel('Access', { exact: true }).waitFor();
  await page.getByLabel('Client Credential', { exact: true }).waitFor();
});

test('a saved server with a certificate and application access, as the read model of the contract gives it', T, async () => {
  const id = await outlookServer('Certificate and app');
  const cert = { thumbprint: 'A1B2C3D4E5F60718293A4B5C6D7E8F9012345678', thumbprintSha256: 'q1w2e3r4t5y6u7i8o9p0', subject: 'CN=Mailroom Certificate and app', notBefore: '2026-12-01T00:00:00.000Z', notAfter: '2028-12-01T00:00:00.000Z' };
  const pending = { ...cert, thumbprint: 'FFEEDDCCBBAA00998877665544332211FFEEDDCC', createdAt: '2026-12-06T00:00:00.000Z' };
  let withPending = true;
  await page.route(`**/api/v1/mail-servers/${id}`, async (route) => {
    if (route.request().method() !== 'GET') return route.continue();
    const real = await (await route.fetch()).json();
    const body = { ...real, clientCredential: 'certificate', access: 'application', certificate: { ...cert, source: 'generated', pending: withPending ? pending : null }, tokenSourceId: null, applicationRoles: null };
    await route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(body) });
  });
  await page.route(`**/api/v1/mail-servers/${id}/connect`, (route) =>
    route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ status: 'valid', roles: ['SMTP.SendAsApp'] }) }),
  );
  try {
    await page.goto(`${mailroom.baseUrl}/settings/technical/mail-servers/${id}`);
    await page.getByText(cert.thumbprint).waitFor();
    await page.getByText(pending.thumbprint).waitFor();
    assert.equal(await page.getByLabel('Client Secret', { exact: true }).count(), 0);
    assert.match(await mainText(), /Certificates & secrets › Certificates/);
    const hrefs = await page.locator('.certificate-downloads a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    assert.deepEqual(hrefs, [`/api/v1/mail-servers/${id}/certificate.cer`, `/api/v1/mail-servers/${id}/certificate.pem`, `/api/v1/mail-servers/${id}/certificate.cer?which=pending`, `/api/v1/mail-servers/${id}/certificate.pem?which=pending`]);
    assert.equal(await page.getByRole('button', { name: 'Roll certificate' }).count(), 0, 'no second roll while one is pending');
    await page.getByRole('button', { name: 'Grant admin consent' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Connect your Outlook account' }).count(), 0);
    await page.getByRole('button', { name: 'Check application access' }).click();
    await page.getByText('Application access works: the token holds SMTP.SendAsApp.').waitFor();

    withPending = false;
    await page.reload();
    await page.getByRole('button', { name: 'Roll certificate' }).waitFor();
    assert.ok(await noSidewaysScroll());
  } finally {
    await page.unrouteAll();
  }
});

test('an outgoing server can use the connection of another: any mailbox for an application connection', T, async () => {
  const source = await outlookServer('App connection');
  // The list as the API gives it once the source has application access (contract A).
  await page.route('**/api/v1/mail-servers', async (route) => {
    if (route.request().method() !== 'GET') return route.continue();
    const real = await (await route.fetch()).json();
    const items = real.items.map((s: { id: string }) => (s.id === source ? { ...s, access: 'application', clientCredential: 'certificate', tokenSourceId: null } : s));
    await route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ ...real, items }) });
  });
  let sent: Record<string, unknown> | undefined;
  await page.route('**/api/v1/mail-servers', async (route) => {
    if (route.request().method() !== 'POST') return route.fallback();
    sent = route.request().postDataJSON();
    await route.fulfill({ status: 400, contentType: 'application/json', body: JSON.stringify({ error: { code: 'MR_VALIDATION', message: 'Check the highlighted fields.', fields: { name: 'Enter a name' } } }) });
  });
  try {
    await newOutgoing();
    await page.getByLabel('Username', { exact: true }).fill('billing@contoso.com');
    const use = page.getByLabel('Use the connection of', { exact: true });
    await use.selectOption({ label: 'App connection (sales@contoso.com)' });
    await page.getByText(/Uses the connection of/).waitFor();
    for (const f of ['Client ID', 'Client Secret', 'Access', 'Client Credential']) assert.equal(await page.getByLabel(f, { exact: true }).count(), 0, f);
    await page.getByRole('button', { name: 'Create' }).click();
    await page.locator('#mail-server-name-error').waitFor();
    assert.equal(sent?.tokenSourceId, source);
    assert.equal(sent?.clientSecret, undefined);
  } finally {
    await page.unrouteAll();
  }
});

test('Send test email: a labelled recipient whose placeholder reads as one; the test email is listed under Emails, sent or failed', T, async () => {
  const r = await api('POST', '/api/v1/mail-servers', { name: 'Relay', authType: 'none', username: 'erp@example.test', smtpHost: '127.0.0.1', smtpPort: sink.port, smtpSecurity: 'none' });
  assert.equal(r.status, 201, r.text);
  await page.goto(`${mailroom.baseUrl}/settings/technical/mail-servers/${r.json.id}`);
  const recipient = page.getByLabel('Recipient', { exact: true });
  assert.equal(await recipient.inputValue(), '');
  assert.equal(await recipient.getAttribute('placeholder'), 'name@example.com');
  const placeholderStyle = await recipient.evaluate((el) => getComputedStyle(el, '::placeholder').fontStyle);
  assert.equal(placeholderStyle, 'italic');
  await recipient.fill('bob@example.test');
  await page.getByRole('button', { name: 'Send test email' }).click();
  await page.getByText('Test email sent to bob@example.test').waitFor();
  await page.getByRole('link', { name: 'See it under Emails' }).click();
  await page.getByText('Mailroom test email').first().waitFor();

  const list = await api('GET', `/api/v1/messages?mailServerId=${r.json.id}`);
  const sent = list.json.items.find((m: { subject: string }) => m.subject === 'Mailroom test email');
  assert.equal(sent?.state, 'sent', JSON.stringify(list.json.items));

  // A relay that is not there: the failed test email is listed too, with its error.
  const down = await api('POST', '/api/v1/mail-servers', { name: 'Relay down', authType: 'none', username: 'erp@example.test', smtpHost: '127.0.0.1', smtpPort: 9, smtpSecurity: 'none' });
  const t = await api('POST', `/api/v1/mail-servers/${down.json.id}/send-test`, { to: 'bob@example.test' });
  assert.equal(t.json.ok, false, t.text);
  const failed = (await api('GET', `/api/v1/messages/${t.json.outboxId}`)).json;
  assert.equal(failed.state, 'failed', JSON.stringify(failed));
  assert.ok(failed.lastError?.message, JSON.stringify(failed));
});

test('the Connection panel says when a person is needed, not when the one-hour access token ends', T, async () => {
  const id = await outlookServer('Not yet connected');
  await page.goto(`${mailroom.baseUrl}/settings/technical/mail-servers/${id}`);
  await page.getByText('Not connected yet', { exact: true }).waitFor();
  assert.ok(!(await mainText()).includes('Token expires'));
});

test('Sign in says the same on title and button, the password rule shows before a failure, breadcrumbs name Mail Server, the guide says Create', T, async () => {
  const fresh = await (await newContext(browser)).newPage();
  try {
    await fresh.goto(`${mailroom.baseUrl}/login`);
    await fresh.getByRole('heading', { name: /^Sign in/ }).waitFor();
    await fresh.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
    await fresh.goto(`${mailroom.baseUrl}/setup?token=x`);
    await fresh.getByText(/At least 10 characters/).waitFor();
  } finally {
    await fresh.close();
  }
  await newOutgoing();
  assert.equal((await page.locator('.breadcrumb').innerText()).replace(/\s+/g, ' ').trim(), 'Settings / Technical / Mail Server / Mail Servers / New');
  await page.goto(`${mailroom.baseUrl}/settings/technical/outlook-guide`);
  await page.getByText(/Click Create/).first().waitFor();
});

test('at 390 px every server form fits without sideways scrolling', T, async () => {
  const id = await outlookServer('Narrow');
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    for (const label of ['Outlook OAuth Authentication', 'Gmail OAuth Authentication', 'Username/Password', 'None']) {
      await newOutgoing();
      await method(label);
      assert.ok(await noSidewaysScroll(), `new outgoing, ${label}`);
    }
    await newIncoming();
    await page.getByLabel('Access', { exact: true }).selectOption('application');
    assert.ok(await noSidewaysScroll(), 'new incoming, application access');
    await page.goto(`${mailroom.baseUrl}/settings/technical/mail-servers/${id}`);
    await page.getByRole('button', { name: 'Test Connection' }).waitFor();
    assert.ok(await noSidewaysScroll(), 'a saved server with its Connection panel');
    for (const guide of ['outlook-guide', 'gmail-guide']) {
      await page.goto(`${mailroom.baseUrl}/settings/technical/${guide}`);
      await page.getByRole('heading', { level: 1 }).waitFor();
      assert.ok(await noSidewaysScroll(), guide);
    }
  } finally {
    await page.setViewportSize({ width: 1280, height: 900 });
  }
  assert.deepEqual(consoleErrors, []);
});
