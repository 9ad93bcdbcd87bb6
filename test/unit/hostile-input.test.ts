import assert from 'node:assert/strict';
import { test } from 'node:test';
import { invalidFields } from '../helpers/invalid-fields.ts';
import { buildMime } from '../../src/graph/graph-sender.ts';
import { AdminService } from '../../src/auth/admin-service.ts';
import { isMailroomError, type MailroomError } from '../../src/errors/errors.ts';
import { parseMailbox, validateMessage } from '../../src/outbox/message-input.ts';

const MAX = 50 * 1024 * 1024;
const base = { from: 'Sales <sales@contoso.example>', to: ['a@b.example'], subject: 'Invoice 42', text: 'Hello' };

/** Runs `f` and fails if it took longer than `ms`: these inputs took seconds before the fix (the limits leave room for a loaded machine). */
function fast<T>(ms: number, f: () => T): T {
  const start = performance.now();
  const r = f();
  const took = performance.now() - start;
  assert.ok(took < ms, `took ${took.toFixed(0)} ms (limit ${ms} ms)`);
  return r;
}

const fields = (body: unknown) => invalidFields(body, MAX);

test('an attachment of 80,000 newlines and a "!" is refused at once (the base64 check is linear)', () => {
  const f = fast(750, () => fields({ ...base, attachments: [{ filename: 'a.bin', content: '\n'.repeat(80_000) + '!' }] }));
  assert.equal(f['attachments.0.content'], 'Attachment content must be base64');
  // 10 MB of base64 with line breaks every 76 characters still passes quickly.
  const big = Buffer.alloc(10 * 1024 * 1024, 7).toString('base64').replace(/.{76}/g, '$&\r\n');
  const m = fast(6000, () => validateMessage({ ...base, attachments: [{ filename: 'a.bin', content: big }] }, MAX));
  assert.equal(m.attachments[0]!.size, 10 * 1024 * 1024);
  assert.ok(!/\s/.test(m.attachments[0]!.content));
});

test('base64 with a stray padding or a lone trailing character is refused', () => {
  for (const bad of ['QUJD=A', 'QUJDR', '====', 'QU JD!']) {
    assert.ok(fields({ ...base, attachments: [{ filename: 'a', content: bad }] })['attachments.0.content'], bad);
  }
});

test('pathological addresses are refused in linear time', () => {
  const inputs = [
    'a'.repeat(100_000) + '@',
    'a@' + 'a.'.repeat(50_000) + '!',
    'a@' + 'a-'.repeat(50_000),
    '"'.repeat(5_000) + 'a<'.repeat(50_000),
    'x <' + 'a.'.repeat(50_000) + '@b>',
  ];
  for (const input of inputs) fast(750, () => assert.throws(() => parseMailbox(input)));
  // Through the API schema an address longer than 998 characters never reaches the parser.
  assert.match(fields({ ...base, to: ['a@' + 'a.'.repeat(50_000) + 'com'] })['to.0']!, /998/);
});

test('the admin email check is linear (it was quadratic on dotted domains)', async () => {
  const admins = new AdminService({} as never);
  for (const email of ['a@' + 'a.'.repeat(25_000) + ' ', 'a@' + 'a.'.repeat(100) + ' ']) {
    const start = performance.now();
    await assert.rejects(admins.createAdmin(email, 'a long enough passphrase'), (e: unknown) => isMailroomError(e, 'MR_VALIDATION') && (e as MailroomError).fields?.email !== undefined);
    assert.ok(performance.now() - start < 750);
  }
});

test('a header word that cannot be folded into 998-character lines is refused, naming the field', () => {
  const word = 'a'.repeat(950);
  assert.match(fields({ ...base, subject: word }).subject!, /998 characters/);
  assert.match(fields({ ...base, headers: { 'X-Token': word } })['headers.X-Token']!, /998 characters/);
  assert.match(fields({ ...base, cc: `${word} <c@b.example>` }).cc!, /display name/);
  assert.match(fields({ ...base, to: [`${word} <a@b.example>`] })['to.0']!, /display name/);
});

test('every header line of a message built from valid long values stays within 998 characters', async () => {
  const long = 'word '.repeat(790).trim();
  const m = validateMessage({ ...base, from: `${'Name '.repeat(90)}<sales@contoso.example>`, to: [`${'Long '.repeat(190)}<a@b.example>`], subject: 'S '.repeat(480), headers: { 'X-Long': long, References: '<a@b.example> '.repeat(200).trim() } }, MAX);
  // Built the way Mailroom builds it (the Graph transport sends exactly this MIME; SMTP the same
  // fields through nodemailer's composer).
  const raw = await buildMime({ from: m.from!, to: m.to, subject: m.subject, text: m.text ?? '', headers: m.headers });

  const lines = raw.toString('latin1').split('\r\n');
  assert.ok(lines.length > 20, 'long values were folded over many lines');
  assert.ok(lines.every((l) => l.length <= 998), `longest line ${Math.max(...lines.map((l) => l.length))}`);
});

test('multipart/* and message/* are refused as attachment types', () => {
  for (const contentType of ['multipart/mixed; boundary=x', 'message/rfc822', 'Message/Partial']) {
    assert.match(fields({ ...base, attachments: [{ filename: 'a', contentType, content: 'QUJD' }] })['attachments.0.contentType']!, /octet-stream/, contentType);
  }
  assert.equal(validateMessage({ ...base, attachments: [{ filename: 'a.pdf', contentType: 'application/pdf', content: 'QUJD' }] }, MAX).attachments.length, 1);
});
