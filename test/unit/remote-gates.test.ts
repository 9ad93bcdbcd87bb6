import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { ConnectionGates } from '../../src/smtp/connection-gate.ts';
import { RemoteGates, serveSlots, type SlotReply, type SlotRequest } from '../../src/smtp/remote-gates.ts';

// The gates of a process whose outbox runs on its own thread: the owner (the delivery thread's
// gates) counts every slot, the other side asks it over a message port, as the threads do.
const tick = () => new Promise((r) => setTimeout(r, 20));

function wired() {
  const channel = new MessageChannel();
  let owner = new ConnectionGates();
  const serve = () => serveSlots(owner, (r) => channel.port2.postMessage(r));
  let handle = serve();
  channel.port2.on('message', (r: SlotRequest) => handle(r));
  const remote = new RemoteGates({
    send: (r) => channel.port1.postMessage(r),
    holders: async (instance) => [...(await owner.holders(instance))],
  });
  channel.port1.on('message', (r: SlotReply) => remote.received(r));
  return {
    remote,
    owner: () => owner,
    /** The owner thread started again: new gates, counts at zero. */
    restart() {
      owner = new ConnectionGates();
      handle = serve();
      remote.ownerRestarted();
    },
    close: () => channel.port1.close(),
  };
}

test('a slot taken on the other side counts in the owner\'s gate: one limit over both threads', async (t) => {
  const w = wired();
  t.after(w.close);
  const release = await w.remote.for('box', 2).acquire();
  const pool = w.owner().for('box', 2);
  const own = await pool.tryAcquire();
  assert.ok(own, 'the second slot');
  assert.equal(await pool.tryAcquire(), null, 'the limit of 2 counts the other side\'s slot');
  assert.deepEqual(await w.remote.holders('me'), new Map([['box', { me: 2 }]]));
  assert.equal(await w.remote.for('box', 2).tryAcquire(), null);
  release();
  await tick();
  assert.ok(await pool.tryAcquire(), 'given back');
});

test('waiting for a slot asks the owner\'s pool to give one up, and is served when it does', async (t) => {
  const w = wired();
  t.after(w.close);
  const pool = w.owner().for('box', 1);
  const held = (await pool.tryAcquire())!;
  let pressure = 0;
  pool.on('pressure', () => pressure++);
  let got = false;
  const waiting = w.remote.for('box', 1).acquire().then((r) => ((got = true), r));
  await tick();
  assert.equal(got, false);
  assert.equal(pool.wanted, true, 'the pool sees someone waiting');
  assert.ok(pressure >= 1);
  held();
  const release = await waiting;
  assert.equal(await pool.tryAcquire(), null, 'the waiter holds it');
  release();
  await tick();
  assert.equal(pool.wanted, false);
  assert.ok(await pool.tryAcquire());
});

test('an aborted wait is withdrawn: the slot it would have had stays free', async (t) => {
  const w = wired();
  t.after(w.close);
  const pool = w.owner().for('box', 1);
  const held = (await pool.tryAcquire())!;
  const abort = new AbortController();
  const waiting = w.remote.for('box', 1).acquire(abort.signal);
  await tick();
  abort.abort(new Error('test connection timed out'));
  await assert.rejects(waiting, /test connection timed out/);
  await tick();
  held();
  await tick();
  assert.equal(pool.wanted, false);
  assert.ok(await pool.tryAcquire(), 'nobody took the freed slot');
});

test('after the owner thread restarts, the slots held on the other side are counted again', async (t) => {
  const w = wired();
  t.after(w.close);
  const release = await w.remote.for('box', 1).acquire();
  w.restart();
  await tick();
  assert.equal(await w.owner().for('box', 1).tryAcquire(), null, 'the new owner counts the slot still in use');
  release();
  await tick();
  assert.ok(await w.owner().for('box', 1).tryAcquire());
});
