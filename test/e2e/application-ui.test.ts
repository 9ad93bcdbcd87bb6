import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, newContext, watchPageErrors } from '../helpers/browser.ts';
import { apiClient, logIn, waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { OUTLOOK_APP_RESOURCE } from '../peers/auth-server.ts';
import { type GraphServer, startGraphServer } from '../peers/graph-server.ts';
import { GRAPH_RESOURCE, type Peers, signInAndConsent, startPeers } from '../peers/index.ts';

// Application access and certificate credentials as an admin sets them up in the form, in Chromium, against
// the real peers and nothing answered in between: the Microsoft-shaped authorization server (certificates
// "uploaded" through its admin API, admin consent on its own page, app tokens with roles), Dovecot (SMTP
// submission and IMAP, app tokens only for mailboxes in the app's permission table), the Graph peer (the
// same table, like RBAC for Applications) and the SMTP sink behind Dovecot.
const CLIENT_ID = '0b7c9d1e-2f3a-4b5c-8d6e-7f8091a2b3c4';
const CLIENT_SECRET = 'Ui8Q~application.Form-Secret_Value~0123';
const SALES = 'sales@example.test';
const BILLING = 'billing@example.test';
const SUPPORT = 'support@example.test';
const OUTSIDE = 'ceo@example.test';
const CLERK = 'clerk@example.test';
const CUSTOMER = 'customer@example.test';
const ADMIN = { email: 'admin@example.test', password: 'a long admin passphrase' };
const T = { timeout: 240_000 };

let peers: Peers;
let graph: GraphServer;
let mailroom: MailroomProcess;
let key: string;
let browser: Browser;
let page: Page;
let pageErrors: string[];
/** Every URL the browser asked of the authorization server (sign-in pages, admin consent). */
const authorityRequests: string[] = [];
const ids: Record<string, string> = {};
const api = apiClient(() => mailroom.baseUrl, () => key);

before(async () => {
  // Access tokens that live less than the renewal margin: every use asks the token endpoint again, so
  // every send during the certificate roll is also a signed token request.
  peers = await startPeers({ clients: [], accessTokenTtlSeconds: 240 });
  graph = await startGraphServer({
    tls: { cert: peers.ca.cert, key: peers.ca.key },
    introspectionUrl: peers.authServer.httpIntrospectionUrl,
    appTokenUrl: peers.authServer.httpAppTokenUrl,
    mailboxes: [SALES, BILLING, SUPPORT, OUTSIDE, CLERK],
  });
  mailroom = await startMailroomProcess({
    MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost,
    MICROSOFT_GRAPH_HOST: graph.url,
    NODE_EXTRA_CA_CERTS: peers.caFile,
    OUTBOX_RETRY_BASE_SECONDS: '0.3',
    LIFECYCLE_LEASE_SECONDS: '3',
    CERTIFICATE_PROBE_SECONDS: '1',
  });
  // The Azure app registration: this installation's redirect URL, and the application permissions that
  // "Grant admin consent" grants (none is granted before the admin does).
  peers.authServer.upsertClient({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    redirectUris: [`${mailroom.baseUrl}/oauth2/outlook/callback`],
    applicationPermissions: { [OUTLOOK_APP_RESOURCE]: ['SMTP.SendAsApp', 'IMAP.AccessAsApp'], [GRAPH_RESOURCE]: ['Mail.Send', 'Mail.ReadWrite'] },
  });
  // Exchange's side: Add-MailboxPermission / RBAC for Applications for these mailboxes, not OUTSIDE.
  peers.authServer.setMailboxPermissions(CLIENT_ID, [SALES, BILLING, SUPPORT]);
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  await mailroom.cli('admin', 'create', '--email', ADMIN.email, '--password', ADMIN.password);
  browser = await launchChromium();
  page = await (await newContext(browser)).newPage();
  page.setDefaultTimeout(30_000);
  pageErrors = watchPageErrors(page, { refused: 'allowed' });
  page.on('request', (r) => {
    if (r.url().startsWith(peers.authServer.authorityHost)) authorityRequests.push(r.url());
  });
  await logIn(page, mailroom.baseUrl, ADMIN);
});

afterEach(() => {
  const errors = pageErrors.splice(0);
  assert.deepEqual(errors, [], 'the page logged no error');
  mailroom.assertNoUnhandled();
});

after(async () => {
  if (process.env.E2E_DEBUG) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync('/tmp/mailroom-application-ui.log', mailroom?.output() ?? '');
    await page?.screenshot({ path: '/tmp/mailroom-application-ui.png', fullPage: true }).catch(() => undefined);
  }
  await browser?.close();
  await mailroom?.stop();
  await graph?.close();
  await peers?.stop();
});

