import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { MAX_BODY_CHARS, parseMessage, storeRaw } from '../../src/inbound/parse-message.ts';
import { safeFilename } from '../../src/inbound/safe-filename.ts';
import { WEBHOOK_BODY_BYTES, WEBHOOK_PAYLOAD_BYTES, webhookMessage } from '../../src/inbound/webhook-service.ts';
import { bigTextMessage, deepMessage, hugeHeaderMessage, manyPartsMessage, namedAttachmentMessage } from '../helpers/hostile-mime.ts';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** A stream of `buf` in 64 KB chunks, as a download gives it. */
const streamOf = (buf: Buffer) => Readable.from((function* () {
  for (let k = 0; k < buf.length; k += 64 * 1024) yield buf.subarray(k, k + 64 * 1024);
})());

test('a message of more than 1,000 MIME parts resolves with its headers and a problem naming the limit', async () => {
  const r = await parseMessage(manyPartsMessage(1001));
  assert.deepEqual(r.problem, { code: 'too_many_parts', message: 'The message has more than 1,000 MIME parts; Mailroom reads at most 1,000.' });
  assert.equal(r.subject, '1001 parts');
  assert.equal(r.messageId, '<many-1001@hostile.example>');
  assert.equal(r.from, 'Sender <sender@hostile.example>');
  assert.match(r.text!, /^part 0 \npart 1 [^]*part 998 $/, 'the text of the parts before the limit');
  // 999 parts and the message itself: 1,000, still read whole.
  const ok = await parseMessage(manyPartsMessage(999));
  assert.equal(ok.problem, undefined);
  assert.match(ok.text!, /part 998/);
});

test('5,000 nested multiparts stop at 50 levels at once, with a problem naming the depth', async () => {
  const start = performance.now();
  const r = await parseMessage(deepMessage(5000));
  assert.ok(performance.now() - start < 2000, `took ${Math.round(performance.now() - start)} ms`);
  assert.deepEqual(r.problem, { code: 'too_deep', message: "The message's MIME parts are nested more than 50 levels deep; Mailroom reads at most 50." });
  assert.equal(r.subject, '5000 levels');
  const ok = await parseMessage(deepMessage(50));
  assert.equal(ok.problem, undefined);
  assert.equal(ok.text?.trim(), 'innermost');
});

test('a part header past 256 KB is malformed; the headers and the part before it are read', async () => {
  const r = await parseMessage(hugeHeaderMessage());
  assert.equal(r.problem?.code, 'malformed');
  assert.match(r.problem!.message, /header block larger than 256 KB; Mailroom reads at most 256 KB per part/);
  assert.equal(r.subject, 'Huge part header');
  assert.equal(r.text, 'readable part');
});

test('the limits hold the same through a stream, and the stream is read to its end (size and hash of all of it)', async () => {
  for (const raw of [manyPartsMessage(1001), deepMessage(5000), hugeHeaderMessage()]) {
    const fromBuffer = await parseMessage(raw);
    const fromStream = await parseMessage(streamOf(raw));
    assert.deepEqual(fromStream.problem, fromBuffer.problem);
    assert.equal(fromStream.sizeBytes, raw.length);
    assert.equal(fromStream.sha256, fromBuffer.sha256);
  }
});

test('a 20 MB text body is kept to its first 1 MB, flagged, without holding the text whole', async () => {
  const raw = bigTextMessage(20 * 1024 * 1024);
  // What the result keeps, garbage collected before and after (without it, how much garbage was
  // still uncollected decided the number). 8–15 MB stay after it; the whole text kept would add 20 MB or more.
  gc();
  const before = process.memoryUsage().arrayBuffers + process.memoryUsage().heapUsed;
  const r = await parseMessage(streamOf(raw));
  gc();
  const grew = (process.memoryUsage().arrayBuffers + process.memoryUsage().heapUsed - before) / 1024 / 1024;
  assert.equal(r.problem, undefined);
  assert.equal(r.text!.length, MAX_BODY_CHARS);
  assert.equal(r.textTruncated, true);
  assert.equal(r.htmlTruncated, undefined);
  assert.ok(r.text!.startsWith('0123456789'));
  assert.equal(r.sizeBytes, raw.length);
  assert.ok(grew < 30, `heap and buffers grew ${grew.toFixed(1)} MB`);
  // Normal mail is not flagged.
  const small = await parseMessage(bigTextMessage(10_000));
  assert.equal(small.textTruncated, undefined);
  assert.equal('textTruncated' in small, false);
});

