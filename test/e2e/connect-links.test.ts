import assert from 'node:assert/strict';
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import SQLite from 'better-sqlite3';
import nodemailer from 'nodemailer';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium, newContext } from '../helpers/browser.ts';
import { storeTokens } from '../helpers/connect-directly.ts';
import { apiClient, settledMessage, waitFor } from '../helpers/e2e.ts';
import { freePort, type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { getToken } from '../peers/get-token.ts';
import { type GoogleAuthServer, startGoogleAuthServer } from '../peers/google-auth-server.ts';
import { googleSignIn, type Peers, signInAndConsent, startPeers } from '../peers/index.ts';

// Personal mailboxes through connect links, in a real browser: a test ERP (an HTTP server on
// 127.0.0.1 that is the return URL) asks for a link, a person with no Mailroom account opens it,
// signs in at the Microsoft-shaped or the Google-shaped authorization server, and lands back at the
// ERP, which checks the signed result the way the README tells it to. The Outlook mailbox then sends
// through Dovecot submission and receives over IMAP; owners never send through each other's mailbox.
const MS = { clientId: '6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b', clientSecret: 'Qx8~connect.Links-Test_Secret~0123456' };
const GOOGLE = { clientId: '123456789012-connectlinks0123456789abcdef.apps.googleusercontent.com', clientSecret: 'GOCSPX-connect_links_secret_0123' };
const SECRET = 'erp-and-mailroom-share-this-secret-0123456789abcdef';
const SHARED = 'sales@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const T = { timeout: 180_000 };

let peers: Peers;
let google: GoogleAuthServer;
let mailroom: MailroomProcess;
let erp: Server;
let erpBase: string;
let browser: Browser;
let adminKey: string;
let connectKey: string;
let sendKey: string;
let submissionPort: number;
let outlookTemplate: string;
let gmailTemplate: string;
const admin = apiClient(() => mailroom.baseUrl, () => adminKey);
const erpApi = apiClient(() => mailroom.baseUrl, () => connectKey);
const sender = apiClient(() => mailroom.baseUrl, () => sendKey);

/**
 * The ERP's side, as the README shows it: HMAC-SHA256 over the raw query before `&sig=`, a recent
 * `ts`, and a `nonce` accepted once.
 */
const seenNonces = new Set<string>();
function erpVerify(rawQuery: string): { ok: true; params: URLSearchParams } | { ok: false; reason: string } {
  const at = rawQuery.lastIndexOf('&sig=');
  if (at < 0) return { ok: false, reason: 'unsigned' };
  const signed = rawQuery.slice(0, at);
  const sig = Buffer.from(rawQuery.slice(at + 5));
  const expected = Buffer.from(createHmac('sha256', SECRET).update(signed).digest('hex'));
  if (sig.length !== expected.length || !timingSafeEqual(sig, expected)) return { ok: false, reason: 'bad signature' };
  const params = new URLSearchParams(signed);
  if (Math.abs(Date.now() / 1000 - Number(params.get('ts'))) > 300) return { ok: false, reason: 'too old' };
  const nonce = params.get('nonce') ?? '';
  if (!nonce || seenNonces.has(nonce)) return { ok: false, reason: 'replayed' };
  seenNonces.add(nonce);
  return { ok: true, params };
}

interface ErpVisit {
  rawQuery: string;
  verdict: ReturnType<typeof erpVerify>;
}
const visits: ErpVisit[] = [];

async function startErp(): Promise<void> {
  erp = createServer((req, res) => {
    const url = req.url ?? '/';
    // The browser's own requests (favicon.ico) are not results.
    if (!url.startsWith('/erp/')) return void res.writeHead(404).end();
    const rawQuery = url.includes('?') ? url.slice(url.indexOf('?') + 1) : '';
    const verdict = erpVerify(rawQuery);
    visits.push({ rawQuery, verdict });
    res.writeHead(verdict.ok ? 200 : 400, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(verdict.ok ? `ERP accepted: ${verdict.params.get('status')} ${verdict.params.get('mailbox') ?? verdict.params.get('error') ?? ''}` : `ERP refused: ${verdict.reason}`);
  });
  await new Promise<void>((r) => erp.listen(0, '127.0.0.1', r));
  erpBase = `http://127.0.0.1:${(erp.address() as AddressInfo).port}`;
}

before(async () => {
  await startErp();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  peers = await startPeers({ clients: [{ ...MS, redirectUris: [`${base}/oauth2/outlook/callback`, TOKEN_REDIRECT] }] });
  google = await startGoogleAuthServer({ tls: { cert: peers.ca.cert, key: peers.ca.key }, clients: [{ ...GOOGLE, redirectUris: [`${base}/oauth2/gmail/callback`] }] });
  submissionPort = await freePort();
  mailroom = await startMailroomProcess(
    {
      BASE_URL: base,
      MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost,
      GOOGLE_AUTHORITY_HOST: google.authorityHost,
      GOOGLE_TOKEN_HOST: google.tokenHost,
      NODE_EXTRA_CA_CERTS: peers.caFile,
      OUTBOX_RETRY_BASE_SECONDS: '0.3',
      CONNECT_RETURN_URLS: `${erpBase}/erp/`,
      CONNECT_RESULT_SECRET: SECRET,
      CONNECT_APP_NAME: 'Contoso ERP',
      SMTP_SUBMISSION_PORT: String(submissionPort),
      SMTP_ALLOW_INSECURE_AUTH_ON_LOOPBACK: 'true',
    },
    port,
  );
  adminKey = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'admin', '--scope', 'admin'))![1]!;
  connectKey = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'ERP connect', '--scope', 'connect'))![1]!;
  sendKey = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'ERP', '--scope', 'send'))![1]!;

  // The shared sales@ mailbox is the template: its app registration, hosts and limits are copied.
  const s = await admin('POST', '/api/v1/mail-servers', {
    name: 'Outlook — Sales',
    username: SHARED,
    clientId: MS.clientId,
    clientSecret: MS.clientSecret,
    smtpHost: '127.0.0.1',
    smtpPort: peers.dovecot.submissionPort,
    smtpSecurity: 'starttls',
    messagesPerMinute: 120,
  });
  assert.equal(s.status, 201, s.text);
  outlookTemplate = s.json.id;
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: MS.clientId, clientSecret: MS.clientSecret, redirectUri: TOKEN_REDIRECT, login: SHARED });
  storeTokens(mailroom.dataDir, outlookTemplate, SHARED, t, peers.authServer.tenantId);
  // Its inbox settings (Dovecot's IMAPS) are what a person's incoming server copies.
  const inbox = await admin('POST', '/api/v1/incoming-servers', {
    name: 'Sales inbox',
    authType: 'outlook_oauth',
    imapHost: '127.0.0.1',
    imapPort: peers.dovecot.imapsPort,
    imapSecurity: 'tls',
    username: SHARED,
    folder: 'INBOX',
    afterFetch: 'mark_read',
    intervalMinutes: 1440,
    tokenSourceId: outlookTemplate,
    active: false,
  });
  assert.equal(inbox.status, 201, inbox.text);
  const g = await admin('POST', '/api/v1/mail-servers', {
    name: 'Gmail — Contoso',
    authType: 'gmail_oauth',
    username: 'office@example.test',
    clientId: GOOGLE.clientId,
    clientSecret: GOOGLE.clientSecret,
    smtpHost: '127.0.0.1',
    smtpPort: peers.dovecot.submissionPort,
  });
  assert.equal(g.status, 201, g.text);
  gmailTemplate = g.json.id;
  browser = await launchChromium();
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-connect-links.log', mailroom?.output() ?? '');
  await Promise.all(browser?.contexts().map((c) => c.close()) ?? []);
  await browser?.close();
  await mailroom?.stop();
  await google?.close();
  await peers?.stop();
  await new Promise((r) => erp?.close(r));
});