const serverPath = (kind: 'mail-servers' | 'incoming-mail-servers') => `${mailroom.baseUrl}/settings/technical/${kind}`;

/** The form of a new server with the Account fields filled as the admin types them. */
async function newServer(kind: 'mail-servers' | 'incoming-mail-servers', name: string, username: string) {
  await page.goto(`${serverPath(kind)}/new`);
  await page.getByLabel(kind === 'mail-servers' ? 'Mail Server Description' : 'Name', { exact: true }).fill(name);
  await page.getByLabel('Authenticate Using', { exact: true }).selectOption({ label: 'Outlook OAuth Authentication' });
  await page.getByLabel('Username', { exact: true }).fill(username);
}

/** Create, and wait for the saved server's page; returns its id. */
async function create(kind: 'mail-servers' | 'incoming-mail-servers'): Promise<string> {
  await page.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(new RegExp(`/settings/technical/${kind}/[0-9a-f-]{36}$`));
  return page.url().split('/').pop()!;
}

async function smtpFields() {
  await page.getByLabel('SMTP Server', { exact: true }).fill('127.0.0.1');
  await page.getByLabel('SMTP Port', { exact: true }).fill(String(peers.dovecot.submissionPort));
  await page.getByLabel('Connection Security', { exact: true }).selectOption('starttls');
}

/** A server that uses the application connection of the first one, naming its own mailbox. */
async function useSharedConnection() {
  await page.getByLabel('Use the connection of', { exact: true }).selectOption({ label: `App — sales over SMTP (${SALES})` });
}

const certificateFacts = (which: 'Certificate in use' | 'Pending certificate') => page.locator(`dl[aria-label="${which}"]`);
const thumbprintShown = async (which: 'Certificate in use' | 'Pending certificate') =>
  (await certificateFacts(which).locator('dt:text-is("Thumbprint") + dd').textContent())!.trim();

/** Clicks a Download certificate link of the page and reads the file the browser saved. */
async function downloadCertificate(format: '.cer' | '.pem', pending = false) {
  const scope = pending ? page.locator('.certificate-pending') : page.locator('.certificate-panel > .certificate-downloads');
  const [download] = await Promise.all([page.waitForEvent('download'), scope.getByRole('link', { name: format, exact: true }).click()]);
  return { name: download.suggestedFilename(), bytes: await readFile((await download.path())!) };
}

/** Generate and download are done in the form; the download is checked as Azure would read it. */
async function generateAndDownload(): Promise<{ thumbprint: string; cer: Buffer }> {
  await page.getByRole('button', { name: 'Generate certificate' }).click();
  await certificateFacts('Certificate in use').waitFor();
  const thumbprint = await thumbprintShown('Certificate in use');
  assert.match(thumbprint, /^[0-9A-F]{40}$/);
  const cer = await downloadCertificate('.cer');
  assert.match(cer.name, new RegExp(`${thumbprint}\\.cer$`));
  const pem = await downloadCertificate('.pem');
  assert.match(pem.bytes.toString(), /^-----BEGIN CERTIFICATE-----/);
  assert.ok(!pem.bytes.toString().includes('PRIVATE'), 'the private key is never downloaded');
  for (const file of [cer.bytes, pem.bytes]) {
    const x509 = new X509Certificate(file);
    assert.equal(x509.fingerprint.replace(/:/g, ''), thumbprint, 'the file is the certificate the page shows');
    assert.ok(x509.publicKey.asymmetricKeyDetails!.modulusLength! >= 2048);
  }
  return { thumbprint, cer: cer.bytes };
}

