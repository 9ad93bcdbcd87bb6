import assert from 'node:assert/strict';
import { test } from 'node:test';
import { uidSet } from '../../src/inbound/mailbox-fetcher.ts';
import { parseMessage } from '../../src/inbound/parse-message.ts';
import { ParsePool } from '../../src/inbound/parse-pool.ts';

const message = (i: number) =>
  Buffer.from(
    [
      'From: "Jörg Müller" <joerg@fabrikam.example>',
      'To: ap@contoso.example, "Billing" <billing@contoso.example>',
      `Subject: =?UTF-8?B?${Buffer.from(`Rechnung Nr. ${i} – Grüße`).toString('base64')}?=`,
      'Date: Sat, 28 Nov 2026 09:00:00 +0000',
      `Message-ID: <inv-${i}@fabrikam.example>`,
      'In-Reply-To: <order-1@contoso.example>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      `Gr=C3=BC=C3=9Fe, invoice ${i} attached.`,
      '--b1',
      'Content-Type: application/pdf; name="inv.pdf"',
      'Content-Disposition: attachment; filename="inv.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.alloc(300 + i, 7).toString('base64'),
      '--b1--',
      '',
    ].join('\r\n'),
  );

test('uidSet packs runs of consecutive UIDs into ranges', () => {
  assert.equal(uidSet([]), '');
  assert.equal(uidSet([7]), '7');
  assert.equal(uidSet([1, 2, 3, 5, 8, 9, 10, 12]), '1:3,5,8:10,12');
  assert.equal(uidSet([4, 6]), '4,6');
});

test('a parse thread returns exactly what parsing on the calling thread returns', async () => {
  const pool = new ParsePool({ threads: 2 });
  try {
    const sources = Array.from({ length: 20 }, (_, i) => message(i));
    const threaded = await Promise.all(sources.map((s) => pool.parse(s)));
    const inline = await Promise.all(sources.map((s) => parseMessage(s)));
    assert.deepEqual(threaded, inline);
    assert.equal(threaded[3]!.subject, 'Rechnung Nr. 3 – Grüße');
    assert.equal(threaded[3]!.from, 'Jörg Müller <joerg@fabrikam.example>');
    assert.deepEqual(threaded[3]!.to, ['ap@contoso.example', 'Billing <billing@contoso.example>']);
    assert.equal(threaded[3]!.inReplyTo, '<order-1@contoso.example>');
    assert.equal(threaded[3]!.text?.trim(), 'Grüße, invoice 3 attached.');
    assert.deepEqual(threaded[3]!.attachments, [{ filename: 'inv.pdf', contentType: 'application/pdf', size: 303 }]);
    assert.equal(threaded[3]!.sizeBytes, sources[3]!.length);
  } finally {
    await pool.close();
  }
});

test('with threads: 0 it parses on the calling thread', async () => {
  const pool = new ParsePool({ threads: 0 });
  assert.deepEqual(await pool.parse(message(1)), await parseMessage(message(1)));
  pool.warm();
  await pool.parse(message(2));
  assert.equal((pool as unknown as { workers: unknown[] }).workers.length, 0, 'no thread was started');
  await pool.close();
});

test('a parse thread that dies gives its message back as unreadable, and the jobs behind it get a new thread', async () => {
  const pool = new ParsePool({ threads: 1 });
  try {
    await pool.parse(message(0));
    const running = pool.parse(message(1));
    const queued = pool.parse(message(2));
    const workers = (pool as unknown as { workers: Array<{ worker: { terminate(): Promise<number> } }> }).workers;
    assert.equal(workers.length, 1);
    await workers[0]!.worker.terminate();
    const r = await running;
    assert.equal(r.problem?.code, 'malformed');
    assert.match(r.problem!.message, /stopped Mailroom's parser \(exit code 1\); the raw message is kept/);
    assert.equal(r.sizeBytes, message(1).length);
    assert.equal(r.sha256, (await parseMessage(message(1))).sha256, 'the same message gets the same dedupe key next time');
    assert.equal((await queued).messageId, '<inv-2@fabrikam.example>');
    assert.equal((await pool.parse(message(3))).messageId, '<inv-3@fabrikam.example>');
  } finally {
    await pool.close();
  }
});

test('a message that parses longer than the deadline comes back unreadable; the pool goes on', async () => {
  const pool = new ParsePool({ threads: 1, timeoutMs: 150 });
  // 1.8 MB of HTML and no text part: converting it into text takes about 0.6 s.
  const slow = Buffer.from('From: a@b.example\r\nSubject: slow\r\nContent-Type: text/html\r\n\r\n' + '<div><p>word <b>bold</b> <a href="http://x.example/">link</a></p></div>\r\n'.repeat(25_000));
  try {
    assert.equal((await pool.parse(message(0))).messageId, '<inv-0@fabrikam.example>', 'the thread start does not count');
    const r = await pool.parse(slow);
    assert.equal(r.problem?.code, 'malformed');
    assert.match(r.problem!.message, /took longer than 0\.15 s/);
    assert.equal((await pool.parse(message(4))).messageId, '<inv-4@fabrikam.example>');
  } finally {
    await pool.close();
  }
});

test('warm() starts the threads before the first job', async () => {
  const pool = new ParsePool({ threads: 2, idleMs: 10_000 });
  try {
    const workers = (pool as unknown as { workers: unknown[] }).workers;
    assert.equal(workers.length, 0);
    pool.warm();
    assert.equal(workers.length, 2);
    pool.warm();
    assert.equal(workers.length, 2);
    assert.equal((await pool.parse(message(9))).messageId, '<inv-9@fabrikam.example>');
  } finally {
    await pool.close();
  }
});

test('an idle thread stops by itself and comes back on demand', async () => {
  const pool = new ParsePool({ threads: 1, idleMs: 50 });
  try {
    await pool.parse(message(0));
    const workers = (pool as unknown as { workers: unknown[] }).workers;
    assert.equal(workers.length, 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(workers.length, 0);
    assert.equal((await pool.parse(message(5))).messageId, '<inv-5@fabrikam.example>');
  } finally {
    await pool.close();
  }
});
