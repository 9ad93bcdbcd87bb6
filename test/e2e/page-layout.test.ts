import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { paths, type RouteName } from '../../web/src/routes.ts';
import { launchChromium, watchPageErrors } from '../helpers/browser.ts';
import { apiClient, logIn, waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { type Peers, startPeers } from '../peers/index.ts';

// Every page of the UI, at a laptop's width and a phone's, with real data behind it: none may be wider
// than the window, no field may cut its value without a way to see it whole, and nothing may log an
// error. A new route fails here until it is visited (see `routeUrls`).

const MAILBOX = 'clerk@example.test';
const PASSWORD = 'correct horse battery staple';
const ADMIN = { email: 'layout-admin-with-a-rather-long-address@example.test', password: 'layout admin passphrase' };
const T = { timeout: 600_000 };
const SIZES = [
  { width: 1280, height: 800 },
  { width: 390, height: 844 },
];

/**
 * A field may be narrower than its value only when the whole value can be seen another way. The rule:
 * the field carries `data-full-value` (its whole value is shown beside it or in a tooltip), or a Copy
 * button stands in the same field group.
 */
const CUT_FIELD_RULE = 'data-full-value attribute, or a Copy button in the same .field-control';

/**
 * Fields of the server forms that still cut their values (those forms are being rebuilt separately):
 * `route|selector` pairs, to remove as each form passes.
 */
const KNOWN_CUT_FIELDS = new Set<string>([]);

let peers: Peers;
let mailroom: MailroomProcess;
let receiver: Server;
let key: string;
let browser: Browser;
const api = apiClient(() => mailroom.baseUrl, () => key);
const ids: Record<string, string> = {};

before(async () => {
  peers = await startPeers({ clients: [], passwords: { [MAILBOX]: PASSWORD } });
  receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(204).end());
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  mailroom = await startMailroomProcess({ NODE_EXTRA_CA_CERTS: peers.caFile, OUTBOX_RETRY_BASE_SECONDS: '0.3'});
  await mailroom.cli('admin', 'create', '--email', ADMIN.email, '--password', ADMIN.password);
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'ERP production with a long descriptive name', '--scope', 'admin'))![1]!;
  await mailroom.cli('apikey', 'create', '--name', 'Scanner', '--scope', 'send,outbox:read');

  // An outgoing relay (the sink: sent, then refused), and an Outlook server never connected.
  const relay = await api('POST', '/api/v1/mail-servers', {
    name: 'Office relay for the warehouse printers',
    authType: 'none',
    username: 'erp-notifications@example.test',
    smtpHost: '127.0.0.1',
    smtpPort: peers.sink.port,
    smtpSecurity: 'none',
    fromFilter: 'example.test',
  });
  assert.equal(relay.status, 201, JSON.stringify(relay.json));
  ids.mailServer = relay.json.id;
  const outlook = await api('POST', '/api/v1/mail-servers', {
    name: 'Sales (Outlook)',
    authType: 'outlook_oauth',
    username: 'sales@contoso.example',
    clientId: '3f0c2d1e-5b6a-4c7d-8e9f-0a1b2c3d4e5f',
    clientSecret: 'Xy8Q~s3cr3t.Value-Only_Shown~Once1234567',
    tenant: 'contoso.onmicrosoft.com',
    priority: 20,
  });
  assert.equal(outlook.status, 201, JSON.stringify(outlook.json));
  ids.outlookServer = outlook.json.id;

  const hook = await api('POST', '/api/v1/webhooks', { url: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/mailroom/inbound/with/a/long/path`, description: 'ERP inbox' });
  ids.webhook = hook.json.id;

  const send = (subject: string, extra: object = {}) =>
    api('POST', '/api/v1/messages', {
      from: 'erp-notifications@example.test',
      to: ['customer.accounts.payable@fabrikam-industries.example', 'second.recipient@fabrikam-industries.example'],
      subject,
      text: 'Please find your invoice attached.\nKind regards',
      headers: { 'X-ERP-Document': 'INV-2026-000042' },
      ...extra,
    });
  const sent = await send('Invoice INV-2026-000042 for order 41 of the Fabrikam account');
  ids.sent = sent.json.id;
  await waitFor('the sent email', async () => ((await api('GET', `/api/v1/messages/${ids.sent}`)).json.state === 'sent' ? true : undefined));
  peers.sink.setBehavior({ permFail: '550 5.1.1 <nobody@fabrikam-industries.example>: Recipient address rejected: User unknown in virtual mailbox table' });
  const failed = await send('Reminder that bounces');
  ids.failed = failed.json.id;
  await waitFor('the failed email', async () => ((await api('GET', `/api/v1/messages/${ids.failed}`)).json.state === 'failed' ? true : undefined));
  peers.sink.setBehavior('accept');

  // An incoming mailbox with a reply to the sent email, carrying an attachment.
  const sentView = (await api('GET', `/api/v1/messages/${ids.sent}`)).json;
  await peers.dovecot.deliver(
    MAILBOX,
    [
      'From: Customer Accounts <customer.accounts.payable@fabrikam-industries.example>',
      `To: ${MAILBOX}`,
      'Subject: RE: Invoice INV-2026-000042',
      'Message-ID: <reply-1@fabrikam-industries.example>',
      `In-Reply-To: ${sentView.messageId}`,
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b"',
      '',
      '--b',
      'Content-Type: text/plain',
      '',
      'Thanks, paid today.',
      '--b',
      'Content-Type: application/pdf',
      'Content-Disposition: attachment; filename="remittance-advice.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('%PDF-1.4 remittance').toString('base64'),
      '--b--',
      '',
    ].join('\r\n'),
  );
  const inbox = await api('POST', '/api/v1/incoming-servers', { name: 'Accounts inbox', authType: 'password', username: MAILBOX, password: PASSWORD, imapHost: 'localhost', imapPort: peers.dovecot.imapsPort, imapSecurity: 'tls' });
  assert.equal(inbox.status, 201, JSON.stringify(inbox.json));
  ids.incomingServer = inbox.json.id;
  await api('POST', `/api/v1/incoming-servers/${ids.incomingServer}/fetch`);
  ids.incomingMessage = await waitFor('the fetched reply', async () => {
    const r = await api('GET', '/api/v1/inbound-messages?order=desc');
    return r.json?.items?.find((i: { subject: string }) => i.subject === 'RE: Invoice INV-2026-000042')?.id as string | undefined;
  });
  await waitFor('its webhook delivery', async () => {
    const r = await api('GET', `/api/v1/webhooks/${ids.webhook}/deliveries`);
    return r.json?.items?.some((d: { state: string }) => d.state === 'delivered') ? true : undefined;
  });

  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await mailroom?.stop();
  await new Promise((resolve) => receiver?.close(resolve));
  await peers?.stop();
});

/** Each route with its parameters filled from the data above; a route missing here fails the test. */
function routeUrls(): Array<{ route: RouteName; url: string }> {
  const fill: Partial<Record<RouteName, Record<string, string>>> = {
    mailServer: { id: ids.mailServer! },
    email: { id: ids.sent! },
    incomingMailServer: { id: ids.incomingServer! },
    incomingMessage: { id: ids.incomingMessage! },
    webhook: { id: ids.webhook! },
  };
  const out: Array<{ route: RouteName; url: string }> = [];
  for (const route of Object.keys(paths) as RouteName[]) {
    const url = paths[route].replace(/:(\w+)/g, (_, name: string) => {
      const v = fill[route]?.[name];
      assert.ok(v, `routeUrls has no value for :${name} of the route ${route}: add one so the page is checked`);
      return encodeURIComponent(v);
    });
    out.push({ route, url });
  }
  // The Outlook form too: its Redirect URL, Client ID and secret are the longest values of any field.
  out.push({ route: 'mailServer', url: paths.mailServer.replace(':id', ids.outlookServer!) });
  // The failed email too: its error line and server reply are the widest content of that page.
  out.push({ route: 'email', url: paths.email.replace(':id', ids.failed!) });
  return out;
}

interface PageProblems {
  overflow: string | null;
  cutFields: string[];
  hiddenScroll: string[];
}

/** What is wrong with the page as shown (run in the page). */
function inspect(): PageProblems {
  const doc = document.documentElement;
  const overflow =
    doc.scrollWidth > doc.clientWidth
      ? `the page is ${doc.scrollWidth}px wide in a ${doc.clientWidth}px window; widest: ${[...document.querySelectorAll<HTMLElement>('body *')]
          .filter((el) => el.getBoundingClientRect().right > doc.clientWidth + 1)
          .slice(-3)
          .map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}.${[...el.classList].join('.')} (${Math.round(el.getBoundingClientRect().right)}px)`)
          .join(', ')}`
      : null;
  const describe = (el: Element) => {
    const id = el.id ? `#${el.id}` : '';
    const label = el.id ? document.querySelector(`label[for="${el.id}"]`)?.textContent?.trim() : '';
    return `${el.tagName.toLowerCase()}${id}${label ? ` ("${label}")` : ''}`;
  };
  const cutFields: string[] = [];
  for (const el of document.querySelectorAll<HTMLInputElement>('input, textarea')) {
    if (['checkbox', 'radio', 'hidden', 'submit', 'button', 'file'].includes(el.type)) continue;
    if (!el.value || el.offsetParent === null) continue;
    if (el.scrollWidth <= el.clientWidth + 1) continue;
    const group = el.closest('.field-control') ?? el.parentElement;
    const copy = group ? [...group.querySelectorAll('button')].some((b) => /^copy$/i.test(b.textContent?.trim() ?? '')) : false;
    if (el.hasAttribute('data-full-value') || copy) continue;
    cutFields.push(describe(el));
  }
  const hiddenScroll: string[] = [];
  for (const area of document.querySelectorAll<HTMLElement>('.table-scroll-area')) {
    if (area.scrollWidth > area.clientWidth + 1 && !area.parentElement?.querySelector('.scroll-hint')) hiddenScroll.push(describe(area.querySelector('table') ?? area));
  }
  return { overflow, cutFields, hiddenScroll };
}

async function settle(page: Page): Promise<void> {
  await page.waitForLoadState('networkidle');
  await page.locator('main h1, .auth-card h1').first().waitFor();
  await waitFor('the page to finish loading', async () => ((await page.locator('p.loading').count()) === 0 ? true : undefined), 15_000);
  // The scroll hints measure after layout.
  await page.waitForTimeout(150);
}

test('every page fits the window at 1280 and 390 px, shows every field whole or offers it whole, and logs no error', T, async () => {
  const failures: string[] = [];
  for (const size of SIZES) {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: size });
    // tsx names functions with a helper the page does not have: `inspect` runs there as written.
    await context.addInitScript('window.__name = (f) => f');
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    const errors = watchPageErrors(page, { refused: 'error' });

    // Logged out first: the login page.
    await page.goto(`${mailroom.baseUrl}${paths.login}`);
    await settle(page);
    const loginProblems = await page.evaluate(inspect);
    if (loginProblems.overflow) failures.push(`${size.width}px login: ${loginProblems.overflow}`);
    await logIn(page, mailroom.baseUrl, ADMIN);

    for (const { route, url } of routeUrls()) {
      if (route === 'login') continue;
      errors.length = 0;
      await page.goto(`${mailroom.baseUrl}${url}`);
      await settle(page);
      const p = await page.evaluate(inspect);
      const where = `${size.width}px ${route} (${url})`;
      if (p.overflow) failures.push(`${where}: ${p.overflow}`);
      for (const f of p.cutFields) {
        if (!KNOWN_CUT_FIELDS.has(`${route}|${f}`)) failures.push(`${where}: the field ${f} cuts its value (rule: ${CUT_FIELD_RULE})`);
      }
      for (const t of p.hiddenScroll) failures.push(`${where}: ${t} scrolls sideways without a hint`);
      for (const e of errors) failures.push(`${where}: ${e}`);
    }

    if (size.width < 720) {
      // The sidebar folds into a menu that opens every page.
      await page.goto(`${mailroom.baseUrl}${paths.settings}`);
      await settle(page);
      assert.equal(await page.locator('nav.sidebar').isVisible(), false, 'no empty sidebar band on a phone');
      await page.getByRole('button', { name: 'Menu' }).click();
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Emails', exact: true }).click();
      await page.getByRole('heading', { name: 'Emails', exact: true }).waitFor();
      // Each email is a card: its recipient is shown, not cut.
      const to = page.getByText('customer.accounts.payable@fabrikam-industries.example', { exact: true }).first();
      const box = await to.boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= size.width, `the recipient is inside the window: ${JSON.stringify(box)}`);
    }
    await context.close();
  }
  assert.deepEqual(failures, [], failures.join('\n'));
});