/** Test Connection (Test & Confirm on an incoming server): its outcome, success or the explained failure. */
async function testConnection(expect: 'ok' | 'failed' = 'ok') {
  await page.getByRole('button', { name: /^Test (Connection|& Confirm)$/ }).click();
  const outcome = page.locator('.connection-panel > .action-result .alert').first();
  await outcome.waitFor();
  const text = (await outcome.textContent()) ?? '';
  assert.equal(await outcome.evaluate((e) => e.classList.contains('alert-success')), expect === 'ok', text);
  return text;
}

async function sendTestEmail(to: string) {
  await page.getByLabel('Recipient', { exact: true }).fill(to);
  await page.getByRole('button', { name: 'Send test email' }).click();
  await page.getByText(`Test email sent to ${to}`).waitFor();
}

/** The messages Dovecot has delivered into a mailbox (the sink hands local mail to it before it acknowledges). */
async function maildir(mailbox: string): Promise<string[]> {
  const dir = join(peers.dovecot.dir, 'mail', mailbox, 'Maildir', 'new');
  const files = await readdir(dir).catch(() => [] as string[]);
  return Promise.all(files.map((f) => readFile(join(dir, f), 'latin1')));
}

const tokenBadge = () => page.locator('.connection-status .status-line');

test('Client Credential Certificate and Access Application: the certificate is generated and downloaded in the form, admin consent is granted on Microsoft\'s page, Token Valid with no user sign-in', T, async () => {
  await newServer('mail-servers', 'App — sales over SMTP', SALES);
  await page.getByLabel('Access', { exact: true }).selectOption({ label: 'Application — no user sign-in' });
  await page.getByRole('note').filter({ hasText: 'can reach every mailbox the tenant lets the app reach' }).waitFor();
  await page.getByLabel('Client Credential', { exact: true }).selectOption({ label: 'Certificate' });
  assert.equal(await page.getByLabel('Client Secret', { exact: true }).count(), 0, 'no client secret is asked for');
  await page.getByLabel('Client ID', { exact: true }).fill(CLIENT_ID);
  // The default tenant names no organisation: the form says why it is refused.
  await page.getByLabel('Tenant', { exact: true }).fill('common');
  await smtpFields();
  await page.getByLabel('FROM Filtering', { exact: true }).fill(SALES);
  await page.getByRole('button', { name: 'Create' }).click();
  await page.getByText(/common\/organizations\/consumers name no organisation/).first().waitFor();
  await page.getByLabel('Tenant', { exact: true }).fill(peers.authServer.tenantId);
  ids.sales = await create('mail-servers');
  await tokenBadge().getByText('Not connected', { exact: true }).waitFor();

  const { thumbprint, cer } = await generateAndDownload();
  ids.salesThumbprint = thumbprint;
  // The admin uploads the .cer in Azure › Certificates & secrets › Certificates.
  assert.equal(peers.authServer.registerCertificate(CLIENT_ID, cer), thumbprint);

  // Before admin consent the app token holds no role: the missing one is named.
  await page.getByRole('button', { name: 'Check application access' }).click();
  const roleMissing = page.locator('.connection-panel [role="alert"]').filter({ hasText: /SMTP\.SendAsApp/ });
  await roleMissing.waitFor();
  assert.match((await roleMissing.textContent()) ?? '', /Grant admin consent/);
  await tokenBadge().getByText('Not connected', { exact: true }).waitFor();

  // Grant admin consent: Microsoft's admin-consent page for this app and tenant, then back to the form.
  const consentRequest = page.waitForRequest((r) => r.url().includes('/adminconsent'));
  await page.getByRole('button', { name: 'Grant admin consent' }).click();
  const consentUrl = new URL((await consentRequest).url());
  assert.equal(consentUrl.origin + consentUrl.pathname, `${peers.authServer.authorityHost}/${peers.authServer.tenantId}/adminconsent`);
  assert.equal(consentUrl.searchParams.get('client_id'), CLIENT_ID);
  assert.equal(consentUrl.searchParams.get('redirect_uri'), `${mailroom.baseUrl}/oauth2/outlook/callback`);
  assert.equal(consentUrl.searchParams.get('state'), `admin-consent.${ids.sales}`);
  await page.getByRole('heading', { name: 'Permissions requested' }).waitFor();
  await page.getByRole('button', { name: 'Accept' }).click();
  await page.waitForURL(`${serverPath('mail-servers')}/${ids.sales}?oauth=admin_consent`);
  await page.getByText('Admin consent granted. Now click Check application access.').waitFor();

  const assertionsBefore = peers.authServer.acceptedAssertions().length;
  await page.getByRole('button', { name: 'Check application access' }).click();
  await page.getByText(/Application access works: the token holds .*SMTP\.SendAsApp/).waitFor();
  await tokenBadge().getByText('Token Valid', { exact: true }).waitFor();
  assert.ok(
    peers.authServer.acceptedAssertions().slice(assertionsBefore).some((a) => a.clientId === CLIENT_ID && a.thumbprint === thumbprint),
    'the client-credentials request was signed with the downloaded certificate',
  );
  assert.deepEqual(authorityRequests.filter((u) => u.includes('/authorize') || u.includes('/interaction/')), [], 'no user signed in');
  const saved = (await api('GET', `/api/v1/mail-servers/${ids.sales}`)).json;
  assert.equal(saved.tokenStatus, 'valid');
  assert.equal(saved.clientSecretSet, false);
  assert.equal(saved.access, 'application');

  await testConnection();
  await sendTestEmail(CUSTOMER);
  const arrived = await peers.sink.waitForMessage((m) => m.to.includes(CUSTOMER) && m.from.toLowerCase() === SALES, 30_000);
  assert.match(arrived.raw.toString('latin1'), /^Subject: Mailroom test email/im);
  assert.ok((await maildir(CUSTOMER)).some((m) => m.includes(`From: ${SALES}`) || m.includes(`<${SALES}>`)), 'delivered by Dovecot');
});

