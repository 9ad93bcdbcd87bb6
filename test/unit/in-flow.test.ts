import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InFlow } from '../../src/outbox/in-flow.ts';

// Postfix's in_flow_delay for the outbox, on a clock the test moves: a mailbox over its backlog makes
// a new message wait until the count shows room or the delay has passed; nothing is refused; other
// mailboxes are not held; nothing is counted while a mailbox stays under its backlog.
const settle = () => new Promise((r) => setImmediate(r));

function rig(opts: { backlog?: number; delayMs?: number } = {}) {
  let clock = 0;
  const sleepers: Array<{ wake: number; done: () => void }> = [];
  const due = new Map<string, number>();
  const counts: string[][] = [];
  let failing = false;
  const flow = new InFlow({
    backlog: opts.backlog ?? 3,
    delayMs: opts.delayMs ?? 1000,
    pollMs: 50,
    now: () => clock,
    sleep: (ms) => new Promise<void>((done) => sleepers.push({ wake: clock + ms, done })),
    count: async (ids) => {
      counts.push([...ids].sort());
      if (failing) throw new Error('database down');
      return new Map(ids.map((id) => [id, due.get(id) ?? 0]));
    },
  });
  /** Moves the clock on by `ms` and wakes whoever's sleep has ended. */
  const advance = async (ms: number) => {
    await settle();
    clock += ms;
    for (const s of sleepers.splice(0).filter((x) => (x.wake <= clock ? (x.done(), false) : true))) sleepers.push(s);
    await settle();
  };
  /** Mailbox `id` filled to the backlog with `due` messages due: the next message for it, and whether it was let in yet. */
  const overBacklog = async (id: string, dueNow: number, backlog = opts.backlog ?? 3) => {
    for (let i = 0; i < backlog; i++) await flow.admit(id);
    due.set(id, dueNow);
    const next = { in: false, done: Promise.resolve() };
    next.done = flow.admit(id).then(() => void (next.in = true));
    return next;
  };
  return { flow, due, counts, advance, overBacklog, now: () => clock, fail: () => (failing = true) };
}

test('under its backlog a mailbox\'s messages are let in at once, with nothing counted', async () => {
  const r = rig();
  for (let i = 0; i < 3; i++) await r.flow.admit('a');
  assert.equal(r.now(), 0);
  assert.deepEqual(r.counts, []);
});

test('over its backlog a message waits until the count shows room, and only as long as it takes', async () => {
  const r = rig();
  const fourth = await r.overBacklog('a', 5);
  for (let i = 0; i < 4; i++) await r.advance(50);
  assert.equal(fourth.in, false, 'held while 5 are due');
  r.due.set('a', 1);
  await r.advance(50);
  await fourth.done;
  assert.equal(fourth.in, true);
  assert.equal(r.now(), 250, 'let in at the first count after the room came');
  assert.ok(r.counts.every((ids) => ids.length === 1 && ids[0] === 'a'), 'only the waiting mailbox is counted');
});

test('another mailbox is not held while one is over its backlog', async () => {
  const r = rig();
  const held = await r.overBacklog('a', 50);
  await r.flow.admit('b');
  assert.equal(r.now(), 0, 'b went through at once');
  assert.equal(held.in, false);
  while (!held.in) await r.advance(50);
  await held.done;
});

test('a message is never refused: after the delay it is let in though the backlog stays', async () => {
  const r = rig({ delayMs: 400 });
  const next = await r.overBacklog('a', 1000);
  while (!next.in && r.now() < 2000) await r.advance(50);
  await next.done;
  assert.equal(r.now(), 400);
});

test('waiting messages share one count per poll, and as many are let in as there is room for', async () => {
  const r = rig({ backlog: 10 });
  for (let i = 0; i < 10; i++) await r.flow.admit('a');
  r.due.set('a', 10);
  const order: number[] = [];
  const waiting = Array.from({ length: 6 }, (_, i) => r.flow.admit('a').then(() => order.push(i)));
  for (let i = 0; i < 3; i++) await r.advance(50);
  assert.equal(order.length, 0);
  assert.ok(r.counts.length >= 2 && r.counts.length <= 4, `${r.counts.length} counts in 150 ms: one at the start and at most one per poll, not one per waiting message`);
  // Room for 3: three are let in at the next count, the others wait for room again.
  r.due.set('a', 7);
  await r.advance(50);
  assert.equal(order.length, 3);
  r.due.set('a', 0);
  await r.advance(50);
  await Promise.all(waiting);
  assert.deepEqual(order.sort(), [0, 1, 2, 3, 4, 5]);
});

test('a count that fails lets the waiting messages in rather than holding mail on a database error', async () => {
  const r = rig();
  for (let i = 0; i < 3; i++) await r.flow.admit('a');
  r.fail();
  await r.flow.admit('a');
  assert.equal(r.now(), 0, 'not held');
});

test('delay 0 never waits and never counts', async () => {
  const r = rig({ delayMs: 0 });
  r.due.set('a', 1_000_000);
  for (let i = 0; i < 100; i++) await r.flow.admit('a');
  assert.equal(r.now(), 0);
  assert.deepEqual(r.counts, []);
});
