import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { after, before, test } from 'node:test';
import nodemailer from 'nodemailer';
import { apiClient } from '../helpers/e2e.ts';
import { manyPartsMessage } from '../helpers/hostile-mime.ts';
import { freePort, type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { assertResponsive, rssMb, watchRss } from '../helpers/process-health.ts';
import { plainAuth, type SmtpDialogue, smtpDialogue } from '../helpers/smtp-dialogue.ts';

// The audit's reproductions against a real Mailroom process and its SMTP listener (plain port,
// AUTH allowed on loopback): From variants that were delivered, connection floods, bare CR and NUL,
// a 1,001-part message, and AUTH failures under another client's username from other addresses.
// Other clients are other loopback addresses (Linux routes all of 127.0.0.0/8 to lo). The mail
// server is never reached: a message the listener accepts is only queued.
const MAILBOX = 'billing@example.com';
const SCANNER = 'Warehouse scanner';
const PER_ADDRESS = 50;
const MAX_CLIENTS = 150;
const T = { timeout: 120_000 };

let mailroom: MailroomProcess;
let adminKey: string;
let scannerKey: string;
let port: number;

const api = apiClient(() => mailroom.baseUrl, () => adminKey);

before(async () => {
  port = await freePort();
  mailroom = await startMailroomProcess({
    SMTP_SUBMISSION_PORT: String(port),
    SMTP_ALLOW_INSECURE_AUTH_ON_LOOPBACK: 'true',
    SMTP_MAX_CONNECTIONS_PER_ADDRESS: String(PER_ADDRESS),
    SMTP_MAX_CLIENTS: String(MAX_CLIENTS),
    LOG_LEVEL: 'info',
  });
  adminKey = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'admin', '--scope', 'admin'))![1]!;
  scannerKey = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', SCANNER, '--scope', 'send'))![1]!;
  const s = await api('POST', '/api/v1/mail-servers', {
    name: 'Billing relay',
    username: MAILBOX,
    clientId: '2a9c4e6f-8b1d-4f3a-9c5e-7d0b1a2c3e4f',
    clientSecret: 'Sm7Q~limits.Test-Secret_Value~01234',
    smtpHost: '127.0.0.1',
    smtpPort: await freePort(),
    smtpSecurity: 'starttls',
    fromFilter: 'example.com',
  });
  assert.equal(s.status, 201, JSON.stringify(s.json));
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-smtp-limits.log', mailroom?.output() ?? '');
  await mailroom?.stop();
});

const openFds = () => readdirSync(`/proc/${mailroom.pid}/fd`).length;

/** A logged-in session from `localAddress`, at MAIL FROM <billing@example.com>, ready for RCPT. */
async function loggedIn(localAddress = '127.0.0.1'): Promise<SmtpDialogue> {
  const s = await smtpDialogue(port, { localAddress });
  assert.match(s.greeting, /^220 /);
  await s.command('EHLO client.example');
  assert.match(await s.command(`AUTH PLAIN ${plainAuth(SCANNER, scannerKey)}`), /^235 /);
  return s;
}

/** Submits `message` (CRLF lines, dot-stuffing not needed) with MAIL FROM <billing@example.com>; the reply to the final dot. */
async function submit(message: Buffer | string, localAddress = '127.0.0.1'): Promise<string> {
  const s = await loggedIn(localAddress);
  try {
    assert.match(await s.command(`MAIL FROM:<${MAILBOX}>`), /^250 /);
    assert.match(await s.command('RCPT TO:<customer@remote.example>'), /^250 /);
    assert.match(await s.command('DATA'), /^354 /);
    s.write(message);
    s.write('\r\n.\r\n');
    return await s.reply();
  } finally {
    s.close();
  }
}

const withHead = (marker: string, ...head: string[]) => [...head, 'To: customer@remote.example', `Subject: ${marker}`, '', 'Body.'].join('\r\n');

/** The next good message is still accepted and queued. */
async function nextGoodIsQueued(): Promise<void> {
  const marker = randomUUID();
  assert.match(await submit(withHead(marker, `From: Billing <${MAILBOX}>`)), /^250 2\.6\.0 Queued as /);
  assert.equal((await api('GET', `/api/v1/messages?q=${marker}`)).json.items.length, 1);
}

