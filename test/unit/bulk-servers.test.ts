import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MailroomError } from '../../src/errors/errors.ts';
import { BULK_CONCURRENCY, runBulk } from '../../src/servers/bulk-servers.ts';

test('runBulk works on at most BULK_CONCURRENCY servers at once and answers in the order asked, each id once', async () => {
  let running = 0;
  let peak = 0;
  const ids = Array.from({ length: 30 }, (_, i) => `s${i}`);
  const results = await runBulk([...ids, 's3'], async (id) => {
    running++;
    peak = Math.max(peak, running);
    // Later ids finish first: the answer still follows the order asked.
    await new Promise((r) => setTimeout(r, 40 - Number(id.slice(1))));
    running--;
    return { ok: true, code: null, message: `done ${id}` };
  });
  assert.equal(peak, BULK_CONCURRENCY);
  assert.equal(BULK_CONCURRENCY, 8);
  assert.deepEqual(results.map((r) => r.id), ids);
  assert.deepEqual(results.map((r) => r.message), ids.map((id) => `done ${id}`));
});

test('runBulk makes a Mailroom error that server\'s result and an unexpected one MR_INTERNAL, and goes on with the others', async () => {
  const unexpected: string[] = [];
  const results = await runBulk(
    ['a', 'b', 'c'],
    async (id) => {
      if (id === 'a') throw new MailroomError('MR_NOT_FOUND', 'Mail server a does not exist.', { fix: 'Look it up' });
      if (id === 'b') throw new TypeError('boom');
      return { ok: true, code: null, message: 'fine' };
    },
    { onUnexpected: (id) => unexpected.push(id) },
  );
  assert.deepEqual(results[0], { id: 'a', ok: false, code: 'MR_NOT_FOUND', message: 'Mail server a does not exist.', fix: 'Look it up' });
  assert.equal(results[1]!.code, 'MR_INTERNAL');
  assert.doesNotMatch(results[1]!.message, /boom/, 'the stack goes to the log, not to the answer');
  assert.deepEqual(unexpected, ['b']);
  assert.deepEqual(results[2], { id: 'c', ok: true, code: null, message: 'fine' });
});
