import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { simpleParser } from 'mailparser';
import nodemailer from 'nodemailer';
import MailComposer from 'nodemailer/lib/mail-composer';
import { asAdminInBrowser } from '../helpers/browser.ts';
import { storeTokens } from '../helpers/connect-directly.ts';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { freePort, type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { plainAuth, smtpDialogue } from '../helpers/smtp-dialogue.ts';
import { getToken } from '../peers/get-token.ts';
import { type Peers, type SinkMessage, startPeers } from '../peers/index.ts';
import { startTcpProxy, type TcpProxy } from '../peers/tcp-proxy.ts';

// Applications that only speak SMTP, as real clients nobody here wrote (nodemailer, Debian's swaks):
// they log in to Mailroom's submission listener with an API key, and the message goes on through the
// Outlook server's OAuth connection: pooled SMTP XOAUTH2 → Dovecot submission (tokens checked with
// the authorization server) → relay → the sink. The listener's certificate comes from the test CA.
const CLIENT_ID = '2a9c4e6f-8b1d-4f3a-9c5e-7d0b1a2c3e4f';
const CLIENT_SECRET = 'Sm7Q~submission.Test-Secret_Value~01234';
const MAILBOX = 'erp@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const KEY_NAME = 'Legacy ERP';
const T = { timeout: 120_000 };
const run = promisify(execFile);

let peers: Peers;
let proxy: TcpProxy;
let mailroom: MailroomProcess;
let env: Record<string, string>;
let adminKey: string;
let sendKey: string;
let submissionPort: number;
let submissionsPort: number;

const api = apiClient(() => mailroom.baseUrl, () => adminKey);

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  proxy = await startTcpProxy(peers.dovecot.submissionPort);
  submissionPort = await freePort();
  submissionsPort = await freePort();
  env = {
    MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost,
    NODE_EXTRA_CA_CERTS: peers.caFile,
    OUTBOX_RETRY_BASE_SECONDS: '0.3',
    OUTBOX_MAX_ATTEMPTS: '50',
    // A message the kill caught mid-send is taken over soon after the restart.
    OUTBOX_LEASE_SECONDS: '3',
    MAX_MESSAGE_MB: '1',
    SMTP_SUBMISSION_PORT: String(submissionPort),
    SMTP_SUBMISSIONS_PORT: String(submissionsPort),
    SMTP_TLS_CERT: peers.ca.certFile,
    SMTP_TLS_KEY: peers.ca.keyFile,
  };
  mailroom = await startMailroomProcess(env);
  adminKey = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'admin', '--scope', 'admin'))![1]!;
  sendKey = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', KEY_NAME, '--scope', 'send'))![1]!;
  const s = await api('POST', '/api/v1/mail-servers', {
    name: 'Outlook — ERP',
    username: MAILBOX,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    smtpHost: '127.0.0.1',
    smtpPort: proxy.port,
    smtpSecurity: 'starttls',
    fromFilter: 'example.test',
  });
  assert.equal(s.status, 201, JSON.stringify(s.json));
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX });
  storeTokens(mailroom.dataDir, s.json.id, MAILBOX, t, peers.authServer.tenantId);
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-submission.log', mailroom?.output() ?? '');
  await mailroom?.stop();
  await proxy?.close();
  await peers?.stop();
});

/** nodemailer as an application would configure it: STARTTLS required, the test CA trusted, AUTH PLAIN. */
const client = (pass = sendKey, user = KEY_NAME, port = submissionPort) =>
  nodemailer.createTransport({ host: '127.0.0.1', port, secure: port === submissionsPort, requireTLS: true, tls: { ca: peers.ca.caPem }, auth: { user, pass }, logger: false });

const queuedId = (response: string) => {
  const m = /^250 2\.6\.0 Queued as ([0-9a-f-]{36}) /.exec(response);
  assert.ok(m, `a 250 naming the message: ${response}`);
  return m[1]!;
};

const stateIs = (id: string, ...states: string[]) =>
  waitFor(`message ${id} to be ${states.join('/')}`, async () => {
    const m = (await api('GET', `/api/v1/messages/${id}`)).json;
    return states.includes(m.state) ? m : undefined;
  }, 60_000);

const atSink = (marker: string, timeoutMs = 30_000) => peers.sink.waitForMessage((m) => m.raw.includes(marker), timeoutMs);