test('every mailbox of From and Sender is checked against the chosen server: display names, lists, groups, two From fields, encoded words, comments; one that does not parse is refused', T, async () => {
  const rss = watchRss(mailroom.pid);
  const cases: Array<[string, string[], RegExp]> = [
    ['a display name', ['From: CEO <ceo@victim.test>'], /^550 5\.7\.1 No mail server may send as ceo@victim\.test.*set the FROM Filtering of one to ceo@victim\.test or victim\.test/],
    ['a list', [`From: ${MAILBOX}, ceo@victim.test`], /^550 5\.7\.1 The From field names ceo@victim\.test, and the mail server "Billing relay" chosen for billing@example\.com may send only as example\.com\. Remove ceo@victim\.test from the From field/],
    ['a group', [`From: Board: ${MAILBOX}, "The CEO" <ceo@victim.test>;`], /^550 5\.7\.1 The From field names ceo@victim\.test/],
    ['a Sender', [`From: ${MAILBOX}`, 'Sender: CEO <ceo@victim.test>'], /^550 5\.7\.1 The Sender field names ceo@victim\.test/],
    ['two From fields', [`From: ${MAILBOX}`, 'From: ceo@victim.test'], /^554 5\.6\.0 The message has more than one From field; RFC 5322 allows one\. Send it with a single From field/],
    ['an unquoted address as the name', [`From: ceo@victim.test <${MAILBOX}>`], /^554 5\.6\.0 The From field "ceo@victim\.test <billing@example\.com>" does not parse: the display name holds "@".*Write it as Name <address@your-domain>/],
    ['an encoded word as the address', ['From: =?utf-8?B?Y2VvQHZpY3RpbS50ZXN0?='], /^554 5\.6\.0 The From field "=\?utf-8\?B\?Y2VvQHZpY3RpbS50ZXN0\?=" does not parse: it is not one address/],
    ['a second address after the first', [`From: <${MAILBOX}> <ceo@victim.test>`], /^554 5\.6\.0 The From field .* does not parse/],
    ['a comment after the address', [`From: ${MAILBOX} (Billing)`, `Sender: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= <${MAILBOX}>`], /^250 2\.6\.0 Queued as /],
    ['a quoted name with a comma', [`From: "Billing, Example Ltd" <${MAILBOX}>`], /^250 2\.6\.0 Queued as /],
  ];
  for (const [what, head, expected] of cases) {
    const marker = randomUUID();
    const r = await submit(withHead(marker, ...head));
    assert.match(r, expected, what);
    const queued = (await api('GET', `/api/v1/messages?q=${marker}`)).json.items.length;
    assert.equal(queued, r.startsWith('250') ? 1 : 0, `${what}: queued only when accepted`);
  }
  // nodemailer, as an application builds it: a display name and the allowed address.
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, auth: { user: SCANNER, pass: scannerKey }, logger: false });
  try {
    const info = await transport.sendMail({ from: `"Billing" <${MAILBOX}>`, to: 'customer@remote.example', subject: 'nodemailer', text: 'x' });
    assert.match(info.response, /^250 2\.6\.0 Queued as /);
    await assert.rejects(
      transport.sendMail({ envelope: { from: MAILBOX, to: ['customer@remote.example'] }, from: [MAILBOX, 'ceo@victim.test'], to: 'customer@remote.example', subject: 'two authors', text: 'x' }),
      (e: { responseCode?: number; response?: string }) => e.responseCode === 550 && /The From field names ceo@victim\.test/.test(e.response ?? ''),
    );
  } finally {
    transport.close();
  }
  assert.ok(rss.stop() < 400, `RSS stayed bounded (${rss.peak().toFixed(0)} MB)`);
  // The admin sees which client and key sent what, in the log.
  assert.match(mailroom.output(), /"event":"submission\.refused"[^\n]*"field":"from"[^\n]*The From field names ceo@victim\.test/);
  await assertResponsive(mailroom.baseUrl);
  await nextGoodIsQueued();
});

test('a header line ending in a bare CR, and a NUL byte, are refused 554 5.6.0 naming them; nothing is queued', T, async () => {
  const smuggled = randomUUID();
  const cr = await submit(`From: ${MAILBOX}\r\nTo: customer@remote.example\r\nSubject: ${smuggled}\rBcc: secret@victim.test\r\n\r\nBody.`);
  assert.match(cr, /^554 5\.6\.0 The message contains a CR not followed by LF \(at byte \d+\); RFC 5322 allows CR only in CRLF.*Nothing was queued: fix what builds the message \(line ends CRLF, no NUL\)/);
  const nul = randomUUID();
  assert.match(await submit(`From: ${MAILBOX}\r\nSubject: ${nul}\r\n\r\nBody\0with a NUL.`), /^554 5\.6\.0 The message contains a NUL byte \(at byte \d+\)/);
  for (const marker of [smuggled, nul]) assert.equal((await api('GET', `/api/v1/messages?q=${marker}`)).json.items.length, 0);
  await assertResponsive(mailroom.baseUrl);
  await nextGoodIsQueued();
});