test('a mailbox outside the app\'s permissions fails Test Connection, explained on the page with the PowerShell filled in', T, async () => {
  await newServer('mail-servers', 'App — ceo over SMTP', OUTSIDE);
  await useSharedConnection();
  await smtpFields();
  ids.outside = await create('mail-servers');
  const text = await testConnection('failed');
  const oid = peers.authServer.servicePrincipalId(CLIENT_ID);
  assert.match(text, /How to fix/);
  assert.ok(text.includes(`Add-MailboxPermission -Identity ${OUTSIDE} -User ${oid} -AccessRights FullAccess`), text);
  assert.ok(text.includes(`New-ServicePrincipal -AppId ${CLIENT_ID} -ObjectId ${oid} -Organization ${peers.authServer.tenantId}`), text);
  assert.match(text, /SMTP_APP_535_5\.7\.3|535/);
  // The explanation stays on the server's page, and its list row says the connection failed.
  await page.reload();
  const lastError = page.locator('.connection-panel .alert-error').filter({ hasText: 'Last error' });
  await lastError.waitFor();
  assert.ok(((await lastError.textContent()) ?? '').includes(`Add-MailboxPermission -Identity ${OUTSIDE} -User ${oid} -AccessRights FullAccess`));
  await page.goto(serverPath('mail-servers'));
  await page.getByRole('row').filter({ hasText: 'App — ceo over SMTP' }).getByText(/^Connection failed — /).waitFor();
});

