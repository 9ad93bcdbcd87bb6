import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Candidate } from '../../src/servers/choose-server.ts';
import { chooseForSubmitted, forbiddenBytes, mailboxesOf, prepareSubmitted, senderFields } from '../../src/submission/submitted-message.ts';

const msg = (...lines: string[]) => Buffer.from(lines.join('\r\n'), 'latin1');

test('Bcc is removed with its folded lines; every other byte is kept', () => {
  const body = 'Hello\r\n\r\nBcc: this line is body text, not a header\r\n';
  const raw = msg('From: A <a@contoso.example>', 'bcc: hidden@example.org,', '\tsecond@example.org', 'To: b@example.org', 'Message-ID: <1@contoso.example>', 'Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=', '', body);
  const { raw: out, addedMessageId } = prepareSubmitted(raw, 'contoso.example');
  assert.equal(addedMessageId, null);
  assert.equal(
    out.toString('latin1'),
    ['From: A <a@contoso.example>', 'To: b@example.org', 'Message-ID: <1@contoso.example>', 'Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=', '', body].join('\r\n'),
  );
});

test('Resent-Bcc goes too, headers that merely start alike stay', () => {
  const raw = msg('Resent-Bcc: x@example.org', 'Bcc-Notes: kept', 'X-Bcc: kept', 'Message-ID: <2@c.example>', '', 'b');
  assert.equal(prepareSubmitted(raw, 'c.example').raw.toString('latin1'), ['Bcc-Notes: kept', 'X-Bcc: kept', 'Message-ID: <2@c.example>', '', 'b'].join('\r\n'));
});

test('a message with nothing to change is returned as the very same buffer', () => {
  const raw = msg('From: a@c.example', 'Message-ID: <3@c.example>', '', 'body');
  assert.equal(prepareSubmitted(raw, 'c.example').raw, raw);
});

test('8-bit bytes in headers and body survive unchanged', () => {
  const raw = Buffer.concat([Buffer.from('Subject: '), Buffer.from([0xc3, 0xa4, 0xff]), Buffer.from('\r\nBcc: z@example.org\r\nMessage-ID: <4@c.example>\r\n\r\n'), Buffer.from([0x01, 0x80, 0xfe, 0x0d, 0x0a])]);
  const out = prepareSubmitted(raw, 'c.example').raw;
  assert.deepEqual(out, Buffer.concat([Buffer.from('Subject: '), Buffer.from([0xc3, 0xa4, 0xff]), Buffer.from('\r\nMessage-ID: <4@c.example>\r\n\r\n'), Buffer.from([0x01, 0x80, 0xfe, 0x0d, 0x0a])]));
});

test('a missing Message-ID is added at the top, in the message\'s own line ending, with the sender\'s domain', () => {
  const crlf = prepareSubmitted(msg('From: a@c.example', '', 'x'), 'c.example');
  assert.match(crlf.addedMessageId ?? '', /^<[0-9a-f-]{36}@c\.example>$/);
  assert.equal(crlf.raw.toString(), `Message-ID: ${crlf.addedMessageId}\r\nFrom: a@c.example\r\n\r\nx`);
  const lf = prepareSubmitted(Buffer.from('From: a@c.example\n\nx'), 'c.example');
  assert.equal(lf.raw.toString(), `Message-ID: ${lf.addedMessageId}\nFrom: a@c.example\n\nx`);
});

test('only the header section is searched: a Message-ID line in the body does not count', () => {
  const r = prepareSubmitted(msg('From: a@c.example', '', 'Message-ID: <not-a-header@c.example>'), 'c.example');
  assert.ok(r.addedMessageId);
});

test('every mailbox of a sender field is found: display names, lists, groups, comments, encoded names, quoted local parts', () => {
  assert.deepEqual(mailboxesOf(' CEO <ceo@victim.test>'), ['ceo@victim.test']);
  assert.deepEqual(mailboxesOf('billing@example.com, ceo@victim.test'), ['billing@example.com', 'ceo@victim.test']);
  assert.deepEqual(mailboxesOf('Team: billing@example.com, "The CEO" <ceo@victim.test>;'), ['billing@example.com', 'ceo@victim.test']);
  assert.deepEqual(mailboxesOf('billing@example.com (ceo@victim.test)'), ['billing@example.com']);
  assert.deepEqual(mailboxesOf('ceo(a comment)@victim.test'), ['ceo@victim.test']);
  assert.deepEqual(mailboxesOf('=?UTF-8?B?R3LDvMOfZQ==?= <billing@example.com>'), ['billing@example.com']);
  assert.deepEqual(mailboxesOf('"ceo@victim.test" <billing@example.com>'), ['billing@example.com']);
  assert.deepEqual(mailboxesOf('John Q. Public <j.public@example.com>, Ops: ;'), ['j.public@example.com']);
  assert.deepEqual(mailboxesOf('"ceo"@victim.test'), ['ceo@victim.test']);
});

