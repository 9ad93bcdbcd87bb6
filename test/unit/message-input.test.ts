import assert from 'node:assert/strict';
import { test } from 'node:test';
import { invalidFields } from '../helpers/invalid-fields.ts';
import { isMailroomError, type MailroomError } from '../../src/errors/errors.ts';
import { parseMailbox, validateMessage } from '../../src/outbox/message-input.ts';

const MAX = 1024 * 1024;
const base = { from: 'Sales <sales@contoso.example>', to: ['a@b.example'], subject: 'Invoice 42', text: 'Hello' };
const fields = (body: unknown, max = MAX) => invalidFields(body, max);

test('a valid message is normalised', () => {
  const m = validateMessage({ ...base, cc: 'Bob <BOB@B.example>', attachments: [{ filename: 'a.txt', contentType: 'text/plain', content: Buffer.from('hi').toString('base64') }] }, MAX);
  assert.deepEqual(m.from, { name: 'Sales', address: 'sales@contoso.example' });
  assert.deepEqual(m.cc, [{ name: 'Bob', address: 'bob@b.example' }]);
  assert.equal(m.attachments[0]!.size, 2);
  assert.equal(m.sizeBytes, 7);
});

test('addresses are parsed strictly', () => {
  for (const bad of ['plainaddress', 'a@b', 'a@@b.com', 'a b@c.com', 'a@b.com, c@d.com', 'a..b@c.com', '.a@b.com', 'Group: a@b.com;']) {
    assert.throws(() => parseMailbox(bad), Error, bad);
  }
  assert.deepEqual(Object.keys(fields({ ...base, to: ['ok@b.example', 'bad'] })), ['to.1']);
});

test('CR or LF in any header value is rejected (header injection)', () => {
  assert.ok(fields({ ...base, subject: 'Hi\r\nBcc: victim@x.example' }).subject);
  assert.ok(fields({ ...base, from: 'Sales\r\nBcc: v@x.example <sales@contoso.example>' }).from);
  assert.ok(fields({ ...base, headers: { 'X-Ref': 'a\nB: c' } })['headers.X-Ref']);
  assert.ok(fields({ ...base, attachments: [{ filename: 'a\r\n.txt', content: '' }] })['attachments.0.filename']);
});

test('only allow-listed custom headers may be set', () => {
  assert.ok(fields({ ...base, headers: { Bcc: 'x@y.example' } })['headers.Bcc']);
  assert.ok(fields({ ...base, headers: { 'Content-Type': 'text/html' } })['headers.Content-Type']);
  assert.ok(fields({ ...base, headers: { 'Bad Name': 'x' } })['headers.Bad Name']);
  const ok = validateMessage({ ...base, headers: { 'X-ERP-Invoice': '42', 'List-Unsubscribe': '<mailto:u@x.example>', 'In-Reply-To': '<a@b>' } }, MAX);
  assert.equal(Object.keys(ok.headers).length, 3);
});

test('oversize messages are refused with the sizes named', () => {
  const content = Buffer.alloc(2048).toString('base64');
  const f = fields({ ...base, attachments: [{ filename: 'big.bin', content }] }, 1024);
  assert.match(f.attachments!, /limit/);
});

test('missing recipients, body, sender; unknown fields; bad base64 — all named at once', () => {
  const f = fields({ subject: 'x', bogus: 1 });
  assert.ok(f.bogus);
  const g = fields({ subject: 'x' });
  assert.ok(g.to && g.text && g.from);
  assert.ok(fields({ ...base, attachments: [{ filename: 'a', content: '***' }] })['attachments.0.content']);
  assert.ok(fields([1, 2]).body);
});

test('owner and allowSharedFallback: an owner may stand for the sender; the fallback only goes with an owner', () => {
  const { from: _from, ...noFrom } = base;
  const m = validateMessage({ ...noFrom, owner: ' erp-user-42 ', allowSharedFallback: true }, MAX);
  assert.equal(m.owner, 'erp-user-42');
  assert.equal(m.allowSharedFallback, true);
  assert.equal(m.from, null);
  const shared = validateMessage(base, MAX);
  assert.equal(shared.owner, null, 'no owner: shared mailboxes only');
  assert.equal(shared.allowSharedFallback, false);
  assert.deepEqual(Object.keys(fields({ ...base, allowSharedFallback: true })), ['allowSharedFallback']);
  assert.deepEqual(Object.keys(fields({ ...base, owner: '  ' })), ['owner']);
  assert.deepEqual(Object.keys(fields({ ...base, owner: 'x'.repeat(201) })), ['owner']);
  assert.deepEqual(Object.keys(fields({ ...base, owner: 42 })), ['owner']);
  assert.deepEqual(Object.keys(fields(noFrom)), ['from']);
});