test('several servers share the one application connection: send over SMTP and Graph, fetch over IMAP and Graph', T, async () => {
  // Send over SMTP from a second mailbox.
  await newServer('mail-servers', 'App — billing over SMTP', BILLING);
  await useSharedConnection();
  await smtpFields();
  ids.billingSmtp = await create('mail-servers');
  // Token Valid is per mailbox: only a token that has served this one shows it.
  await tokenBadge().getByText('Not connected', { exact: true }).waitFor();
  const listed = async () => {
    await page.goto(serverPath('mail-servers'));
    const row = page.getByRole('row').filter({ hasText: 'App — billing over SMTP' });
    await row.waitFor();
    return (await row.textContent()) ?? '';
  };
  // The list says what the server's page says.
  assert.match(await listed(), /Not connected/);
  await page.goto(`${serverPath('mail-servers')}/${ids.billingSmtp}`);
  await testConnection();
  await tokenBadge().getByText('Token Valid', { exact: true }).waitFor();
  assert.match(await listed(), /Token Valid/);
  await page.goto(`${serverPath('mail-servers')}/${ids.billingSmtp}`);
  await sendTestEmail(CUSTOMER);
  await peers.sink.waitForMessage((m) => m.to.includes(CUSTOMER) && m.from.toLowerCase() === BILLING, 30_000);

  // Send over Graph.
  await newServer('mail-servers', 'App — support over Graph', SUPPORT);
  await useSharedConnection();
  await page.getByLabel('Send Using', { exact: true }).selectOption({ label: 'Microsoft Graph' });
  ids.supportGraph = await create('mail-servers');
  await testConnection();
  await sendTestEmail(CUSTOMER);
  await waitFor('the Graph send', async () => (graph.sent.some((m) => m.mailbox === SUPPORT && m.mime?.toString('latin1').includes(CUSTOMER)) ? true : undefined));
  // The app reached the mailbox by its address, not through /me (a delegated token's path).
  assert.ok(graph.requests.some((r) => r.path.startsWith(`/v1.0/users/${encodeURIComponent(SUPPORT)}/`) && r.status < 300), 'sent as the mailbox named on the server');

  // Fetch over IMAP.
  await peers.dovecot.deliver(SALES, Buffer.from(`From: ${CUSTOMER}\r\nTo: ${SALES}\r\nSubject: Order 7 over IMAP\r\nMessage-ID: <order-7-imap@example.test>\r\n\r\nHello\r\n`));
  await newServer('incoming-mail-servers', 'App — sales inbox over IMAP', SALES);
  await useSharedConnection();
  await page.getByLabel('Server', { exact: true }).fill('127.0.0.1');
  await page.getByLabel('Port', { exact: true }).fill(String(peers.dovecot.imapsPort));
  await page.getByLabel('After fetching', { exact: true }).selectOption({ label: 'Leave as is' });
  ids.salesImap = await create('incoming-mail-servers');
  await testConnection();
  await page.getByRole('button', { name: 'Fetch Now' }).click();
  await page.locator('.connection-status').getByRole('link', { name: '1', exact: true }).waitFor();

  // Fetch over Graph.
  graph.deliver(BILLING, `From: ${CUSTOMER}\r\nTo: ${BILLING}\r\nSubject: Invoice 9 over Graph\r\nMessage-ID: <invoice-9-graph@example.test>\r\n\r\nHello\r\n`);
  await newServer('incoming-mail-servers', 'App — billing inbox over Graph', BILLING);
  await useSharedConnection();
  await page.getByLabel('Server Type', { exact: true }).selectOption({ label: 'Microsoft Graph' });
  await page.getByLabel('After fetching', { exact: true }).selectOption({ label: 'Leave as is' });
  ids.billingGraph = await create('incoming-mail-servers');
  await testConnection();
  await page.getByRole('button', { name: 'Fetch Now' }).click();
  await page.locator('.connection-status').getByRole('link', { name: '1', exact: true }).click();
  await page.getByText('Invoice 9 over Graph').first().waitFor();
  await page.goto(`${mailroom.baseUrl}/settings/technical/incoming-messages`);
  await page.getByText('Order 7 over IMAP').first().waitFor();

  // Every server names its own mailbox and uses the one connection; the audit log records which mailbox.
  for (const [id, base, mailbox] of [
    [ids.billingSmtp, 'mail-servers', BILLING],
    [ids.supportGraph, 'mail-servers', SUPPORT],
    [ids.salesImap, 'incoming-servers', SALES],
    [ids.billingGraph, 'incoming-servers', BILLING],
  ] as const) {
    const s = (await api('GET', `/api/v1/${base}/${id}`)).json;
    assert.equal(s.tokenSourceId, ids.sales, `${mailbox} uses the sales connection`);
    assert.equal(s.access, 'application');
    assert.equal(s.username, mailbox);
  }
  assert.deepEqual(authorityRequests.filter((u) => u.includes('/authorize') || u.includes('/interaction/')), [], 'still no user sign-in');
});