test('a sender field a strict reader would see otherwise does not parse', () => {
  for (const v of [
    'ceo@victim.test <billing@example.com>', // unquoted "@" in the name: some readers take the first address
    '<billing@example.com> <ceo@victim.test>',
    'billing@example.com ceo@victim.test',
    'Billing <billing@example.com> ceo@victim.test',
    '=?utf-8?B?Y2VvQHZpY3RpbS50ZXN0?=', // an encoded word is never an address
    'not an address',
    '<billing@example.com',
    'billing@example.com,',
    'undisclosed-recipients:;',
    'Re: Support <support@example.com>',
    '"unclosed <billing@example.com>',
    'Name (unclosed <billing@example.com>',
    '',
  ]) assert.throws(() => mailboxesOf(v), Error, v);
});

test('sender fields are read from the header section only, unfolded, whatever their case or a space before the colon', () => {
  const raw = msg('FROM : Billing', ' <billing@example.com>', 'Sender: ops@example.com', 'Resent-From: r@example.com', 'To: x@y.example', '', 'From: body@victim.test');
  assert.deepEqual(senderFields(raw), [
    { name: 'from', value: ' Billing <billing@example.com>' },
    { name: 'sender', value: ' ops@example.com' },
    { name: 'resent-from', value: ' r@example.com' },
  ]);
});

const servers: Candidate[] = [
  { id: 'billing', name: 'Billing relay', active: true, priority: 1, fromFilter: 'example.com', username: 'relay@example.com', authType: 'password' },
  { id: 'ceo', name: 'CEO mailbox', active: true, priority: 2, fromFilter: 'ceo@victim.test', username: 'ceo@victim.test', authType: 'outlook_oauth' },
];
const chooseFor = async (from: string) => {
  const server = servers.find((s) => s.fromFilter === from || s.fromFilter === from.slice(from.indexOf('@') + 1));
  return server ? { ok: true as const, server, reason: '' } : { ok: false as const, reason: `No mail server may send as ${from}.`, field: 'from' as const, fix: 'Add it.' };
};
const refusal = (raw: Buffer) => chooseForSubmitted(raw, null, 'billing@example.com', chooseFor).then(
  () => assert.fail('refused'),
  (e: { code: string; field: string; message: string; fix: string }) => e,
);

test('the server is chosen by the first From mailbox, and every From and Sender mailbox must be one it may send as', async () => {
  assert.equal((await chooseForSubmitted(msg('From: "Billing" <billing@example.com>, team@example.com', 'Sender: ops@example.com', '', 'x'), null, 'billing@example.com', chooseFor)).id, 'billing');
  assert.equal((await chooseForSubmitted(msg('Subject: no From', '', 'x'), null, 'billing@example.com', chooseFor)).id, 'billing', 'no From: the envelope sender');
  for (const [head, named, field] of [
    ['From: billing@example.com, ceo@victim.test', 'ceo@victim.test', 'From'],
    ['From: Billing <billing@example.com>\r\nSender: CEO <ceo@victim.test>', 'ceo@victim.test', 'Sender'],
    ['From: Team: billing@example.com, ceo@victim.test;', 'ceo@victim.test', 'From'],
    ['From: billing@example.com\r\nResent-From: ceo@victim.test', 'ceo@victim.test', 'Resent-From'],
  ] as const) {
    const e = await refusal(msg(head, '', 'x'));
    assert.equal(e.code, 'MR_UNPROCESSABLE');
    assert.equal(e.field, 'from');
    assert.match(e.message, new RegExp(`^The ${field} field names ${named.replace('.', '\\.')}, and the mail server "Billing relay" chosen for billing@example\\.com may send only as example\\.com\\.$`));
    assert.match(e.fix, new RegExp(`Remove ${named.replace('.', '\\.')} from the ${field} field`));
  }
  assert.equal((await chooseForSubmitted(msg('From: CEO <ceo@victim.test>', '', 'x'), null, 'billing@example.com', chooseFor)).id, 'ceo', 'a server that may send as the From: its own');
  const none = await refusal(msg('From: other@elsewhere.example', '', 'x'));
  assert.deepEqual([none.field, none.message, none.fix], ['from', 'No mail server may send as other@elsewhere.example.', 'Add it.']);
});