/**
 * What Dovecot passes on is the submitted message with trace fields (Received, Return-Path) put on
 * top; everything after them must be the stored bytes.
 */
function afterTrace(delivered: Buffer, expected: Buffer): void {
  assert.ok(delivered.length >= expected.length, `delivered ${delivered.length} bytes, expected at least ${expected.length}`);
  const prefix = delivered.subarray(0, delivered.length - expected.length).toString('latin1');
  assert.ok(delivered.subarray(delivered.length - expected.length).equals(expected), 'the delivered message ends with the submitted bytes, unchanged');
  for (const line of prefix.split('\r\n').filter(Boolean)) assert.match(line, /^(Received:|Return-Path:|[ \t])/, `only trace fields were added: ${line}`);
}

test('nodemailer submits with STARTTLS and AUTH; the message reaches Dovecot byte for byte, Bcc removed, attachments intact', T, async () => {
  const marker = randomUUID();
  const pdf = randomBytes(150_000);
  const csv = Buffer.from('sku;qty\r\nA-1;3\r\n');
  const composed = new MailComposer({
    from: `Billing <${MAILBOX}>`,
    to: 'Customer <customer@remote.example>',
    cc: 'accounts@remote.example',
    bcc: 'auditor@remote.example',
    subject: `Invoice ${marker} — Grüße`,
    text: 'Please find the invoice attached.\r\n.\r\nA line with a lone dot above (dot-stuffing).',
    html: '<p>Please find the invoice attached.</p>',
    messageId: `<${marker}@example.test>`,
    headers: { 'X-ERP-Document': `INV/${marker}`, 'DKIM-Signature': 'v=1; a=rsa-sha256; d=example.test; s=s1; h=from:to:subject; bh=abc=; b=def=' },
    attachments: [
      { filename: 'invoice.pdf', contentType: 'application/pdf', content: pdf },
      { filename: 'lines.csv', contentType: 'text/csv', content: csv },
    ],
  }).compile();
  // As a desktop client or an ERP's mail module would: the Bcc header is in the message it submits.
  composed.keepBcc = true;
  const raw = await composed.build();
  assert.match(raw.toString(), /^Bcc: auditor@remote\.example\r$/m, 'the client put a Bcc header in');
  const envelope = { from: MAILBOX, to: ['customer@remote.example', 'accounts@remote.example', 'auditor@remote.example'] };
  const transport = client();
  let info;
  try {
    info = await transport.sendMail({ envelope, raw });
  } finally {
    transport.close();
  }
  const id = queuedId(info.response);

  const view = (await api('GET', `/api/v1/messages/${id}`)).json;
  assert.deepEqual(view.receivedVia, { protocol: 'smtp', clientAddress: '127.0.0.1', apiKeyName: KEY_NAME });
  assert.equal(view.subject, `Invoice ${marker} — Grüße`);
  assert.equal(view.from, `Billing <${MAILBOX}>`);
  assert.deepEqual(view.to, ['Customer <customer@remote.example>']);
  assert.deepEqual(view.cc, ['accounts@remote.example']);
  assert.deepEqual(view.bcc, ['auditor@remote.example'], 'the blind copy shows as Bcc, from the envelope');
  assert.equal(view.messageId, `<${marker}@example.test>`);
  assert.deepEqual(view.attachments.map((a: { filename: string; size: number }) => [a.filename, a.size]), [['invoice.pdf', pdf.length], ['lines.csv', csv.length]]);
  const found = (await api('GET', `/api/v1/messages?q=${marker}`)).json;
  assert.deepEqual(found.items.map((m: { id: string }) => m.id), [id], 'the subject is searchable');

  const done = await stateIs(id, 'sent', 'failed', 'held');
  assert.equal(done.state, 'sent', JSON.stringify(done.lastError));
  const got = await atSink(marker);
  assert.equal(got.from, MAILBOX);
  assert.deepEqual([...got.to].sort(), [...envelope.to].sort(), 'the envelope recipients, the blind copy included');
  const withoutBcc = Buffer.from(raw.toString('latin1').replace(/^Bcc: auditor@remote\.example\r\n/m, ''), 'latin1');
  afterTrace(got.raw, withoutBcc);
  assert.doesNotMatch(got.raw.toString(), /auditor@remote\.example/, 'nothing in the delivered message names the blind copy');
  const parsed = await simpleParser(got.raw);
  assert.deepEqual(parsed.attachments.map((a) => [a.filename, createHash('sha256').update(a.content).digest('hex')]), [
    ['invoice.pdf', createHash('sha256').update(pdf).digest('hex')],
    ['lines.csv', createHash('sha256').update(csv).digest('hex')],
  ]);
  assert.equal(peers.sink.messages.filter((m) => m.raw.includes(marker)).length, 1, 'delivered once');
});