test('the pages show what the API knows: the server reply, the custom header as given, the reply subject, a downloadable attachment, the admin by email', T, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: SIZES[0]! });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  try {
    await logIn(page, mailroom.baseUrl, ADMIN);
    await page.goto(`${mailroom.baseUrl}${paths.email.replace(':id', ids.sent!)}`);
    await page.getByText(/^250 /).first().waitFor();
    await page.getByText('X-ERP-Document: INV-2026-000042', { exact: true }).waitFor();
    await page.getByText('Please find your invoice attached.', { exact: false }).first().waitFor();
    assert.equal(await page.getByText(/\d+ of \d+/).count(), 0, 'a sent email does not read as still retrying');

    await page.goto(`${mailroom.baseUrl}${paths.incomingMessage.replace(':id', ids.incomingMessage!)}`);
    await page.getByRole('link', { name: 'Invoice INV-2026-000042 for order 41 of the Fabrikam account' }).waitFor();
    const download = page.waitForEvent('download');
    await page.getByRole('link', { name: 'remittance-advice.pdf' }).click();
    const file = await download;
    assert.equal(file.suggestedFilename(), 'remittance-advice.pdf');

    await page.goto(`${mailroom.baseUrl}${paths.auditLog}`);
    await page.getByRole('cell', { name: ADMIN.email }).first().waitFor();
    assert.equal(await page.getByText(/^admin:/).count(), 0, 'no admin:<uuid> in the Who column');

    await page.goto(`${mailroom.baseUrl}${paths.mailServers}`);
    await page.locator('.badge', { hasText: /^Not connected$/ }).waitFor();
    await page.getByLabel('State', { exact: true }).selectOption('connected');
    // Both servers are listed before the filtered page arrives: wait for the unconnected one to go (a timeout fails the test).
    await page.getByRole('link', { name: 'Sales (Outlook)' }).waitFor({ state: 'detached', timeout: 15_000 }).catch(() => {
      throw new assert.AssertionError({ message: 'the state filter leaves out the unconnected server' });
    });
    await page.getByRole('link', { name: 'Office relay for the warehouse printers' }).waitFor();
    // Every server here is shared (no owner): "Shared mailboxes" is the API's shared=true, not an owner named "shared".
    await page.getByLabel('State', { exact: true }).selectOption('');
    await page.getByLabel('Owner', { exact: true }).selectOption('shared');
    await page.getByRole('link', { name: 'Sales (Outlook)' }).waitFor();
    await page.getByRole('link', { name: 'Office relay for the warehouse printers' }).waitFor();
  } finally {
    await context.close();
  }
});