test('attachment names are safe to save under; the sender\'s name stays as data', async () => {
  const cases: Array<[string, string]> = [
    ['../../../../tmp/x', 'x'],
    ['..\\..\\evil.bat', 'evil.bat'],
    ['report\r\nX-Evil: 1.pdf', 'reportX-Evil_ 1.pdf'],
    ['x/', 'x'],
    ['.htaccess', 'htaccess'],
    ['..', 'attachment'],
    ['', 'attachment'],
    ['CON.txt', '_CON.txt'],
    ['invoice\u202Efdp.exe', 'invoicefdp.exe'],
    ['a<b>:c"d|e?f*.txt', 'a_b__c_d_e_f_.txt'],
    ['trailing dots. . .', 'trailing dots'],
  ];
  for (const [given, want] of cases) assert.equal(safeFilename(given), want, JSON.stringify(given));
  assert.equal(safeFilename(undefined), 'attachment');
  const long = safeFilename(`${'ü'.repeat(300)}.pdf`);
  assert.ok(Buffer.byteLength(long) <= 200 && long.endsWith('.pdf'), long);

  const r = await parseMessage(namedAttachmentMessage('../../../../tmp/x'));
  assert.deepEqual(r.attachments, [{ filename: 'x', originalFilename: '../../../../tmp/x', contentType: 'application/octet-stream', size: 3 }]);
  const crlf = await parseMessage(namedAttachmentMessage('evil\r\nname.txt'));
  assert.equal(crlf.attachments[0]!.filename, 'evilname.txt');
  assert.ok(!/[\r\n]/.test(crlf.attachments[0]!.filename));
  const plain = await parseMessage(namedAttachmentMessage('invoice.pdf'));
  assert.deepEqual(plain.attachments, [{ filename: 'invoice.pdf', contentType: 'application/pdf', size: 3 }], 'a safe name is not repeated');
});

test('storeRaw writes the file as it reads, and past INBOUND_MAX_MESSAGE_MB keeps nothing and says so', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mailroom-store-raw-'));
  try {
    const target = { db: undefined as never, dataDir, rawInDatabase: false, maxMessageBytes: 2 * 1024 * 1024 };
    const fits = manyPartsMessage(1001, '<fits@hostile.example>');
    const kept = await storeRaw(streamOf(fits), target, 'srv', 'm1');
    assert.equal(kept.problem?.code, 'too_many_parts', 'quarantined');
    assert.deepEqual(kept.raw, { path: join('inbound', 'srv', 'm1.eml') });
    assert.ok(readFileSync(join(dataDir, 'inbound', 'srv', 'm1.eml')).equals(fits), 'the raw bytes of a quarantined message are kept');

    const big = bigTextMessage(5 * 1024 * 1024);
    const refused = await storeRaw(streamOf(big), target, 'srv', 'm2');
    assert.deepEqual(refused.raw, { none: true });
    assert.equal(refused.problem?.code, 'too_large');
    assert.equal(refused.problem?.message, "The message is 5 MB; Mailroom keeps messages up to 2 MB (INBOUND_MAX_MESSAGE_MB), so its raw content was not kept.");
    assert.equal(refused.sizeBytes, big.length);
    assert.equal(refused.subject, 'Big text', 'what was read of it is kept');
    assert.deepEqual(readdirSync(join(dataDir, 'inbound', 'srv')), ['m1.eml'], 'nothing of the refused message stays on disk');

    const destroyed = await storeRaw(streamOf(big), target, 'srv', 'm3', { overLimit: 'destroy' });
    assert.match(destroyed.problem!.message, /^The message is larger than 2 MB/);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('a webhook payload carries at most 256 KB of each body and 1 MB in all', () => {
  const base = { id: 'm', subject: 's', to: ['a@b.example'], cc: [], references: [], attachments: [], problem: null, rawUrl: 'http://x/raw', truncated: false, textTruncated: false, htmlTruncated: false };
  const small = webhookMessage({ ...base, text: 'hello', html: null });
  assert.equal(small.text, 'hello');
  assert.equal(small.truncated, false);
  const big = webhookMessage({ ...base, text: 'ä'.repeat(MAX_BODY_CHARS), html: '<p>'.repeat(300_000) });
  assert.ok(Buffer.byteLength(big.text as string) <= WEBHOOK_BODY_BYTES);
  assert.ok(Buffer.byteLength(big.html as string) <= WEBHOOK_BODY_BYTES);
  assert.equal(big.truncated, true);
  assert.equal(big.rawUrl, 'http://x/raw');
  const crowd = webhookMessage({ ...base, to: Array.from({ length: 50_000 }, (_, i) => `r${i}@example.test`), text: 'x'.repeat(200_000), html: null });
  assert.ok(Buffer.byteLength(JSON.stringify(crowd)) < WEBHOOK_PAYLOAD_BYTES);
  assert.equal((crowd.to as string[]).length, 100);
  assert.equal(crowd.text, null);
  assert.equal(crowd.listsTruncated, true);
});