test('a delegated server switched from its client secret to a certificate in the form keeps its grant: still Token Valid, still sends', T, async () => {
  await newServer('mail-servers', 'Delegated — clerk', CLERK);
  await page.getByLabel('Client ID', { exact: true }).fill(CLIENT_ID);
  await page.getByLabel('Client Secret', { exact: true }).fill(CLIENT_SECRET);
  await smtpFields();
  await page.getByLabel('FROM Filtering', { exact: true }).fill(CLERK);
  ids.clerk = await create('mail-servers');
  await page.getByRole('button', { name: 'Connect your Outlook account' }).click();
  await signInAndConsent(page, CLERK);
  await page.waitForURL(`${serverPath('mail-servers')}/${ids.clerk}?oauth=connected`);
  await tokenBadge().getByText('Token Valid', { exact: true }).waitFor();
  await sendTestEmail(CUSTOMER);
  await peers.sink.waitForMessage((m) => m.to.includes(CUSTOMER) && m.from.toLowerCase() === CLERK, 30_000);
  const signIns = authorityRequests.filter((u) => u.includes('/authorize')).length;

  await page.getByLabel('Client Credential', { exact: true }).selectOption({ label: 'Certificate' });
  const { thumbprint, cer } = await generateAndDownload();
  peers.authServer.registerCertificate(CLIENT_ID, cer);
  assert.equal(await page.getByLabel('Client Credential', { exact: true }).inputValue(), 'certificate', 'the choice survives generating the certificate');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Saved.', { exact: true }).waitFor();
  await page.reload();
  assert.equal(await page.getByLabel('Client Credential', { exact: true }).inputValue(), 'certificate');
  await tokenBadge().getByText('Token Valid', { exact: true }).waitFor();
  const saved = (await api('GET', `/api/v1/mail-servers/${ids.clerk}`)).json;
  assert.equal(saved.clientCredential, 'certificate');
  assert.equal(saved.connectedAccount, CLERK);

  // Azure deletes the secret: only the certificate can refresh the grant from now on.
  peers.authServer.expireClientSecret(CLIENT_ID);
  try {
    const mark = peers.authServer.acceptedAssertions().length;
    await testConnection();
    await sendTestEmail(CUSTOMER);
    await waitFor('a second test email from the clerk', async () => {
      const got = (await maildir(CUSTOMER)).filter((m) => m.includes(CLERK) && /Subject: Mailroom test email/i.test(m));
      return got.length >= 2 ? got : undefined;
    });
    assert.ok(peers.authServer.acceptedAssertions().slice(mark).some((a) => a.thumbprint === thumbprint), 'the refresh was signed with the certificate');
    await tokenBadge().getByText('Token Valid', { exact: true }).waitFor();
    assert.equal(authorityRequests.filter((u) => u.includes('/authorize')).length, signIns, 'no second sign-in');
  } finally {
    peers.authServer.upsertClient({
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      redirectUris: [`${mailroom.baseUrl}/oauth2/outlook/callback`],
      applicationPermissions: { [OUTLOOK_APP_RESOURCE]: ['SMTP.SendAsApp', 'IMAP.AccessAsApp'], [GRAPH_RESOURCE]: ['Mail.Send', 'Mail.ReadWrite'] },
    });
  }
});

