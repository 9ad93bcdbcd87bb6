import assert from 'node:assert/strict';
import { test } from 'node:test';
import { perTurn } from '../../src/storage/per-turn.ts';

test('what arrives in one event-loop turn is flushed together, each caller gets its own answer; the next turn is a new batch', async () => {
  const batches: number[][] = [];
  const double = perTurn<number, number>(async (xs) => {
    batches.push(xs);
    return xs.map((x) => 2 * x);
  });
  assert.deepEqual(await Promise.all([double(1), double(2), double(3)]), [2, 4, 6]);
  assert.equal(await double(4), 8);
  assert.deepEqual(batches, [[1, 2, 3], [4]]);
});

test('a failed flush fails every caller of its batch, not the next batch', async () => {
  let fail = true;
  const write = perTurn<string>(async () => {
    if (fail) throw new Error('disk full');
  });
  const results = await Promise.allSettled([write('a'), write('b')]);
  assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
  fail = false;
  assert.equal(await write('c'), undefined);
});

test('gatherMs: what arrives within the window of the first item goes in its batch, across turns; later items start the next', async () => {
  const batches: string[][] = [];
  const stamp = perTurn<string>(async (xs) => void batches.push(xs), { gatherMs: 30 });
  const first = stamp('a');
  await new Promise((r) => setImmediate(r));
  const second = stamp('b');
  await Promise.all([first, second]);
  assert.deepEqual(batches, [['a', 'b']], 'an item a turn later joins the batch');
  await new Promise((r) => setTimeout(r, 40));
  await stamp('c');
  assert.deepEqual(batches, [['a', 'b'], ['c']]);
});