test('two From fields, two Sender fields, a Sender with two mailboxes, a From that does not parse, and a parse problem are refused as the message', async () => {
  for (const [head, says] of [
    ['From: billing@example.com\r\nFrom: ceo@victim.test', /more than one From field/],
    ['From: billing@example.com\r\nSender: a@example.com\r\nSender: b@example.com', /more than one Sender field/],
    ['From: billing@example.com\r\nSender: a@example.com, b@example.com', /Sender field "a@example\.com, b@example\.com" does not parse: it must name exactly one mailbox/],
    ['From: ceo@victim.test <billing@example.com>', /The From field "ceo@victim\.test <billing@example\.com>" does not parse: the display name holds/],
    ['From: =?utf-8?B?Y2VvQHZpY3RpbS50ZXN0?=', /does not parse: it is not one address/],
    ['From: Grüße <billing@bücher.example>', /is not an address Mailroom can send as \(ASCII only; write international domains in punycode/],
  ] as const) {
    const e = await refusal(Buffer.from(`${head}\r\n\r\nx`, 'latin1'));
    assert.equal(e.field, 'message', head);
    assert.match(e.message, says);
  }
  assert.equal((await chooseForSubmitted(msg('From: billing@xn--bcher-kva.example.com', '', 'x'), null, 'billing@example.com', async () => ({ ok: true, server: { ...servers[0]!, fromFilter: null }, reason: '' }))).id, 'billing', 'punycode is an ASCII domain');
  const e = await chooseForSubmitted(msg('From: billing@example.com', '', 'x'), { code: 'too_many_parts', message: 'The message has more than 1,000 MIME parts; Mailroom reads at most 1,000.' }, 'billing@example.com', chooseFor).catch((x: { field: string; message: string }) => x);
  assert.equal((e as { field: string }).field, 'message');
  assert.match((e as { message: string }).message, /more than 1,000 MIME parts/);
});

test('NUL and a CR without LF are found anywhere in the message; CRLF and LF alone are fine', () => {
  assert.equal(forbiddenBytes(msg('From: a@c.example', '', 'body')), null);
  assert.equal(forbiddenBytes(Buffer.from('From: a@c.example\n\nbody\n')), null);
  assert.match(forbiddenBytes(Buffer.from('Subject: x\rBcc: secret@victim.test\r\n\r\nb')) ?? '', /CR not followed by LF \(at byte 10\)/);
  assert.match(forbiddenBytes(Buffer.from('Subject: x\r\n\r\nb\0c')) ?? '', /NUL byte \(at byte 15\)/);
  assert.match(forbiddenBytes(Buffer.from('Subject: x\r\n\r\nends with\r')) ?? '', /CR not followed by LF/);
});

test('X-Mailroom-Owner is read (unfolded) and removed; every other byte is kept', () => {
  const raw = Buffer.from('From: ann@x.com\r\nX-Mailroom-Owner: erp-\r\n user-42\r\nMessage-ID: <1@x.com>\r\nSubject: Hi\r\n\r\nX-Mailroom-Owner: in the body stays\r\n');
  const p = prepareSubmitted(raw, 'x.com');
  assert.deepEqual(p.owners, ['erp- user-42'], 'unfolding removes the line break only (RFC 5322 §2.2.3)');
  assert.equal(p.raw.toString(), 'From: ann@x.com\r\nMessage-ID: <1@x.com>\r\nSubject: Hi\r\n\r\nX-Mailroom-Owner: in the body stays\r\n');
  const two = prepareSubmitted(Buffer.from('x-mailroom-owner: a\r\nX-MAILROOM-OWNER: b\r\nMessage-ID: <2@x.com>\r\n\r\nbody'), 'x.com');
  assert.deepEqual(two.owners, ['a', 'b'], 'both seen, so the listener refuses the message');
  const none = Buffer.from('From: ann@x.com\r\nMessage-ID: <3@x.com>\r\n\r\nbody');
  assert.equal(prepareSubmitted(none, 'x.com').raw, none, 'untouched without one');
  assert.deepEqual(prepareSubmitted(none, 'x.com').owners, []);
});