test('Roll certificate in the form with a burst of mail in flight: nothing lost, nothing failed; the page names the old certificate to delete in Azure', T, async () => {
  const old = ids.salesThumbprint!;
  await page.goto(`${serverPath('mail-servers')}/${ids.sales}`);
  assert.equal(await thumbprintShown('Certificate in use'), old);
  await page.getByRole('button', { name: 'Roll certificate' }).click();
  await certificateFacts('Pending certificate').waitFor();
  const next = await thumbprintShown('Pending certificate');
  assert.notEqual(next, old);
  assert.equal(await thumbprintShown('Certificate in use'), old, 'the current certificate stays in use');

  const send = async (subject: string) => {
    const r = await api('POST', '/api/v1/messages', { from: SALES, to: [CUSTOMER], subject, text: `Body of ${subject}` });
    assert.equal(r.status, 202, r.text);
    return { id: r.json.id as string, subject };
  };
  const settled = (id: string) =>
    waitFor(`message ${id} to settle`, async () => {
      const m = (await api('GET', `/api/v1/messages/${id}`)).json;
      return ['sent', 'failed', 'held'].includes(m.state) ? m : undefined;
    }, 90_000);
  // Token requests meanwhile (each send, the probe every second) try the new certificate first, are refused
  // (not uploaded yet) and go on with the current one, unseen by the mail.
  const burst = await Promise.all(Array.from({ length: 8 }, (_, i) => send(`Roll burst A${i}`)));
  await settled(burst[1]!.id);
  // The admin downloads the new certificate from the page and uploads it while mail is still going out.
  const pending = await downloadCertificate('.cer', true);
  assert.equal(new X509Certificate(pending.bytes).fingerprint.replace(/:/g, ''), next);
  assert.equal(peers.authServer.registerCertificate(CLIENT_ID, pending.bytes), next);
  burst.push(...(await Promise.all(Array.from({ length: 8 }, (_, i) => send(`Roll burst B${i}`)))));
  for (const m of burst) {
    const done = await settled(m.id);
    assert.equal(done.state, 'sent', JSON.stringify(done.lastError));
    assert.equal(done.attempts, 1, `${m.subject}: no attempt failed: ${JSON.stringify(done)}`);
    assert.equal(done.mailServerId, ids.sales);
  }

  // Proven by a token request, the new certificate takes over; the page names the old one to delete.
  await waitFor('the new certificate in use on the page', async () => {
    await page.reload();
    await certificateFacts('Certificate in use').waitFor();
    return (await thumbprintShown('Certificate in use')) === next ? true : undefined;
  }, 60_000, 1000);
  assert.equal(await certificateFacts('Pending certificate').count(), 0);
  const rolled = page.locator('.connection-panel .alert').filter({ hasText: 'Delete the old certificate' });
  await rolled.waitFor();
  assert.ok(((await rolled.textContent()) ?? '').includes(old), (await rolled.textContent()) ?? '');

  // Deleted in Azure, the old certificate is not missed.
  peers.authServer.removeCertificate(CLIENT_ID, old);
  const mark = peers.authServer.acceptedAssertions().length;
  await testConnection();
  await sendTestEmail(CUSTOMER);
  const used = peers.authServer.acceptedAssertions().slice(mark);
  assert.ok(used.length > 0 && used.every((a) => a.thumbprint === next), JSON.stringify(used));
  // The successes since did not take the notice down: the admin does, once the old one is deleted in Azure.
  await page.reload();
  await rolled.waitFor();
  await rolled.getByRole('button', { name: 'I deleted it in Azure' }).click();
  await rolled.waitFor({ state: 'detached' });
  await page.reload();
  await certificateFacts('Certificate in use').waitFor();
  assert.equal(await page.locator('.connection-panel .alert').filter({ hasText: 'Delete the old certificate' }).count(), 0);

  // Nothing lost, nothing twice: each message once in the recipient's mailbox.
  const delivered = await waitFor('every burst message in the mailbox', async () => {
    const all = await maildir(CUSTOMER);
    return burst.every((m) => all.some((x) => x.includes(`Subject: ${m.subject}\r\n`) || x.includes(`Subject: ${m.subject}\n`))) ? all : undefined;
  }, 60_000);
  for (const m of burst) assert.equal(delivered.filter((x) => new RegExp(`^Subject: ${m.subject}\\r?$`, 'm').test(x)).length, 1, m.subject);
});