test('swaks submits with STARTTLS and AUTH LOGIN, and over implicit TLS; both are delivered with their attachment', T, async () => {
  const file = join(peers.dir, 'report.bin');
  const content = randomBytes(20_000);
  await writeFile(file, content);
  for (const [mode, args] of [
    ['STARTTLS', ['--port', String(submissionPort), '--tls']],
    ['implicit TLS', ['--port', String(submissionsPort), '--tls-on-connect']],
  ] as const) {
    const marker = randomUUID();
    const { stdout } = await run('swaks', [
      '--server', '127.0.0.1', ...args, '--tls-verify', '--tls-ca-path', peers.caFile,
      '--auth', 'LOGIN', '--auth-user', KEY_NAME, '--auth-password', sendKey,
      '--from', MAILBOX, '--to', 'swaks@remote.example',
      '--header', `Subject: swaks ${mode} ${marker}`, '--body', 'Sent by swaks.',
      '--attach-type', 'application/octet-stream', '--attach-name', 'report.bin', '--attach', `@${file}`,
    ]).catch((e: { stdout?: string; stderr?: string }) => {
      throw new Error(`swaks (${mode}) failed:\n${e.stdout}\n${e.stderr}`);
    });
    assert.match(stdout, /<~ {2}250 2\.6\.0 Queued as /);
    const got = await atSink(marker);
    assert.deepEqual(got.to, ['swaks@remote.example']);
    const parsed = await simpleParser(got.raw);
    assert.equal(parsed.subject, `swaks ${mode} ${marker}`);
    assert.ok(parsed.attachments[0]?.content.equals(content), `${mode}: the attachment arrives intact`);
    const listed = (await api('GET', `/api/v1/messages?q=${marker}`)).json.items[0];
    assert.equal(listed.receivedVia.apiKeyName, KEY_NAME);
    assert.equal((await stateIs(listed.id, 'sent', 'failed', 'held')).state, 'sent');
  }
});

test('AUTH before STARTTLS is refused with 538, and nothing can be sent without AUTH', T, async () => {
  const s = await smtpDialogue(submissionPort);
  try {
    assert.match(s.greeting, /^220 /);
    const ehlo = await s.command('EHLO client.example');
    assert.match(ehlo, /STARTTLS/);
    assert.match(await s.command(`AUTH PLAIN ${plainAuth(KEY_NAME, sendKey)}`), /^538 .*STARTTLS/);
    assert.match(await s.command(`MAIL FROM:<${MAILBOX}>`), /^530 /, 'nothing can be sent without logging in');
  } finally {
    s.close();
  }
});

test('a wrong key is refused with 535, then that key is rate-limited from this address with 454 while the right key still works, under any name', T, async () => {
  const wrong = `mr_${randomBytes(32).toString('base64url')}`;
  const readKey = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'reader', '--scope', 'read'))![1]!;
  const authError = async (pass: string, user: string) => {
    const transport = client(pass, user);
    try {
      await transport.verify();
      return undefined;
    } catch (e) {
      return e as { responseCode?: number; response?: string };
    } finally {
      transport.close();
    }
  };
  const first = await authError(wrong, 'guesser');
  assert.equal(first?.responseCode, 535);
  assert.match(first?.response ?? '', /API key with scope send/);
  const scoped = await authError(readKey, 'guesser');
  assert.equal(scoped?.responseCode, 535);
  assert.match(scoped?.response ?? '', /scope outbox:read, inbound:read; sending needs a key with scope send/);
  for (let i = 0; i < 4; i++) assert.equal((await authError(wrong, `guesser ${i}`))?.responseCode, 535);
  // Five failures of this key from this address, whatever the username: the sixth is refused before it is checked.
  const limited = await authError(wrong, 'someone else');
  assert.equal(limited?.responseCode, 454);
  assert.match(limited?.response ?? '', /Too many failed logins with this API key from 127\.0\.0\.1; try again in \d+ minutes?/);
  assert.equal(await authError(sendKey, 'guesser'), undefined, 'the right key is not locked out, even under the name the wrong one used');
  assert.equal(await authError(sendKey, KEY_NAME), undefined);
  for (const secret of [sendKey, wrong, readKey]) assert.ok(!mailroom.output().includes(secret), 'no key is ever logged');
});

