import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { localGate } from '../../src/smtp/connection-gate.ts';
import { PooledSender } from '../../src/smtp/smtp-pool.ts';
import { type SmtpSink, startSmtpSink } from '../peers/smtp-sink.ts';

// A server saved while mail is going out (a certificate roll saves it too) gets a new pool for the next
// messages; the old one must still send what it holds, not fail it.
let sink: SmtpSink;

before(async () => {
  sink = await startSmtpSink();
});

after(async () => {
  await sink?.close();
});

const message = (i: number) => ({ from: 'sales@example.test', to: ['customer@remote.example'], subject: `Queued ${i}`, text: `Body ${i}` });

test('a retired pool sends every message it holds, then closes its connections', async () => {
  const gate = localGate(2);
  const pool = new PooledSender({ host: '127.0.0.1', port: sink.port, security: 'none', auth: 'none' }, 'sales@example.test', async () => ({ kind: 'none' }), 2, gate);
  // More messages than connections: most wait in the pool's queue when it is retired.
  const sends = Array.from({ length: 12 }, (_, i) => pool.send(message(i)));
  pool.retire();
  const results = await Promise.allSettled(sends);
  assert.deepEqual(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)), []);
  for (let i = 0; i < 12; i++) await sink.waitForMessage((m) => m.raw.toString('latin1').includes(`Subject: Queued ${i}\r\n`), 10_000);
  // Both connections were given back to the mailbox's gate once the queue was empty.
  const slots = await Promise.all([gate.tryAcquire(), gate.tryAcquire()]);
  assert.ok(slots.every((s) => typeof s === 'function'), 'the retired pool holds no connection');
});

test('a closed pool (shutdown) still fails what it holds at once', async () => {
  const pool = new PooledSender({ host: '127.0.0.1', port: sink.port, security: 'none', auth: 'none' }, 'sales@example.test', async () => ({ kind: 'none' }), 1, localGate(1));
  const sends = Array.from({ length: 4 }, (_, i) => pool.send(message(100 + i)));
  pool.close();
  const results = await Promise.allSettled(sends);
  assert.ok(results.some((r) => r.status === 'rejected'), 'queued messages are failed by close');
});
