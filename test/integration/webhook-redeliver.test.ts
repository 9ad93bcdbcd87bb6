import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { importInboundMessages } from '../../src/storage/inbound-store.ts';
import { loginAgent, startTestMailroom, type Agent, type TestMailroom } from '../helpers/test-mailroom.ts';

// A receiver that fails twice and then accepts: the delivery log must keep every attempt, the two
// failures and the redelivery that succeeded, not show "1 attempt, Delivered".
let t: TestMailroom;
let agent: Agent;
let receiver: Server;
const answers = [500, 503, 200];
const seen: string[] = [];
const SLOW_MS = 3000;

before(async () => {
  receiver = createServer((req, res) => {
    const id = String(req.headers['x-mailroom-delivery']);
    seen.push(id);
    // One receiver answer that takes its time: the other deliveries must not wait for it.
    if (id === 'delivery-slow') setTimeout(() => res.writeHead(200).end(), SLOW_MS);
    else res.writeHead(answers.shift() ?? 200).end();
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  t = await startTestMailroom({ WEBHOOK_MAX_ATTEMPTS: '2', WEBHOOK_RETRY_BASE_SECONDS: '0.01' });
  agent = await loginAgent(t);
});
after(async () => {
  await t?.close();
  receiver?.close();
});

async function settled(deliveryId: string, state: string) {
  for (let i = 0; i < 400; i++) {
    t.mr.webhooks.kick();
    const d = (await t.mr.database.db.selectFrom('webhook_deliveries').select('state').where('id', '=', deliveryId).executeTakeFirst())!;
    if (d.state === state) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`delivery ${deliveryId} never became ${state}`);
}

test('fail twice, redeliver, succeed: the delivery log lists all three attempts', async () => {
  const hook = await agent.request('POST', '/api/v1/webhooks', { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/erp/hook` });
  assert.equal(hook.status, 201, hook.body);
  const inc = await agent.request('POST', '/api/v1/incoming-servers', { name: 'Inbox', username: 'inbox@contoso.example', clientId: '3f0c2d1e-5b6a-4c7d-8e9f-0a1b2c3d4e5f', clientSecret: 'Xy8Q~s3cr3t.Value-Only_Shown~Once1234567', active: false, afterFetch: 'leave' });
  assert.equal(inc.status, 201, inc.body);
  const serverId = inc.json.id as string;
  await importInboundMessages(t.mr.database.db, { serverId, folder: 'INBOX', uidValidity: '1', lastUid: 1 }, [{
    id: 'in-1', serverId, folder: 'INBOX', uidValidity: '1', uid: 1, dedupeKey: 'dedupe-in-1', messageId: '<in-1@sender.example>',
    from: 'sender@sender.example', to: ['inbox@contoso.example'], cc: [], subject: 'Invoice 42', date: null, inReplyTo: null, references: [],
    text: 'hello', html: null, attachments: [], sizeBytes: 40, raw: { mime: Buffer.from('Subject: Invoice 42\r\n\r\nhello\r\n') }, outboxMessageId: null, afterFetchPending: false,
  }], [hook.json.id], () => 'delivery-1', new Date());

  await settled('delivery-1', 'failed');
  const failed = (await agent.request('GET', `/api/v1/webhooks/${hook.json.id}/deliveries`)).json.items;
  assert.equal(failed.length, 1);
  assert.equal(failed[0].attempts, 2);
  assert.deepEqual(failed[0].attemptLog.map((a: { status: number | null }) => a.status), [500, 503]);

  const r = await agent.request('POST', '/api/v1/webhook-deliveries/delivery-1/redeliver');
  assert.equal(r.status, 200, r.body);
  await settled('delivery-1', 'delivered');

  const [d] = (await agent.request('GET', `/api/v1/webhooks/${hook.json.id}/deliveries`)).json.items;
  assert.equal(d.state, 'delivered');
  assert.equal(d.attempts, 3, 'the redelivery is a third attempt, the two failures stay counted');
  assert.deepEqual(d.attemptLog.map((a: { attempt: number; status: number | null; outcome: string; redelivery: boolean }) => [a.attempt, a.status, a.outcome, a.redelivery]), [
    [1, 500, 'retry', false],
    [2, 503, 'failed', false],
    [3, 200, 'delivered', true],
  ]);
  assert.match(d.attemptLog[0].error, /HTTP 500/);
  assert.ok(d.attemptLog.every((a: { at: string }) => !Number.isNaN(Date.parse(a.at))));
  assert.deepEqual(seen, ['delivery-1', 'delivery-1', 'delivery-1']);
});

test('a delivery whose payload cannot be built is retried and then failed with the reason, and the others of its round still go out', async () => {
  const hook = (await agent.request('GET', '/api/v1/webhooks')).json.items[0];
  const serverId = (await agent.request('GET', '/api/v1/incoming-servers')).json.items[0].id as string;
  seen.length = 0;
  const ids = ['delivery-in-2', 'delivery-in-3'];
  await importInboundMessages(t.mr.database.db, { serverId, folder: 'INBOX', uidValidity: '1', lastUid: 3 }, [2, 3].map((uid) => ({
    id: `in-${uid}`, serverId, folder: 'INBOX', uidValidity: '1', uid, dedupeKey: `dedupe-in-${uid}`, messageId: `<in-${uid}@sender.example>`,
    from: 'sender@sender.example', to: ['inbox@contoso.example'], cc: [], subject: `Invoice ${uid}`, date: null, inReplyTo: null, references: [],
    text: 'hello', html: null, attachments: [], sizeBytes: 40, raw: { mime: Buffer.from(`Subject: Invoice ${uid}\r\n\r\nhello\r\n`) }, outboxMessageId: null, afterFetchPending: false,
  })), [hook.id], () => ids.shift()!, new Date());
  // An event about a report that is gone: its payload cannot be built.
  await t.mr.database.db.updateTable('webhook_deliveries').set({ event: 'message.bounced', report_id: 'no-such-report' }).where('id', '=', 'delivery-in-2').execute();
  await settled('delivery-in-3', 'delivered');
  await settled('delivery-in-2', 'failed');
  const d = (await t.mr.database.db.selectFrom('webhook_deliveries').select(['last_error', 'attempts']).where('id', '=', 'delivery-in-2').executeTakeFirst())!;
  assert.equal(Number(d.attempts), 2);
  assert.match(d.last_error!, /could not build this delivery's payload/);
  assert.deepEqual(seen, ['delivery-in-3'], 'nothing was sent for the unbuildable one');
  assert.ok(t.logs.some((l) => l.includes('"event":"webhook.payload_failed"')), 'the cause is in the log');
});

test('a receiver slow to answer one delivery holds one slot, not the deliveries queued after it', async () => {
  const hook = (await agent.request('GET', '/api/v1/webhooks')).json.items[0];
  const serverId = (await agent.request('GET', '/api/v1/incoming-servers')).json.items[0].id as string;
  const ids = ['delivery-slow', ...Array.from({ length: 40 }, (_, i) => `delivery-fast-${i}`)];
  const names = [...ids];
  await importInboundMessages(t.mr.database.db, { serverId, folder: 'INBOX', uidValidity: '1', lastUid: 100 + ids.length }, ids.map((_, k) => ({
    id: `in-w${k}`, serverId, folder: 'INBOX', uidValidity: '1', uid: 100 + k, dedupeKey: `dedupe-in-w${k}`, messageId: `<in-w${k}@sender.example>`,
    from: 'sender@sender.example', to: ['inbox@contoso.example'], cc: [], subject: `Order ${k}`, date: null, inReplyTo: null, references: [],
    text: 'hello', html: null, attachments: [], sizeBytes: 40, raw: { mime: Buffer.from(`Subject: Order ${k}\r\n\r\nhello\r\n`) }, outboxMessageId: null, afterFetchPending: false,
  })), [hook.id], () => names.shift()!, new Date());
  const t0 = Date.now();
  t.mr.webhooks.kick();
  for (const id of ids.slice(1)) await settled(id, 'delivered');
  // In rounds of 16, the 24 deliveries after the slow one's round waited for its answer.
  const ms = Date.now() - t0;
  assert.ok(ms < SLOW_MS - 500, `the other 40 deliveries took ${ms} ms beside a receiver answer of ${SLOW_MS} ms`);
  await settled('delivery-slow', 'delivered');
});