test('a sender no mail server may send as is refused at MAIL FROM, naming the FROM Filtering to add', T, async () => {
  const s = await smtpDialogue(submissionsPort, { implicitTls: { ca: peers.ca.caPem } });
  try {
    await s.command('EHLO client.example');
    assert.match(await s.command(`AUTH PLAIN ${plainAuth(KEY_NAME, sendKey)}`), /^235 /);
    const refused = await s.command('MAIL FROM:<billing@other.example>');
    assert.match(refused, /^550 5\.7\.1 No mail server may send as billing@other\.example/);
    assert.match(refused, /set the FROM Filtering of one to billing@other\.example or other\.example/);
    assert.match(await s.command('MAIL FROM:<not an address>'), /^5\d\d /);
    assert.match(await s.command(`MAIL FROM:<${MAILBOX}>`), /^250 /);
    assert.match(await s.command('RCPT TO:<bad..dots@remote.example>'), /^5\d\d /);
    assert.match(await s.command('RCPT TO:<someone@localhost>'), /^553 5\.1\.3 The recipient .*not a valid email address/);
    assert.match(await s.command('RSET'), /^250 /);
  } finally {
    s.close();
  }
});

test('a mailbox without FROM Filtering is refused at MAIL FROM for any sender but its own Username, naming both', T, async () => {
  const sales = await api('POST', '/api/v1/mail-servers', { name: 'Sales mailbox', username: 'sales@contoso.test', clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, priority: 50 });
  assert.equal(sales.status, 201, JSON.stringify(sales.json));
  const s = await smtpDialogue(submissionsPort, { implicitTls: { ca: peers.ca.caPem } });
  try {
    await s.command('EHLO client.example');
    assert.match(await s.command(`AUTH PLAIN ${plainAuth(KEY_NAME, sendKey)}`), /^235 /);
    const refused = await s.command('MAIL FROM:<billing@contoso.test>');
    assert.match(refused, /^550 5\.7\.1 The mail server "Sales mailbox" signs in as the mailbox sales@contoso\.test and has no FROM Filtering: it sends only as sales@contoso\.test, not as billing@contoso\.test/);
    assert.match(refused, /FROM Filtering of one to billing@contoso\.test or contoso\.test/);
    assert.match(await s.command('MAIL FROM:<sales@contoso.test>'), /^250 /);
    assert.match(await s.command('RSET'), /^250 /);
  } finally {
    s.close();
    assert.equal((await api('DELETE', `/api/v1/mail-servers/${sales.json.id}`)).status, 204);
  }
});

test('SIZE announces MAX_MESSAGE_MB; an oversize message is refused with 552 and nothing is queued', T, async () => {
  const s = await smtpDialogue(submissionsPort, { implicitTls: { ca: peers.ca.caPem } });
  try {
    assert.match(await s.command('EHLO client.example'), /SIZE 1048576/);
    await s.command(`AUTH PLAIN ${plainAuth(KEY_NAME, sendKey)}`);
    assert.match(await s.command(`MAIL FROM:<${MAILBOX}> SIZE=2000000`), /^552 /, 'a declared size over the limit is refused at once');
    // Without SIZE= the limit is enforced on the data itself.
    assert.match(await s.command(`MAIL FROM:<${MAILBOX}>`), /^250 /);
    assert.match(await s.command('RCPT TO:<big@remote.example>'), /^250 /);
    assert.match(await s.command('DATA'), /^354 /);
    s.write(`From: ${MAILBOX}\r\nTo: big@remote.example\r\nSubject: too big\r\n\r\n${'x'.repeat(998)}\r\n`.repeat(1));
    for (let i = 0; i < 1500; i++) s.write(`${'y'.repeat(998)}\r\n`);
    s.write('.\r\n');
    const r = await s.reply();
    assert.match(r, /^552 5\.3\.4 The message is 1\.4 MB; the limit is 1\.0 MB/);
  } finally {
    s.close();
  }
  const transport = client();
  try {
    await assert.rejects(transport.sendMail({ from: MAILBOX, to: 'big@remote.example', subject: 'too big', text: 'z'.repeat(1_200_000) }), (e: { responseCode?: number }) => e.responseCode === 552);
  } finally {
    transport.close();
  }
  assert.equal((await api('GET', '/api/v1/messages?q=too%20big')).json.items.length, 0, 'nothing was queued');
});

