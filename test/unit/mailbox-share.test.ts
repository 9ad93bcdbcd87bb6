import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mailboxShare } from '../../src/inbound/mailbox-share.ts';

// The share-out rule alone, and a simulation of instances applying it at their own ticks in any
// order (each seeing the leases as the others left them), as IncomingServerService.tick does.
test('the share of each instance: the ceiling, or the floor while another is short', () => {
  const held = new Map([['a', 4], ['b', 4], ['c', 2]]);
  const a = mailboxShare(10, 'a', ['a', 'b', 'c'], held, 0);
  assert.equal(a.surplus, 1, '4 / 4 / 2 with nothing free: one of the fours hands one over');
  assert.equal(a.mayTake(3), false, 'and does not take it back while c is short');
  const c = mailboxShare(10, 'c', ['a', 'b', 'c'], held, 1);
  assert.equal(c.mayTake(2), true);
  assert.equal(mailboxShare(10, 'a', ['a'], new Map([['a', 10]]), 0).surplus, 0, 'one instance holds them all');
  assert.equal(mailboxShare(10, 'a', ['a', 'b'], new Map([['a', 10]]), 0).surplus, 5, 'a second instance: half are handed over at once');
  assert.equal(mailboxShare(0, 'a', ['a', 'b'], new Map(), 0).mayTake(0), false);
});

function simulate(mailboxes: number, instances: string[], seed: number, start: Map<number, string> = new Map()) {
  let x = seed;
  const random = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const owner = new Map(start);
  let moves = 0;
  for (let round = 0; round < 200; round++) {
    const me = instances[Math.floor(random() * instances.length)]!;
    const held = new Map<string, number>();
    for (const h of owner.values()) held.set(h, (held.get(h) ?? 0) + 1);
    const free = mailboxes - owner.size;
    const share = mailboxShare(mailboxes, me, instances, held, free);
    let mine = held.get(me) ?? 0;
    let surplus = share.surplus;
    for (let m = 0; m < mailboxes; m++) {
      const o = owner.get(m);
      if (o === me && surplus > 0) {
        owner.delete(m);
        surplus--;
        mine--;
        moves++;
      } else if (o === undefined && share.mayTake(mine)) {
        owner.set(m, me);
        mine++;
      }
    }
  }
  const counts = instances.map((i) => [...owner.values()].filter((o) => o === i).length);
  return { counts, taken: owner.size, moves };
}

test('instances ticking in any order settle with every mailbox fetched and at most one apart, without moving mailboxes back and forth', () => {
  for (const [mailboxes, n] of [[10, 3], [6, 3], [7, 2], [2, 3], [25, 4], [1, 2]] as const) {
    const instances = Array.from({ length: n }, (_, i) => `i${i}`);
    for (let seed = 1; seed <= 20; seed++) {
      const r = simulate(mailboxes, instances, seed);
      assert.equal(r.taken, mailboxes, `${mailboxes} over ${n}, seed ${seed}: all fetched`);
      assert.ok(Math.max(...r.counts) - Math.min(...r.counts) <= 1, `${mailboxes} over ${n}, seed ${seed}: ${r.counts.join(' / ')}`);
      assert.ok(r.moves <= mailboxes, `${mailboxes} over ${n}, seed ${seed}: ${r.moves} hand-overs`);
    }
  }
});

test('a new instance beside one that holds everything gets its share handed over', () => {
  const start = new Map(Array.from({ length: 10 }, (_, m) => [m, 'old'] as const));
  const r = simulate(10, ['old', 'new1', 'new2'], 7, start);
  assert.deepEqual([...r.counts].sort(), [3, 3, 4]);
  assert.ok(r.moves <= 7, `${r.moves} hand-overs`);
});
