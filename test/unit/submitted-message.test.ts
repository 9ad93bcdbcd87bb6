import assert from 'node:assert/strict';
import { test } from 'node:test';
import { prepareSubmitted } from '../../src/submission/submitted-message.ts';

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
  const raw = Buffer.concat([Buffer.from('Subject: '), Buffer.from([0xc3, 0xa4, 0xff]), Buffer.from('\r\nBcc: z@example.org\r\nMessage-ID: <4@c.example>\r\n\r\n'), Buffer.from([0x00, 0x80, 0xfe, 0x0d, 0x0a])]);
  const out = prepareSubmitted(raw, 'c.example').raw;
  assert.deepEqual(out, Buffer.concat([Buffer.from('Subject: '), Buffer.from([0xc3, 0xa4, 0xff]), Buffer.from('\r\nMessage-ID: <4@c.example>\r\n\r\n'), Buffer.from([0x00, 0x80, 0xfe, 0x0d, 0x0a])]));
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