test('50 SMTP clients at once: every one gets its 250 and every message is delivered', T, async () => {
  const tag = randomUUID();
  const ids = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const transport = client();
      try {
        const info = await transport.sendMail({ from: MAILBOX, to: 'many@remote.example', subject: `Parallel ${i} ${tag}`, text: `Message ${i}`, headers: { 'X-Run': tag } });
        return queuedId(info.response);
      } finally {
        transport.close();
      }
    }),
  );
  assert.equal(new Set(ids).size, 50);
  await waitFor('50 messages at the sink', async () => (peers.sink.messages.filter((m) => m.raw.includes(`X-Run: ${tag}`)).length >= 50 ? true : undefined), 60_000);
  const subjects = new Set(peers.sink.messages.filter((m: SinkMessage) => m.raw.includes(`X-Run: ${tag}`)).map((m) => /Subject: (Parallel \d+)/.exec(m.raw.toString())?.[1]));
  assert.equal(subjects.size, 50, 'each one once');
});

test('kill -9 after the 250 and before delivery loses nothing: after a restart every message is delivered', T, async () => {
  await proxy.down(); // the mail server is unreachable: accepted messages can only wait in the outbox
  const tag = randomUUID();
  const ids: string[] = [];
  const transport = client();
  try {
    for (let i = 0; i < 10; i++) {
      const info = await transport.sendMail({ from: MAILBOX, to: 'crash@remote.example', subject: `Crash ${i} ${tag}`, text: 'x', headers: { 'X-Run': tag } });
      ids.push(queuedId(info.response));
    }
  } finally {
    transport.close();
  }
  await mailroom.crash();
  assert.equal(peers.sink.messages.filter((m) => m.raw.includes(`X-Run: ${tag}`)).length, 0, 'none was delivered before the kill');
  await proxy.up();
  mailroom = await startMailroomProcess(env, Number(new URL(mailroom.baseUrl).port), mailroom.dataDir);
  for (const id of ids) assert.equal((await stateIs(id, 'sent', 'failed')).state, 'sent');
  await waitFor('10 messages at the sink', async () => (peers.sink.messages.filter((m) => m.raw.includes(`X-Run: ${tag}`)).length >= 10 ? true : undefined));
  // The restarted process listens for SMTP again.
  const again = client();
  try {
    queuedId((await again.sendMail({ from: MAILBOX, to: 'after@remote.example', subject: 'after restart', text: 'x' })).response);
  } finally {
    again.close();
  }
});

test('Settings > Technical > Emails says which application handed a message over SMTP, in the list and the detail', T, async () => {
  const marker = randomUUID();
  const transport = client();
  try {
    queuedId((await transport.sendMail({ from: MAILBOX, to: 'ui@remote.example', subject: `Shown in the UI ${marker}`, text: 'x' })).response);
  } finally {
    transport.close();
  }
  const admin = { email: 'smtp-ui@example.test', password: 'smtp ui admin passphrase' };
  await asAdminInBrowser(mailroom, admin, async (page) => {
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('link', { name: 'Emails', exact: true }).click();
    const row = page.getByRole('row').filter({ hasText: marker });
    await row.getByText(`received over SMTP from 127.0.0.1 as ${KEY_NAME}`).waitFor();
    await row.getByRole('link', { name: `Shown in the UI ${marker}` }).click();
    await page.getByRole('heading', { name: `Shown in the UI ${marker}` }).waitFor();
    const source = page.locator('dt', { hasText: 'Source' }).locator('xpath=following-sibling::dd');
    assert.equal((await source.innerText()).trim(), `Received over SMTP from 127.0.0.1 as ${KEY_NAME}`);
  });
});