test('a message with 1,001 MIME parts gets 554 5.6.0 naming the limit, not a 451 a client would retry for ever', T, async () => {
  const raw = manyPartsMessage(1001, '<many-1001@example.com>').toString('latin1').replace('sender@hostile.example', MAILBOX);
  const rss = watchRss(mailroom.pid);
  const r = await submit(raw);
  assert.match(r, /^554 5\.6\.0 The message has more than 1,000 MIME parts; Mailroom reads at most 1,000\. Nothing was queued and sending it again will not help/);
  assert.ok(rss.stop() < 400, `RSS stayed bounded (${rss.peak().toFixed(0)} MB)`);
  assert.equal((await api('GET', '/api/v1/messages?q=1001%20parts')).json.items.length, 0);
  await assertResponsive(mailroom.baseUrl);
  await nextGoodIsQueued();
});

test('SMTPUTF8 is not announced and refused at MAIL FROM; punycode domains are accepted as the REST API accepts them', T, async () => {
  const s = await loggedIn();
  const marker = randomUUID();
  try {
    const ehlo = await s.command('EHLO client.example');
    assert.doesNotMatch(ehlo, /SMTPUTF8/);
    assert.match(await s.command(`MAIL FROM:<${MAILBOX}> SMTPUTF8`), /^555 5\.6\.7 SMTPUTF8 is not supported: use ASCII addresses \(international domains in punycode, xn--\.\.\.\)/);
    assert.match(await s.command(`MAIL FROM:<${MAILBOX}>`), /^250 /);
    assert.match(await s.command('RCPT TO:<kunde@xn--bcher-kva.example>'), /^250 /);
    // smtp-server gives the domain in Unicode either way; the envelope keeps it in punycode.
    assert.match(await s.command('RCPT TO:<kunde2@bücher.example>'), /^250 /);
    assert.match(await s.command('RCPT TO:<kündin@example.com>'), /^553 5\.1\.3 /);
    assert.match(await s.command('DATA'), /^354 /);
    s.write(`${withHead(marker, `From: ${MAILBOX}`)}\r\n.\r\n`);
    assert.match(await s.reply(), /^250 2\.6\.0 Queued as /);
  } finally {
    s.close();
  }
  const queued = (await api('GET', `/api/v1/messages?q=${marker}`)).json.items[0];
  assert.deepEqual(queued.bcc, ['kunde@xn--bcher-kva.example', 'kunde2@xn--bcher-kva.example'], 'the envelope recipients in ASCII');
});

/** Opens `n` connections from `localAddress` at once; resolves with each one's first reply. */
async function openMany(n: number, localAddress: string): Promise<SmtpDialogue[]> {
  return Promise.all(Array.from({ length: n }, () => smtpDialogue(port, { localAddress })));
}