/** A person's own browser: a fresh context, never logged in to Mailroom. */
async function person(): Promise<{ context: BrowserContext; page: Page; callbacks: string[] }> {
  const context = await newContext(browser);
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const callbacks: string[] = [];
  page.on('request', (r) => {
    if (r.url().includes('/oauth2/') && r.url().includes('/callback')) callbacks.push(r.url());
  });
  return { context, page, callbacks };
}

async function newLink(body: Record<string, unknown>) {
  const r = await erpApi('POST', '/api/v1/connect-links', { returnUrl: `${erpBase}/erp/connected?erpUser=7`, purposes: ['send', 'receive'], ...body });
  assert.equal(r.status, 201, r.text);
  assert.match(r.json.url, new RegExp(`^${mailroom.baseUrl}/connect/[\\w-]{43}$`));
  return r.json as { id: string; url: string; expiresAt: string };
}

const lastVisit = () => visits.at(-1)!;
const owned = async (owner: string, base = 'mail-servers') => (await admin('GET', `/api/v1/${base}?owner=${encodeURIComponent(owner)}`)).json;
const ids = { ann: '', annIn: '', dave: '' };

test('a person who is no admin connects their Outlook mailbox through a link and lands at the ERP with a valid signed result', T, async () => {
  const link = await newLink({ templateServerId: outlookTemplate, owner: 'u-ann', loginHint: 'Ann@Example.test' });
  assert.ok(Math.abs(Date.parse(link.expiresAt) - Date.now() - 24 * 3600_000) < 60_000, 'valid 24 hours by default');

  // The page itself: headers that forbid framing, leaks and caching.
  const raw = await fetch(link.url);
  assert.equal(raw.status, 200);
  const csp = raw.headers.get('content-security-policy') ?? '';
  assert.match(csp, /frame-ancestors 'none'/);
  assert.match(csp, /default-src 'none'/);
  assert.doesNotMatch(csp, /script-src/);
  assert.equal(raw.headers.get('x-frame-options'), 'DENY');
  assert.equal(raw.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(raw.headers.get('cache-control'), 'no-store');
  assert.doesNotMatch(await raw.text(), /<script/i);

  const { context, page, callbacks } = await person();
  try {
    await page.goto(link.url);
    await page.getByRole('heading', { name: 'Connect your Outlook account to Contoso ERP' }).waitFor();
    await page.getByText('Send mail as you from your Outlook mailbox').waitFor();
    await page.getByText('Read the mail that arrives in your Outlook inbox and mark it read').waitFor();
    await page.getByRole('button', { name: 'Connect your Outlook account' }).click();
    await signInAndConsent(page, 'ann@example.test');
    await page.waitForURL((u) => u.href.startsWith(`${erpBase}/erp/connected`));
    assert.equal(await page.locator('body').innerText(), 'ERP accepted: connected ann@example.test');
    const v = lastVisit();
    assert.ok(v.verdict.ok);
    const p = v.verdict.params;
    assert.equal(p.get('erpUser'), '7', "the return URL's own query is kept, under the signature");
    assert.equal(p.get('owner'), 'u-ann');
    assert.equal(p.get('mailbox'), 'ann@example.test');
    ids.ann = p.get('serverId')!;
    ids.annIn = p.get('incomingServerId')!;
    assert.ok(ids.ann && ids.annIn);

    // The sign-in was PKCE with the hint; no session cookie of Mailroom's exists in this browser.
    // (Cookies are per host, not port: the authorization server's own on 127.0.0.1 are listed too.)
    assert.ok(!(await context.cookies(mailroom.baseUrl)).some((c) => c.name === 'mailroom_session'), 'no Mailroom session');
    assert.equal(callbacks.length, 1);
    const asked = new URL(callbacks[0]!);
    assert.ok(asked.searchParams.get('state')!.startsWith('cl.'));

    // Replays: the link, the provider's answer and the result are each refused.
    const again = await page.goto(link.url);
    assert.equal(again!.status(), 410);
    await page.getByText('This link was already used').first().waitFor();
    // It says what the link did, and the way back carries no second result (no error for a mailbox it connected).
    await page.getByText('It connected ann@example.test; nothing more to do.').waitFor();
    const back = await page.getByRole('link', { name: 'Back to the application' }).getAttribute('href');
    assert.ok(back && !/[?&](sig|status|error)=/.test(back), `a plain return URL: ${back}`);
    const replayed = await page.goto(callbacks[0]!);
    assert.equal(replayed!.status(), 410);
    await page.getByText('already used').first().waitFor();
    const resultAgain = await fetch(`${erpBase}/erp/connected?${v.rawQuery}`);
    assert.equal(await resultAgain.text(), 'ERP refused: replayed');
  } finally {
    await context.close();
  }

  const out = await owned('u-ann');
  assert.equal(out.total, 1);
  const mine = out.items[0];
  assert.equal(mine.id, ids.ann);
  assert.equal(mine.owner, 'u-ann');
  assert.equal(mine.username, 'ann@example.test');
  assert.equal(mine.tokenStatus, 'valid');
  assert.equal(mine.state, 'connected');
  assert.equal(mine.clientId, MS.clientId);
  // The template's registration by reference, no copy of its secret: renewing it there serves Ann too.
  assert.equal(mine.appSourceId, outlookTemplate);
  assert.equal(mine.clientSecretSet, false);
  assert.equal(mine.smtpPort, peers.dovecot.submissionPort);
  assert.equal(mine.messagesPerMinute, 120, 'limits copied from the template');
  const inbox = await owned('u-ann', 'incoming-servers');
  assert.equal(inbox.total, 1);
  assert.equal(inbox.items[0].imapPort, peers.dovecot.imapsPort, 'IMAP settings from the template\'s inbox');
  assert.equal(inbox.items[0].tokenSourceId, ids.ann);
  // The shared template is not the owner's, and the shared filter finds it.
  const shared = (await admin('GET', '/api/v1/mail-servers?shared=true')).json;
  assert.deepEqual(shared.items.map((x: { id: string }) => x.id).sort(), [outlookTemplate, gmailTemplate].sort());
});

test("the person's mailbox sends through Dovecot submission and receives over IMAP", T, async () => {
  const marker = randomUUID();
  const m = await sender('POST', '/api/v1/messages', { owner: 'u-ann', to: ['ann@example.test'], subject: `Quote ${marker}`, text: 'From my own mailbox.' });
  assert.equal(m.status, 202, m.text);
  assert.equal(m.json.mailServerId, ids.ann);
  const done = await settledMessage(sender, m.json.id);
  assert.equal(done.state, 'sent', JSON.stringify(done.lastError));
  const delivered = await peers.sink.waitForMessage((x) => x.raw.includes(marker), 30_000);
  assert.match(delivered.raw.toString(), /^From: ann@example\.test/m);
  // The new inbox is active and watched at once (IMAP IDLE): Fetch Now may find a fetch already running.
  const f = await admin('POST', `/api/v1/incoming-servers/${ids.annIn}/fetch`);
  assert.ok(f.status < 300 || f.json?.error?.code === 'MR_CONFLICT', f.text);
  const got = await waitFor('the reply to be imported', async () => {
    const items: Array<{ subject: string; serverId: string }> = (await admin('GET', `/api/v1/inbound-messages?serverId=${ids.annIn}&limit=50`)).json.items;
    return items.find((x) => x.subject === `Quote ${marker}`);
  }, 60_000);
  assert.equal(got.serverId, ids.annIn);
});

test('signing in as another account than the link names is refused with a clear page and a signed error', T, async () => {
  const link = await newLink({ templateServerId: outlookTemplate, owner: 'u-carol', loginHint: 'carol@example.test', purposes: ['send'] });
  const { context, page } = await person();
  try {
    await page.goto(link.url);
    await page.getByRole('button', { name: 'Connect your Outlook account' }).click();
    await signInAndConsent(page, 'mallory@example.test');
    await page.getByText('You signed in as mallory@example.test, but this link is for carol@example.test').waitFor();
    await page.getByRole('link', { name: 'Back to the application' }).click();
    await page.waitForURL((u) => u.href.startsWith(`${erpBase}/erp/connected`));
    const v = lastVisit();
    assert.ok(v.verdict.ok);
    assert.equal(v.verdict.params.get('status'), 'error');
    assert.equal(v.verdict.params.get('error'), 'wrong_account');
  } finally {
    await context.close();
  }
  assert.equal((await owned('u-carol')).total, 0, 'no mailbox was made');
});

test('a cancelled consent at Google is refused with a clear page; a second link connects the Gmail mailbox', T, async () => {
  const first = await newLink({ templateServerId: gmailTemplate, owner: 'u-bob', loginHint: 'bob@example.test', purposes: ['send'] });
  const { context, page } = await person();
  try {
    await page.goto(first.url);
    await page.getByRole('heading', { name: 'Connect your Gmail account to Contoso ERP' }).waitFor();
    await page.getByRole('button', { name: 'Connect your Gmail account' }).click();
    await googleSignIn(page, 'bob@example.test', { decision: 'Cancel' });
    assert.equal(google.lastAuthorizeRequest()?.get('login_hint'), 'bob@example.test');
    assert.equal(google.lastAuthorizeRequest()?.get('code_challenge_method'), 'S256');
    await page.getByText('You cancelled the sign-in, so no mailbox was connected.').waitFor();
    await page.getByRole('link', { name: 'Back to the application' }).click();
    await page.waitForURL((u) => u.href.startsWith(`${erpBase}/erp/`));
    assert.ok(lastVisit().verdict.ok);
    assert.equal((lastVisit().verdict as { params: URLSearchParams }).params.get('error'), 'access_denied');

    const second = await newLink({ templateServerId: gmailTemplate, owner: 'u-bob', loginHint: 'bob@example.test', purposes: ['send'] });
    await page.goto(second.url);
    await page.getByRole('button', { name: 'Connect your Gmail account' }).click();
    await googleSignIn(page, 'bob@example.test');
    await page.waitForURL((u) => u.href.startsWith(`${erpBase}/erp/connected`));
    assert.equal(await page.locator('body').innerText(), 'ERP accepted: connected bob@example.test');
  } finally {
    await context.close();
  }
  const bob = (await owned('u-bob')).items;
  assert.equal(bob.length, 1);
  assert.equal(bob[0].authType, 'gmail_oauth');
  assert.equal(bob[0].tokenStatus, 'valid');

  // Deleting it revokes the grant at Google (through GOOGLE_TOKEN_HOST).
  const del = await admin('POST', '/api/v1/mail-servers/bulk', { action: 'delete', ids: [bob[0].id] });
  assert.equal(del.status, 200, del.text);
  assert.deepEqual(del.json.results[0], { id: bob[0].id, ok: true, code: null, message: 'Deleted. The grant was revoked at the provider.', grantRevoked: true, note: null });
  assert.deepEqual(google.revocations(), ['bob@example.test']);
  assert.equal((await owned('u-bob')).total, 0);
});

test('a forged or altered result, an unlisted return URL and an expired link are each refused', T, async () => {
  // The ERP refuses a result whose query was changed after signing, and one signed with another key.
  const accepted = visits.find((v) => v.verdict.ok && v.rawQuery.includes('status=connected'))!;
  const altered = accepted.rawQuery.replace('mailbox=ann%40example.test', 'mailbox=ceo%40example.test');
  assert.notEqual(altered, accepted.rawQuery);
  assert.equal(await (await fetch(`${erpBase}/erp/connected?${altered}`)).text(), 'ERP refused: bad signature');
  const body = accepted.rawQuery.slice(0, accepted.rawQuery.lastIndexOf('&sig='));
  const forged = `${body}&sig=${createHmac('sha256', 'not-the-shared-secret-at-all-0123456789').update(body).digest('hex')}`;
  assert.equal(await (await fetch(`${erpBase}/erp/connected?${forged}`)).text(), 'ERP refused: bad signature');

  for (const returnUrl of ['https://evil.example/erp/connected', `${erpBase}/admin/connected`, `${erpBase}/erpx`, `${erpBase.replace('127.0.0.1', 'localhost')}/erp/`]) {
    const r = await erpApi('POST', '/api/v1/connect-links', { templateServerId: outlookTemplate, owner: 'u-x', purposes: ['send'], returnUrl });
    assert.equal(r.status, 400, returnUrl);
    assert.match(r.json.error.fields.returnUrl, /not one of CONNECT_RETURN_URLS/);
  }
  const taken = await erpApi('POST', '/api/v1/connect-links', { templateServerId: outlookTemplate, owner: 'u-x', purposes: ['send'], returnUrl: `${erpBase}/erp/?status=connected` });
  assert.match(taken.json.error.fields.returnUrl, /cannot use status/);

  const link = await newLink({ templateServerId: outlookTemplate, owner: 'u-late', purposes: ['send'] });
  // A day passes: the row's expiry is moved into the past, as time would.
  const db = new SQLite(join(mailroom.dataDir, 'mailroom.sqlite'));
  try {
    db.pragma('busy_timeout = 5000');
    db.prepare('update connect_links set expires_at = ? where id = ?').run(new Date(Date.now() - 1000).toISOString(), link.id);
  } finally {
    db.close();
  }
  const { context, page } = await person();
  try {
    const r = await page.goto(link.url);
    assert.equal(r!.status(), 410);
    await page.getByText(/This link expired on/).waitFor();
    await page.getByText('Ask the application for a new link.').waitFor();
    assert.equal(await page.getByRole('button').count(), 0, 'nothing to click but the way back');
    await page.getByRole('link', { name: 'Back to the application' }).click();
    await page.waitForURL((u) => u.href.startsWith(`${erpBase}/erp/`));
    assert.equal((lastVisit().verdict as { params: URLSearchParams }).params.get('error'), 'link_expired');
    const unknown = await page.goto(`${mailroom.baseUrl}/connect/${'A'.repeat(43)}`);
    assert.equal(unknown!.status(), 404);
    await page.getByText('This link is not valid').waitFor();
  } finally {
    await context.close();
  }
});

test("owner A's message never leaves through owner B's mailbox, over the API or the SMTP listener", T, async () => {
  const link = await newLink({ templateServerId: outlookTemplate, owner: 'u-dave', loginHint: 'dave@example.test', purposes: ['send'] });
  const { context, page } = await person();
  try {
    await page.goto(link.url);
    await page.getByRole('button', { name: 'Connect your Outlook account' }).click();
    await signInAndConsent(page, 'dave@example.test');
    await page.waitForURL((u) => u.href.startsWith(`${erpBase}/erp/connected`));
    ids.dave = (lastVisit().verdict as { params: URLSearchParams }).params.get('serverId')!;
  } finally {
    await context.close();
  }
  const msg = (extra: object) => sender('POST', '/api/v1/messages', { to: ['x@remote.example'], subject: 'Owner check', text: 'x', ...extra });

  const asDave = await msg({ owner: 'u-ann', from: 'dave@example.test' });
  assert.equal(asDave.status, 422, asDave.text);
  assert.equal(asDave.json.error.field, 'from');
  assert.match(asDave.json.error.message, /sent only from their own mailbox \(ann@example\.test\)/);
  const named = await msg({ owner: 'u-ann', mailServerId: ids.dave });
  assert.equal(named.status, 422);
  assert.equal(named.json.error.field, 'mailServerId');
  const noOwner = await msg({ from: 'dave@example.test' });
  assert.equal(noOwner.status, 422, 'a message without an owner never uses a personal mailbox');
  const nobody = await msg({ owner: 'u-zed' });
  assert.equal(nobody.status, 422);
  assert.equal(nobody.json.error.field, 'owner');
  const sharedNotAllowed = await msg({ owner: 'u-ann', from: SHARED });
  assert.equal(sharedNotAllowed.status, 422);
  const fallback = await msg({ owner: 'u-zed', from: SHARED, allowSharedFallback: true });
  assert.equal(fallback.status, 202, fallback.text);
  assert.equal(fallback.json.mailServerId, outlookTemplate);
  const own = await msg({ owner: 'u-dave' });
  assert.equal(own.status, 202, own.text);
  assert.equal(own.json.mailServerId, ids.dave);
  assert.equal(own.json.from, 'dave@example.test');

  // SMTP: X-Mailroom-Owner picks the owner and is removed before the message goes on.
  const smtp = nodemailer.createTransport({ host: '127.0.0.1', port: submissionPort, secure: false, ignoreTLS: true, auth: { user: 'ERP', pass: sendKey }, logger: false });
  try {
    await assert.rejects(
      smtp.sendMail({ from: 'dave@example.test', to: 'x@remote.example', subject: 'Over SMTP as dave for ann', text: 'x', headers: { 'X-Mailroom-Owner': 'u-ann' } }),
      (e: { responseCode?: number; response?: string }) => e.responseCode === 550 && /ann@example\.test/.test(e.response ?? ''),
    );
    await assert.rejects(smtp.sendMail({ from: 'dave@example.test', to: 'x@remote.example', subject: 'Over SMTP without owner', text: 'x' }), (e: { responseCode?: number }) => e.responseCode === 550);
    const marker = randomUUID();
    const ok = await smtp.sendMail({ from: 'ann@example.test', to: 'ann@example.test', subject: `SMTP for ann ${marker}`, text: 'x', headers: { 'X-Mailroom-Owner': 'u-ann' } });
    const id = /Queued as ([0-9a-f-]{36})/.exec(ok.response)![1]!;
    assert.equal((await admin('GET', `/api/v1/messages/${id}`)).json.mailServerId, ids.ann);
    const delivered = await peers.sink.waitForMessage((x) => x.raw.includes(marker), 60_000);
    assert.doesNotMatch(delivered.raw.toString(), /X-Mailroom-Owner/i);
  } finally {
    smtp.close();
  }
});

test('the owner disconnects through a disconnect link: the mailboxes are gone and the ERP is told, signed', T, async () => {
  const r = await erpApi('POST', '/api/v1/connect-links', { purpose: 'disconnect', owner: 'u-ann', returnUrl: `${erpBase}/erp/disconnected` });
  assert.equal(r.status, 201, r.text);
  const { context, page } = await person();
  try {
    await page.goto(r.json.url);
    await page.getByText('Contoso ERP will stop sending and receiving mail as ann@example.test.').waitFor();
    await page.getByRole('button', { name: 'Disconnect my mailbox' }).click();
    await page.waitForURL((u) => u.href.startsWith(`${erpBase}/erp/disconnected`));
    assert.equal(await page.locator('body').innerText(), 'ERP accepted: disconnected ');
  } finally {
    await context.close();
  }
  assert.equal((await owned('u-ann')).total, 0);
  assert.equal((await owned('u-ann', 'incoming-servers')).total, 0);
});
