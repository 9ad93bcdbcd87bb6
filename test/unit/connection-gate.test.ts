import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConnectionGates } from '../../src/smtp/connection-gate.ts';

// One instance's gate (SQLite): the count, the waiting caller, the signals a pool listens to. The
// cluster's gate is tested with real instances in test/e2e/cluster-connections.test.ts.
const tick = () => new Promise((r) => setImmediate(r));

test('at most the limit at once; a freed slot can be taken again', async () => {
  const gate = new ConnectionGates().for('s', 2);
  const a = await gate.tryAcquire();
  const b = await gate.tryAcquire();
  assert.ok(a && b);
  assert.equal(await gate.tryAcquire(), null);
  a();
  a(); // a second release of the same slot frees nothing more
  const c = await gate.tryAcquire();
  assert.ok(c);
  assert.equal(await gate.tryAcquire(), null);
});

test('a waiting caller asks holders to give a slot up, is served first, and then wanted clears', async () => {
  const gate = new ConnectionGates().for('s', 1);
  const held = (await gate.tryAcquire())!;
  let pressure = 0;
  gate.on('pressure', () => pressure++);
  let got: (() => void) | undefined;
  const waiting = gate.acquire().then((r) => (got = r));
  await tick();
  assert.equal(gate.wanted, true);
  assert.ok(pressure >= 1, 'holders were asked');
  held();
  // The freed slot is the waiter's: a pool asking at the same moment gets none.
  assert.equal(await gate.tryAcquire(), null);
  await waiting;
  assert.ok(got);
  assert.equal(gate.wanted, false);
  assert.equal(await gate.tryAcquire(), null, 'the waiter holds the one slot');
  got();
  assert.ok(await gate.tryAcquire());
});

test('an aborted wait rejects with the reason and stops counting as wanted', async () => {
  const gate = new ConnectionGates().for('s', 1);
  const held = (await gate.tryAcquire())!;
  const ac = new AbortController();
  const waiting = gate.acquire(ac.signal);
  await tick();
  assert.equal(gate.wanted, true);
  ac.abort(new Error('the connection pool was closed'));
  await assert.rejects(waiting, /the connection pool was closed/);
  assert.equal(gate.wanted, false);
  held();
  assert.ok(await gate.tryAcquire(), 'the slot was not handed to the aborted waiter');
});

test('a raised limit lets a waiter in at once; no limit is no count', async () => {
  const gates = new ConnectionGates();
  const gate = gates.for('s', 1);
  await gate.tryAcquire();
  const waiting = gate.acquire();
  await tick();
  assert.equal(gates.for('s', 2), gate, 'the same gate, its limit changed');
  assert.equal(typeof (await waiting), 'function');
  const open = gates.for('relay', null);
  const slots = await Promise.all(Array.from({ length: 50 }, () => open.tryAcquire()));
  assert.ok(slots.every(Boolean));
});

test('with() holds a slot for the call and gives it back when the call fails', async () => {
  const gates = new ConnectionGates();
  await assert.rejects(gates.with('s', 1, async () => {
    assert.equal(await gates.for('s', 1).tryAcquire(), null, 'held during the call');
    throw new Error('535 5.7.3');
  }), /535/);
  assert.ok(await gates.for('s', 1).tryAcquire(), 'released after it');
});