test('connection caps: past SMTP_MAX_CONNECTIONS_PER_ADDRESS and SMTP_MAX_CLIENTS a client gets 421 4.7.0 and is closed; descriptors and memory stay bounded and others are still served', T, async () => {
  const fdsBefore = openFds();
  const rssBefore = rssMb(mailroom.pid);
  const rss = watchRss(mailroom.pid);
  const held: SmtpDialogue[] = [];
  try {
    // 60 from one address with a cap of 50: 10 refused.
    const first = await openMany(60, '127.0.0.2');
    const ok = first.filter((s) => s.greeting.startsWith('220 '));
    const refused = first.filter((s) => !s.greeting.startsWith('220 '));
    held.push(...ok);
    assert.equal(ok.length, PER_ADDRESS);
    assert.equal(refused.length, 10);
    for (const s of refused) assert.match(s.greeting, /^421 4\.7\.0 Too many connections from 127\.0\.0\.2 \(50, SMTP_MAX_CONNECTIONS_PER_ADDRESS\); close idle ones or try again in a moment$/);
    await Promise.all(refused.map((s) => s.closed)); // closed by Mailroom, not by us

    // A flood of 300 from another address: still 50 held, every other one refused.
    const flood = await openMany(300, '127.0.0.3');
    held.push(...flood.filter((s) => s.greeting.startsWith('220 ')));
    assert.equal(flood.filter((s) => s.greeting.startsWith('220 ')).length, PER_ADDRESS);
    for (const s of flood.filter((x) => !x.greeting.startsWith('220 '))) assert.match(s.greeting, /^421 /);
    await Promise.all(flood.filter((s) => !s.greeting.startsWith('220 ')).map((s) => s.closed));
    // 100 more, one after another, each closed before the next: refusals are counted per address,
    // not by the connections open at that moment, so these too make one log line per 100.
    for (let i = 0; i < 100; i++) {
      const s = await smtpDialogue(port, { localAddress: '127.0.0.3' });
      assert.match(s.greeting, /^421 4\.7\.0 Too many connections/);
      await s.closed;
    }

    // The same client still works from its own address while 100 are held.
    await nextGoodIsQueued();

    // 100 held; 55 more from a third address: 50 fit under SMTP_MAX_CLIENTS (150), 5 do not.
    const third = await openMany(55, '127.0.0.4');
    held.push(...third.filter((s) => s.greeting.startsWith('220 ')));
    const over = third.filter((s) => !s.greeting.startsWith('220 '));
    assert.equal(over.length, 5);
    for (const s of over) assert.match(s.greeting, /^421 4\.7\.0 Too many SMTP clients are connected \(150, SMTP_MAX_CLIENTS\); try again in a moment$/);
    await Promise.all(over.map((s) => s.closed));
    const logged = mailroom.output().split('\n').filter((l) => l.includes('"event":"submission.too_many_connections"') && l.includes('127.0.0.3'));
    assert.ok(logged.length >= 1 && logged.length <= 4, `350 refusals from one address are logged once per 100 (${logged.length} lines)`);
    assert.match(mailroom.output(), /"event":"submission\.too_many_clients"[^\n]*"maxClients":150/);
    const fdsAtPeak = openFds();
    assert.ok(fdsAtPeak <= fdsBefore + MAX_CLIENTS + 20, `descriptors bounded by SMTP_MAX_CLIENTS: ${fdsBefore} before, ${fdsAtPeak} with ${held.length} held`);
    await assertResponsive(mailroom.baseUrl);
  } finally {
    for (const s of held) s.close();
  }
  // Closed connections give their places back.
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(openFds() <= fdsBefore + 10, `descriptors given back: ${fdsBefore} before, ${openFds()} after`);
  assert.ok(rss.stop() - rssBefore < 100, `RSS rose ${(rss.peak() - rssBefore).toFixed(1)} MB for 465 connections`);
  const again = await openMany(PER_ADDRESS, '127.0.0.2');
  try {
    assert.ok(again.every((s) => s.greeting.startsWith('220 ')), 'the first address may open its 50 again');
  } finally {
    for (const s of again) s.close();
  }
  await nextGoodIsQueued();
});

test('failed AUTH is limited by address and by the key tried, not by the username: 55 wrong keys as "Warehouse scanner" from other addresses do not lock out the real scanner', T, async () => {
  const auth = async (localAddress: string, key: string, user = SCANNER) => {
    const s = await smtpDialogue(port, { localAddress });
    try {
      await s.command('EHLO client.example');
      return await s.command(`AUTH PLAIN ${plainAuth(user, key)}`);
    } finally {
      s.close();
    }
  };
  const wrongKey = () => `mr_${randomBytes(32).toString('base64url')}`;
  // 55 different wrong keys from three other addresses, 18 or 19 each (under the 20 per address).
  const others = ['127.0.0.5', '127.0.0.6', '127.0.0.7'];
  for (let i = 0; i < 55; i++) {
    const r = await auth(others[i % 3]!, wrongKey());
    assert.match(r, /^535 5\.7\.8 Authentication credentials invalid/, `attempt ${i + 1}`);
  }
  // The real scanner, at its own address, under the same username.
  assert.match(await auth('127.0.0.1', scannerKey), /^235 /);

  // One address that keeps failing is limited, and the reply names that address, not another.
  for (let i = 0; i < 20; i++) assert.match(await auth('127.0.0.8', wrongKey()), /^535 /);
  const limited = await auth('127.0.0.8', scannerKey);
  assert.match(limited, /^454 4\.7\.0 Too many failed logins from 127\.0\.0\.8; try again in 15 minutes$/);
  // One wrong key tried again and again from one address: limited as that key from there.
  const stale = wrongKey();
  for (let i = 0; i < 5; i++) assert.match(await auth('127.0.0.9', stale, 'anything'), /^535 /);
  assert.match(await auth('127.0.0.9', stale, 'anything'), /^454 4\.7\.0 Too many failed logins with this API key from 127\.0\.0\.9; try again in 15 minutes$/);
  assert.match(await auth('127.0.0.9', scannerKey), /^235 /, 'the right key from that address still works');
  assert.match(await auth('127.0.0.1', scannerKey), /^235 /);
  assert.ok(!mailroom.output().includes(scannerKey), 'no key is ever logged');
});
