// Delivery reports, auto-replies and read receipts recognised from their raw text: a corpus written
// from RFC 3464, RFC 3834, RFC 8098 and the published layouts of each sender, then hostile inputs.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { explainCategory, recognizeReport } from '../../src/bounces/recognize-report.ts';
import { categorize } from '../../src/bounces/bounce-category.ts';
import type { BounceCategory, RecipientAction, ReportKind } from '../../src/bounces/delivery-report.ts';
import { BOUNCE_CATALOGUE } from '../../src/diagnose/catalogue.ts';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/reports/${name}`, import.meta.url));

interface Row {
  file: string;
  kind: ReportKind | null;
  format?: string;
  /** address, action, status, category */
  recipients?: Array<[string, RecipientAction, string | null, BounceCategory]>;
  ids?: string[];
  reportingMta?: string | null;
  from?: string | null;
  originalHeaders?: boolean;
  diagnostic?: RegExp;
}

const MR = (id: string) => `<mr.${id}@mailroom.contoso.example>`;

const ROWS: Row[] = [
  { file: 'exchange-online-ndr.eml', kind: 'delivery_status', format: 'exchange', recipients: [['nobody@fabrikam.example', 'failed', '5.1.10', 'unknown_user']], ids: [MR('20261207091400.4f2a')], reportingMta: 'dns;AM0PR01MB1234.eurprd01.prod.exchangelabs.com', originalHeaders: true, diagnostic: /^smtp;550 5\.1\.10 RESOLVER\.ADR\.RecipientNotFound/ },
  { file: 'exchange-delay-text.eml', kind: 'delivery_status', format: 'exchange', recipients: [['ops@wingtip.example', 'delayed', '4.4.0', 'temporary']], ids: [MR('20261207080000.dd01')], originalHeaders: false },
  { file: 'gmail-dsn.eml', kind: 'delivery_status', format: 'gmail', recipients: [['ghost@northwind.example', 'failed', '5.1.1', 'unknown_user']], ids: ['<CAF7k2Yw8d9pQzL3vN5xR@mail.gmail.com>'], reportingMta: 'dns; googlemail.com', originalHeaders: true },
  { file: 'postfix-dsn.eml', kind: 'delivery_status', format: 'rfc3464', recipients: [['accounts@tailspin.example', 'failed', '5.3.4', 'message_too_large']], ids: [MR('20261207090055.77aa')], reportingMta: 'dns; mx.tailspin.example', originalHeaders: true },
  { file: 'postfix-text.eml', kind: 'delivery_status', format: 'postfix', recipients: [['full@tailspin.example', 'failed', '5.2.2', 'mailbox_full']], ids: [MR('20261207090455.18cd')], reportingMta: 'dns; relay.tailspin.example', originalHeaders: false, diagnostic: /552 5\.2\.2 <full@tailspin\.example>: Mailbox full/ },
  { file: 'exim-text.eml', kind: 'delivery_status', format: 'exim', recipients: [['sales@no-such-domain.example', 'failed', null, 'unknown_domain']], ids: [MR('20261207092959.c0de')], originalHeaders: true, diagnostic: /^Unrouteable address$/ },
  { file: 'exim-delay.eml', kind: 'delivery_status', format: 'exim', recipients: [['ops@greylist.example', 'delayed', '4.7.1', 'temporary']], ids: [MR('20261207093000.7777')], originalHeaders: false, diagnostic: /451 4\.7\.1 Greylisted, please try again later$/ },
  { file: 'gmail-text.eml', kind: 'delivery_status', format: 'gmail', recipients: [['former.staff@northwind.example', 'failed', '5.2.1', 'unknown_user']], ids: ['<CAG9z8Y7x6W5v4U3t2S1r0Q@mail.gmail.com>'], originalHeaders: true, diagnostic: /^550 5\.2\.1 The email account that you tried to reach is disabled\.$/ },
  { file: 'qmail.eml', kind: 'delivery_status', format: 'qmail', recipients: [['old.clerk@litware.example', 'failed', '5.1.1', 'unknown_user']], ids: [MR('20261207093958.9e9e')], reportingMta: 'dns; mail.litware.example', originalHeaders: true },
  { file: 'sendmail.eml', kind: 'delivery_status', format: 'sendmail', recipients: [['j.doe@wingtip.example', 'failed', '5.1.1', 'unknown_user']], ids: [MR('20261207094457.aaaa')], reportingMta: 'dns; mx.wingtip.example', originalHeaders: true },
  { file: 'yahoo-text.eml', kind: 'delivery_status', format: 'yahoo', recipients: [['no.such.user@yahoo.com', 'failed', null, 'unknown_user']], ids: [MR('20261207094959.beef')], originalHeaders: true },
  { file: 'delay-dsn.eml', kind: 'delivery_status', format: 'rfc3464', recipients: [['slow@tailspin.example', 'delayed', '4.4.1', 'temporary']], ids: [MR('20261207100057.d1a7')], originalHeaders: true },
  {
    file: 'delivered-dsn.eml',
    kind: 'delivery_status',
    format: 'rfc3464',
    recipients: [
      ['ap@fabrikam.example', 'delivered', '2.0.0', 'other'],
      ['ar@typo-domain.example', 'failed', '5.1.2', 'unknown_domain'],
    ],
    ids: [MR('20261207105959.0k0k')],
    originalHeaders: true,
  },
  // Original-Recipient only, no original attached and no In-Reply-To: still a report, matched by recipient alone.
  { file: 'dsn-no-original.eml', kind: 'delivery_status', format: 'rfc3464', recipients: [['buyer@litware.example', 'failed', '5.7.1', 'blocked']], ids: [], originalHeaders: false },
  { file: 'exchange-oof.eml', kind: 'auto_reply', format: 'exchange-oof', recipients: [], ids: [MR('20261207091955.a1a1')], from: 'buyer@fabrikam.example', originalHeaders: false },
  { file: 'gmail-vacation.eml', kind: 'auto_reply', format: 'gmail-vacation', recipients: [], ids: [MR('20261207091100.5521'), MR('20261207090000.5520')], from: 'sam.supplier@gmail-user.example' },
  { file: 'x-autoreply.eml', kind: 'auto_reply', format: 'x-autoreply', recipients: [], ids: [MR('20261207075959.4411')], from: 'helpdesk@litware.example' },
  { file: 'read-receipt.eml', kind: 'read_receipt', format: 'rfc8098', recipients: [], ids: [MR('20261207140000.rr01')], from: 'buyer@fabrikam.example', originalHeaders: true },
  // Quotes a Postfix line and "550 5.1.1" and its subject says Undeliverable, but a person wrote it.
  { file: 'ordinary-reply.eml', kind: null },
  // Auto-Submitted: auto-generated alone (RFC 3834 §5) is not an answer to anything.
  { file: 'newsletter-auto-generated.eml', kind: null },
];

for (const row of ROWS) {
  test(`${row.file}: ${row.kind ?? 'not a report'}${row.format ? ` (${row.format})` : ''}`, async () => {
    const r = await recognizeReport(fixture(row.file));
    if (row.kind === null) {
      assert.equal(r, null);
      return;
    }
    assert.ok(r, 'recognised');
    assert.equal(r.kind, row.kind);
    if (row.format) assert.equal(r.format, row.format);
    if (row.recipients) {
      assert.deepEqual(
        r.recipients.map((x) => [x.address, x.action, x.status, x.category]),
        row.recipients,
      );
      for (const x of r.recipients) if (x.action !== 'delivered') assert.ok(x.diagnostic, `diagnostic kept for ${x.address}`);
    }
    if (row.ids) assert.deepEqual(r.originalMessageIds, row.ids);
    if (row.reportingMta !== undefined) assert.equal(r.reportingMta, row.reportingMta);
    if (row.from !== undefined) assert.equal(r.from, row.from);
    if (row.originalHeaders !== undefined) assert.equal(r.originalHeaders !== null, row.originalHeaders);
    if (row.originalHeaders && row.ids?.[0]) assert.equal(r.originalHeaders!['message-id'], row.ids[0]);
    if (row.diagnostic) assert.match(r.recipients[0]!.diagnostic!, row.diagnostic);
  });
}

test('the corpus covers every kind and every category', async () => {
  const kinds = new Set<string>();
  const categories = new Set<string>();
  for (const row of ROWS) {
    const r = await recognizeReport(fixture(row.file));
    if (r) kinds.add(r.kind);
    for (const x of r?.recipients ?? []) categories.add(x.category);
  }
  assert.deepEqual([...kinds].sort(), ['auto_reply', 'delivery_status', 'read_receipt']);
  assert.deepEqual([...categories].sort(), ['blocked', 'message_too_large', 'mailbox_full', 'other', 'temporary', 'unknown_domain', 'unknown_user'].sort());
});

test('Original-Recipient is kept beside the final recipient, and Gmail\'s X-Original-Message-ID is a candidate', async () => {
  const dsn = await recognizeReport(fixture('dsn-no-original.eml'));
  assert.equal(dsn?.recipients[0]?.originalRecipient, 'buyer@litware.example');
  const delivered = await recognizeReport(fixture('delivered-dsn.eml'));
  assert.deepEqual(delivered?.recipients.map((x) => x.originalRecipient), ['ap@fabrikam.example', null]);
  // Without the attached original, the per-message field still names it.
  const gmail = fixture('gmail-dsn.eml').toString('latin1');
  const withoutOriginal = gmail.slice(0, gmail.indexOf('Content-Type: message/rfc822')).replace(/^(In-Reply-To|References):.*\r\n/gm, '');
  const r = await recognizeReport(Buffer.from(withoutOriginal, 'latin1'));
  assert.deepEqual(r?.originalMessageIds, ['<CAF7k2Yw8d9pQzL3vN5xR@mail.gmail.com>']);
});

test('Exchange\'s automatic reply is one by its own marks, with or without Auto-Submitted; a "Re:" to it is not', async () => {
  const oof = fixture('exchange-oof.eml').toString('latin1');
  const noAutoSubmitted = oof.replace(/^Auto-Submitted:.*\n/m, '');
  assert.equal((await recognizeReport(Buffer.from(noAutoSubmitted)))?.format, 'exchange-oof');
  const human = oof.replace(/^(Auto-Submitted|X-Auto-Response-Suppress|X-MS-Exchange-Inbox-Rules-Loop):.*\n/gm, '').replace('Subject: Automatic reply:', 'Subject: RE: Automatic reply:');
  assert.equal(await recognizeReport(Buffer.from(human)), null);
});

test('categories: the enhanced status first, then the diagnostic text, then the action', () => {
  const rows: Array<[string | null, string | null, RecipientAction, BounceCategory]> = [
    ['5.1.1', null, 'failed', 'unknown_user'],
    ['5.1.10', null, 'failed', 'unknown_user'],
    ['5.1.2', null, 'failed', 'unknown_domain'],
    ['5.4.4', null, 'failed', 'unknown_domain'],
    ['5.2.2', null, 'failed', 'mailbox_full'],
    ['4.2.2', null, 'delayed', 'mailbox_full'],
    ['5.3.4', null, 'failed', 'message_too_large'],
    ['5.2.3', null, 'failed', 'message_too_large'],
    ['5.7.1', null, 'failed', 'blocked'],
    ['5.7.26', 'smtp; 550 5.7.26 Unauthenticated email from example.com is not accepted due to DMARC policy', 'failed', 'blocked'],
    ['4.7.0', 'smtp; 421 4.7.0 Try again later, closing connection', 'delayed', 'temporary'],
    ['4.4.1', null, 'delayed', 'temporary'],
    // 5.0.0 says nothing: the text decides.
    ['5.0.0', 'smtp; 550 Requested action not taken: mailbox unavailable', 'failed', 'unknown_user'],
    ['5.0.0', 'smtp; 552 Mailbox is full', 'failed', 'mailbox_full'],
    [null, 'smtp; 550 Message rejected: listed on a block list', 'failed', 'blocked'],
    [null, 'smtp; 552 Message size exceeds maximum permitted', 'failed', 'message_too_large'],
    [null, 'smtp; 550 5.1.1 <a@b.example>: Recipient address rejected', 'failed', 'unknown_user'],
    [null, 'Host or domain name not found', 'failed', 'unknown_domain'],
    [null, 'smtp; 451 greylisted, please try again', 'delayed', 'temporary'],
    [null, 'smtp; 554 Transaction failed', 'failed', 'other'],
    [null, null, 'delayed', 'temporary'],
    ['2.0.0', 'smtp; 250 2.0.0 Ok', 'delivered', 'other'],
  ];
  for (const [status, diagnostic, action, expected] of rows) assert.equal(categorize(status, diagnostic, action), expected, `${status} ${diagnostic} ${action}`);
});

test('every category is explained in plain words through the catalogue', () => {
  const all: BounceCategory[] = ['unknown_user', 'unknown_domain', 'mailbox_full', 'message_too_large', 'blocked', 'temporary', 'other'];
  const codes = new Set<string>();
  for (const c of all) {
    const e = explainCategory(c);
    assert.ok(e.code in BOUNCE_CATALOGUE, e.code);
    assert.ok(e.cause.length > 40 && e.fix.length > 40, c);
    codes.add(e.code);
  }
  assert.equal(codes.size, all.length);
  assert.deepEqual(Object.keys(BOUNCE_CATALOGUE).sort(), [...codes].sort());
});

// ── hostile input ──

/** Awaits `f` and fails if it took longer than `ms`. */
async function fast<T>(ms: number, f: () => Promise<T>): Promise<T> {
  const start = performance.now();
  const r = await f();
  const took = performance.now() - start;
  assert.ok(took < ms, `took ${took.toFixed(0)} ms (limit ${ms} ms)`);
  return r;
}

const head = 'From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n';

test('a report of 1,000 parts is read up to its part budget, quickly', async () => {
  let body = '';
  for (let i = 0; i < 1000; i++) body += `--B\r\nContent-Type: text/plain\r\n\r\npart ${i}\r\n`;
  body += '--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; late@x.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B--\r\n';
  const raw = Buffer.from(`${head}Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n${body}`);
  const r = await fast(500, () => recognizeReport(raw));
  // The DSN part after 1,000 others is past the part budget: still a bounce by its sender and subject, nobody named.
  assert.equal(r?.kind, 'delivery_status');
  assert.deepEqual(r.recipients, []);
});

test('multiparts nested 10,000 deep stop at the depth limit', async () => {
  let body = '';
  for (let i = 0; i < 10_000; i++) body += `--b${i}\r\nContent-Type: multipart/mixed; boundary="b${i + 1}"\r\n\r\n`;
  const raw = Buffer.from(`${head}Content-Type: multipart/report; report-type=delivery-status; boundary="b0"\r\n\r\n${body}`);
  await fast(1000, () => recognizeReport(raw));
});

test('NULs, a 3 MB header line and a 30 MB body are answered within bounds, without throwing', async () => {
  const nul = Buffer.concat([Buffer.from(head + 'Content-Type: multipart/report; report-type=delivery-status; boundary=Z\r\n\r\n--Z\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; a\0b@x.example\r\nAction: failed\0\r\nStatus: 5.\0.1\r\n\r\n--Z--'), Buffer.alloc(100_000)]);
  const r1 = await fast(1000, () => recognizeReport(nul));
  assert.ok(r1 && r1.recipients.every((x) => !x.address.includes('\0')));

  const giant = Buffer.from(`${head}X-Failed-Recipients: ${'a'.repeat(3 * 1024 * 1024)}@x.example\r\n\r\nbody`);
  await fast(1000, () => recognizeReport(giant));

  const huge = Buffer.concat([Buffer.from(`${head}X-Failed-Recipients: big@x.example\r\n\r\n`), Buffer.alloc(30 * 1024 * 1024, 'x')]);
  const r3 = await fast(1500, () => recognizeReport(huge));
  assert.deepEqual(r3?.recipients.map((x) => x.address), ['big@x.example']);
});

test('pathological text for the text recognisers stays linear', async () => {
  const lines = [
    'This is the mail system at host ' + 'a.'.repeat(200_000),
    '<' + 'a'.repeat(500_000) + '@x.example>:' + ' said: 550 '.repeat(50_000),
    'Hi. This is the qmail-send program at x.\n' + '<a@b>:\n'.repeat(100_000),
    'This message was created automatically by mail delivery software.\nThe following address(es) failed:\n' + '  a@b.example\n'.repeat(100_000),
    '----- The following addresses had permanent fatal errors -----\n' + '<a@b.example>\n'.repeat(100_000),
    'Delivery to the following recipient failed permanently:\n' + '  a@b.example\n'.repeat(100_000),
  ];
  for (const text of lines) {
    const raw = Buffer.from(`${head}Content-Type: text/plain\r\n\r\n${text}`);
    const r = await fast(1500, () => recognizeReport(raw));
    assert.ok(r === null || r.recipients.length <= 500);
  }
  // Exchange's layout is read from HTML when there is no text part: runs of '<' and of blanks.
  for (const html of ['<'.repeat(300_000), 'Delivery has failed to these recipients or groups:' + ' '.repeat(300_000), '<br'.repeat(100_000)]) {
    const raw = Buffer.from(`${head}X-MS-Exchange-Message-Is-Ndr:\r\nContent-Type: text/html\r\n\r\n${html}`);
    await fast(1500, () => recognizeReport(raw));
  }
});

test('a person\'s message with a delivery-status part attached is not a report', async () => {
  const raw = Buffer.from('From: Jane <jane@fabrikam.example>\r\nSubject: What does this mean?\r\nContent-Type: multipart/mixed; boundary=M\r\n\r\n--M\r\nContent-Type: text/plain\r\n\r\nWe got this.\r\n--M\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\nAction: failed\r\n\r\n--M--\r\n');
  assert.equal(await recognizeReport(raw), null);
});

test('garbage, empty input and a boundary that never comes give null or a report, never an exception', async () => {
  const inputs = [
    Buffer.alloc(0),
    Buffer.from('\r\n\r\n'),
    Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919) % 256)),
    Buffer.from(`${head}Content-Type: multipart/report; boundary="never"\r\n\r\n` + 'line\r\n'.repeat(100_000)),
    Buffer.from(`${head}Content-Type: multipart/report; boundary=""\r\n\r\n--\r\n\r\n--\r\n`),
    Buffer.from('Content-Type: message/disposition-notification\r\n\r\n' + 'Disposition: x\r\n'.repeat(50_000)),
  ];
  for (const raw of inputs) await fast(1000, () => recognizeReport(raw));
});
