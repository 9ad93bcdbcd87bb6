import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, newContext } from '../helpers/browser.ts';
import { apiClient, logIn, waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { getToken } from '../peers/get-token.ts';
import { type Peers, signInAndConsent, startPeers } from '../peers/index.ts';

// Certificate credentials against the real peers: the Microsoft-shaped authorization server checks every
// client assertion against the certificates "uploaded" through its admin API; Dovecot checks every token
// Mailroom then uses for SMTP submission and IMAP.
const CLIENT_ID = '5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b';
const CLIENT_SECRET = 'Ce8Q~certificate.Test-Secret_Value~0123';
const MAILBOX = 'cert@example.test';
const OTHER = 'reader@example.test';
const ADMIN = { email: 'admin@example.test', password: 'a long admin passphrase' };
const T = { timeout: 180_000 };

let peers: Peers;
let mailroom: MailroomProcess;
let key: string;
let browser: Browser;
let page: Page;

const api = apiClient(() => mailroom.baseUrl, () => key);

before(async () => {
  // Access tokens that live less than the refresh margin: every use refreshes, so every send is a token request.
  peers = await startPeers({ clients: [], accessTokenTtlSeconds: 240 });
  mailroom = await startMailroomProcess({ MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost, NODE_EXTRA_CA_CERTS: peers.caFile, OUTBOX_RETRY_BASE_SECONDS: '0.3', LIFECYCLE_LEASE_SECONDS: '3', CERTIFICATE_PROBE_SECONDS: '1' });
  peers.authServer.upsertClient({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [`${mailroom.baseUrl}/oauth2/outlook/callback`, 'http://127.0.0.1:9/token-helper'] });
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  await mailroom.cli('admin', 'create', '--email', ADMIN.email, '--password', ADMIN.password);
  browser = await launchChromium();
  page = await (await newContext(browser)).newPage();
  page.setDefaultTimeout(30_000);
  await logIn(page, mailroom.baseUrl, ADMIN);
});

after(async () => {
  if (process.env.E2E_DEBUG) writeFileSync('/tmp/mailroom-certificates.log', mailroom?.output() ?? '');
  await browser?.close();
  await mailroom?.stop();
  await peers?.stop();
});

async function createServer(name: string, body: Record<string, unknown> = {}) {
  const r = await api('POST', '/api/v1/mail-servers', {
    name,
    username: MAILBOX,
    clientId: CLIENT_ID,
    clientCredential: 'certificate',
    smtpHost: '127.0.0.1',
    smtpPort: peers.dovecot.submissionPort,
    smtpSecurity: 'starttls',
    ...body,
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return r.json as { id: string };
}

/** "Connect your Outlook account" in the browser: Mailroom's authorize URL, the peer's sign-in and consent, back to Mailroom. */
async function connect(serverId: string, base = '/api/v1/mail-servers', login = MAILBOX) {
  await page.context().clearCookies({ name: /^_/ });
  const authorizeUrl = await page.evaluate(async (url) => {
    const session = await (await fetch('/api/v1/session')).json();
    const r = await fetch(url, { method: 'POST', headers: { 'x-csrf-token': session.csrfToken } });
    return (await r.json()).authorizeUrl as string;
  }, `${base}/${serverId}/connect`);
  assert.ok(authorizeUrl?.startsWith(peers.authServer.authorityHost), authorizeUrl);
  await page.goto(authorizeUrl);
  await signInAndConsent(page, login);
  await page.waitForURL((u) => u.href.startsWith(mailroom.baseUrl));
}

async function download(serverId: string, format: 'pem' | 'cer', which?: 'pending', base = '/api/v1/mail-servers') {
  const res = await fetch(`${mailroom.baseUrl}${base}/${serverId}/certificate.${format}${which ? '?which=pending' : ''}`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(res.status, 200);
  return { body: Buffer.from(await res.arrayBuffer()), disposition: res.headers.get('content-disposition') ?? '', type: res.headers.get('content-type') ?? '' };
}

const stateIs = (id: string, ...states: string[]) =>
  waitFor(`message ${id} to be ${states.join('/')}`, async () => {
    const m = (await api('GET', `/api/v1/messages/${id}`)).json;
    return states.includes(m.state) ? m : undefined;
  }, 60_000);

async function send(subject: string, serverId: string) {
  const r = await api('POST', '/api/v1/messages', { from: MAILBOX, to: [OTHER], subject, text: `Body of ${subject}`, mailServerId: serverId });
  assert.equal(r.status, 202, JSON.stringify(r.json));
  return r.json as { id: string; messageId: string };
}

async function inboxSubjects(login: string): Promise<string[]> {
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: 'http://127.0.0.1:9/token-helper', login });
  const c = new ImapFlow({ host: '127.0.0.1', port: peers.dovecot.imapsPort, secure: true, auth: { user: login, accessToken: t.access_token }, tls: { ca: peers.ca.caPem, servername: 'localhost' }, logger: false });
  await c.connect();
  try {
    await c.mailboxOpen('INBOX');
    const subjects: string[] = [];
    for await (const m of c.fetch('1:*', { envelope: true })) subjects.push(m.envelope?.subject ?? '');
    return subjects;
  } catch {
    return [];
  } finally {
    await c.logout().catch(() => undefined);
  }
}

test('a generated certificate, uploaded at the peer, signs the code redemption and the refreshes; mail goes out over SMTP and comes back over IMAP', T, async () => {
  const s = await createServer('Certificate sender');
  const generated = await api('POST', `/api/v1/mail-servers/${s.id}/certificate`, {});
  assert.equal(generated.status, 200, JSON.stringify(generated.json));
  const cert = generated.json.certificate;
  assert.equal(generated.json.clientCredential, 'certificate');
  assert.match(cert.thumbprint, /^[0-9A-F]{40}$/);
  assert.equal(cert.source, 'generated');
  assert.equal(cert.pending, null);
  assert.ok(!JSON.stringify(generated.json).includes('PRIVATE KEY'));
  assert.equal((await api('POST', `/api/v1/mail-servers/${s.id}/certificate`, {})).json.error.code, 'MR_CERTIFICATE_EXISTS');

  const cer = await download(s.id, 'cer');
  assert.match(cer.disposition, new RegExp(`attachment; filename="Certificate-sender-${cert.thumbprint}\\.cer"`));
  assert.equal(new X509Certificate(cer.body).fingerprint.replace(/:/g, ''), cert.thumbprint);
  const pem = await download(s.id, 'pem');
  assert.match(pem.body.toString(), /^-----BEGIN CERTIFICATE-----/);
  assert.ok(!pem.body.toString().includes('PRIVATE'));

  // Not uploaded yet: the code redemption is refused with AADSTS700027, naming the thumbprint to upload.
  await connect(s.id);
  const refused = (await api('GET', `/api/v1/mail-servers/${s.id}`)).json;
  assert.equal(refused.tokenStatus, 'not_connected');
  assert.equal(refused.lastError.code, 'AADSTS700027', JSON.stringify(refused.lastError));
  assert.match(refused.lastError.message, new RegExp(cert.thumbprint));
  assert.match(refused.lastError.fix, /Upload certificate/);

  // The admin uploads the .cer in Azure; connecting now works without any client secret.
  assert.equal(peers.authServer.registerCertificate(CLIENT_ID, cer.body), cert.thumbprint);
  const before = peers.authServer.acceptedAssertions().length;
  await connect(s.id);
  const connected = (await api('GET', `/api/v1/mail-servers/${s.id}`)).json;
  assert.equal(connected.tokenStatus, 'valid', JSON.stringify(connected.lastError));
  assert.equal(connected.clientSecretSet, false);
  const used = peers.authServer.acceptedAssertions().slice(before);
  assert.deepEqual(used.map((a) => [a.thumbprint, a.alg]), [[cert.thumbprint, 'PS256']]);

  const tested = await api('POST', `/api/v1/mail-servers/${s.id}/test`);
  assert.equal(tested.json.ok, true, JSON.stringify(tested.json));

  const m = await send('Signed by a certificate', s.id);
  const done = await stateIs(m.id, 'sent', 'failed', 'held');
  assert.equal(done.state, 'sent', JSON.stringify(done.lastError));
  await waitFor('the message in the IMAP inbox', async () => ((await inboxSubjects(OTHER)).includes('Signed by a certificate') ? true : undefined));
});

test('a delegated server switched from its client secret to a certificate keeps its grant', T, async () => {
  const s = await createServer('Switched', { clientCredential: 'secret', clientSecret: CLIENT_SECRET });
  await connect(s.id);
  const withSecret = (await api('GET', `/api/v1/mail-servers/${s.id}`)).json;
  assert.equal(withSecret.tokenStatus, 'valid', JSON.stringify(withSecret.lastError));
  const connectedAt = withSecret.checklist.find((i: { key: string }) => i.key === 'consent').state;
  assert.equal(connectedAt, 'done');

  const generated = (await api('POST', `/api/v1/mail-servers/${s.id}/certificate`, {})).json;
  peers.authServer.registerCertificate(CLIENT_ID, (await download(s.id, 'cer')).body);
  const switched = await api('PATCH', `/api/v1/mail-servers/${s.id}`, { clientCredential: 'certificate' });
  assert.equal(switched.status, 200, JSON.stringify(switched.json));
  assert.equal(switched.json.tokenStatus, 'valid', 'the grant is kept');
  assert.equal(switched.json.connectedAccount, MAILBOX);

  // The secret stops working at the peer: only the certificate can refresh from now on.
  peers.authServer.expireClientSecret(CLIENT_ID);
  try {
    const before = peers.authServer.acceptedAssertions().length;
    const tested = await api('POST', `/api/v1/mail-servers/${s.id}/test`);
    assert.equal(tested.json.ok, true, JSON.stringify(tested.json));
    const after = peers.authServer.acceptedAssertions().slice(before);
    assert.ok(after.some((a) => a.thumbprint === generated.certificate.thumbprint), 'the refresh was signed with the certificate');
    const m = await send('After the switch', s.id);
    assert.equal((await stateIs(m.id, 'sent', 'failed', 'held')).state, 'sent');
  } finally {
    peers.authServer.upsertClient({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [`${mailroom.baseUrl}/oauth2/outlook/callback`, 'http://127.0.0.1:9/token-helper'] });
  }
});

test('a certificate roll with a burst of mail in flight: nothing fails or is lost; the new one is used once proven, the old one dropped', T, async () => {
  const s = await createServer('Rolled');
  const first = (await api('POST', `/api/v1/mail-servers/${s.id}/certificate`, {})).json.certificate;
  peers.authServer.registerCertificate(CLIENT_ID, (await download(s.id, 'cer')).body);
  await connect(s.id);
  assert.equal((await api('GET', `/api/v1/mail-servers/${s.id}`)).json.tokenStatus, 'valid');

  const rolled = await api('POST', `/api/v1/mail-servers/${s.id}/certificate/roll`, {});
  assert.equal(rolled.status, 200, JSON.stringify(rolled.json));
  const next = rolled.json.certificate.pending;
  assert.equal(rolled.json.certificate.thumbprint, first.thumbprint, 'the current one stays in use');

  // Refreshes meanwhile (sends, and the probe every second) try the new certificate first, are refused
  // (not uploaded yet) and go on with the current one, unseen by the mail.
  const burst = await Promise.all(Array.from({ length: 8 }, (_, i) => send(`Roll burst A${i}`, s.id)));
  await stateIs(burst[1]!.id, 'sent', 'failed', 'held');
  // The admin uploads the new certificate while mail is still going out.
  peers.authServer.registerCertificate(CLIENT_ID, (await download(s.id, 'cer', 'pending')).body);
  burst.push(...(await Promise.all(Array.from({ length: 8 }, (_, i) => send(`Roll burst B${i}`, s.id)))));
  for (const m of burst) {
    const done = await stateIs(m.id, 'sent', 'failed', 'held');
    assert.equal(done.state, 'sent', JSON.stringify(done.lastError));
    assert.equal(done.attempts, 1, 'no attempt failed');
  }

  const promoted = await waitFor('the new certificate to be in use', async () => {
    const v = (await api('GET', `/api/v1/mail-servers/${s.id}`)).json;
    return v.certificate.thumbprint === next.thumbprint ? v : undefined;
  });
  assert.equal(promoted.certificate.pending, null);
  assert.equal(promoted.lastError, null, 'a notice about a connection that works, not an error');
  assert.equal(promoted.notice.code, 'CERTIFICATE_ROLLED');
  assert.match(promoted.notice.fix, new RegExp(`Delete the old certificate.*${first.thumbprint}`));
  const audit = (await api('GET', `/api/v1/audit-events?targetId=${s.id}&limit=100`)).json.items as Array<{ action: string; details: Record<string, unknown> | null }>;
  const event = audit.find((e) => e.action === 'certificate.promoted');
  assert.ok(event, audit.map((e) => e.action).join());
  assert.equal(event.details?.droppedThumbprint, first.thumbprint);

  // The old certificate is no longer used: deleted in Azure, mail still goes.
  peers.authServer.removeCertificate(CLIENT_ID, first.thumbprint);
  const mark = peers.authServer.acceptedAssertions().length;
  const after = await send('After the roll', s.id);
  assert.equal((await stateIs(after.id, 'sent', 'failed', 'held')).state, 'sent');
  assert.ok(peers.authServer.acceptedAssertions().slice(mark).every((a) => a.thumbprint === next.thumbprint));
  // The sends and refreshes since did not take the notice down; the admin does, once it is done in Azure.
  assert.equal((await api('GET', `/api/v1/mail-servers/${s.id}`)).json.notice?.code, 'CERTIFICATE_ROLLED');
  const dismissed = await api('POST', `/api/v1/mail-servers/${s.id}/certificate/dismiss-rolled`, {});
  assert.equal(dismissed.status, 200, JSON.stringify(dismissed.json));
  assert.equal(dismissed.json.notice, null);
  assert.equal(dismissed.json.lastError, null);
  const actions = ((await api('GET', `/api/v1/audit-events?targetId=${s.id}&limit=100`)).json.items as Array<{ action: string }>).map((e) => e.action);
  assert.ok(actions.includes('certificate.rolled_notice_dismissed'), actions.join());

  // Nothing lost, nothing twice.
  const subjects = await waitFor('every message in the inbox', async () => {
    const got = await inboxSubjects(OTHER);
    return burst.every((_, i) => got.includes(`Roll burst ${i < 8 ? `A${i}` : `B${i - 8}`}`)) ? got : undefined;
  });
  for (let i = 0; i < 8; i++) {
    assert.equal(subjects.filter((x) => x === `Roll burst A${i}`).length, 1);
    assert.equal(subjects.filter((x) => x === `Roll burst B${i}`).length, 1);
  }
});

test('the peer\'s answers are explained: assertion outside its time window (AADSTS700024) and an expired certificate', T, async () => {
  const s = await createServer('Clock');
  (await api('POST', `/api/v1/mail-servers/${s.id}/certificate`, {})).json.certificate;
  peers.authServer.registerCertificate(CLIENT_ID, (await download(s.id, 'cer')).body);
  await connect(s.id);
  try {
    // Microsoft's clock is an hour ahead of this machine's (or this machine's is behind).
    peers.authServer.setAssertionClockOffset(3600);
    const skewed = (await api('POST', `/api/v1/mail-servers/${s.id}/test`)).json;
    assert.equal(skewed.ok, false);
    assert.equal(skewed.evidence.diagnosis, 'AADSTS700024', JSON.stringify(skewed));
    assert.match(skewed.fix, /clock/);
    // Three years on, the two-year certificate has expired: Microsoft says so in AADSTS700027's Reason.
    peers.authServer.setAssertionClockOffset(3 * 365 * 86400);
    const expired = (await api('POST', `/api/v1/mail-servers/${s.id}/test`)).json;
    assert.equal(expired.evidence.diagnosis, 'OAUTH_CERTIFICATE_EXPIRED', JSON.stringify(expired));
    assert.match(expired.message, /has expired/);
    assert.match(expired.fix, /Roll certificate/);
  } finally {
    peers.authServer.setAssertionClockOffset(0);
  }
});

test('an incoming server with a certificate fetches over IMAP', T, async () => {
  const r = await api('POST', '/api/v1/incoming-servers', {
    name: 'Certificate inbox',
    username: OTHER,
    clientId: CLIENT_ID,
    clientCredential: 'certificate',
    imapHost: '127.0.0.1',
    imapPort: peers.dovecot.imapsPort,
    imapSecurity: 'tls',
    afterFetch: 'leave',
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  const id = r.json.id as string;
  const base = '/api/v1/incoming-servers';
  const generated = await api('POST', `${base}/${id}/certificate`, {});
  assert.equal(generated.status, 200, JSON.stringify(generated.json));
  peers.authServer.registerCertificate(CLIENT_ID, (await download(id, 'cer', undefined, base)).body);
  await peers.dovecot.deliver(OTHER, Buffer.from(`From: a@example.test\r\nTo: ${OTHER}\r\nSubject: For the certificate inbox\r\nMessage-ID: <cert-inbox@example.test>\r\n\r\nHello\r\n`));
  await connect(id, base, OTHER);
  assert.equal((await api('GET', `${base}/${id}`)).json.tokenStatus, 'valid');
  // The new inbox is active and fetched at once after Connect: Fetch Now may find that fetch still running.
  const fetchNow = await api('POST', `${base}/${id}/fetch`);
  assert.ok(fetchNow.status < 300 || fetchNow.json?.error?.code === 'MR_CONFLICT', JSON.stringify(fetchNow.json));
  const fetched = await waitFor('the fetch to import mail', async () => {
    const v = (await api('GET', `${base}/${id}`)).json;
    return !v.fetch.running && v.importedCount >= 1 ? v : undefined;
  }, 60_000);
  assert.ok(fetched.importedCount >= 1, JSON.stringify(fetched.fetch));
});
