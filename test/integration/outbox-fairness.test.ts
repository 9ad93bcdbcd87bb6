import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { type SmtpSink, startSmtpSink } from '../peers/smtp-sink.ts';
import { startTcpProxy, type TcpProxy } from '../peers/tcp-proxy.ts';
import { type Agent, loginAgent, startTestMailroom, type TestMailroom } from '../helpers/test-mailroom.ts';

// The outbox is fair across mailboxes: one mailbox with a long queue and a slow remote end holds at
// most its own connections' worth of the worker, never the slots the other mailboxes need; and the
// instance's open SMTP connections stay under SMTP_MAX_OPEN_CONNECTIONS. Real SMTP: a sink on this
// machine (a relay without AUTH), reached through a TCP forwarder that counts the connections.
const SLOW_MS = 1000;
const T = { timeout: 60_000 };

let sink: SmtpSink;
let proxy: TcpProxy;
let open = 0;
let peakOpen = 0;
let sinking = 0;
let peakSinking = 0;
let hugeBeside = -1;

before(async () => {
  // Every message to slow@ takes a second to be acknowledged: a remote end that crawls.
  sink = await startSmtpSink({
    deliver: async (rcpt, raw) => {
      if (rcpt.startsWith('slow@')) await new Promise((r) => setTimeout(r, SLOW_MS));
      // Nothing is acknowledged for 5 s: a backlog that does not drain while a test looks.
      if (rcpt.startsWith('stuck@')) await new Promise((r) => setTimeout(r, 5000));
      if (rcpt.startsWith('big@')) {
        // Messages being accepted at once, each held a moment: the sender's in-flight bytes show.
        sinking++;
        if (raw.length > 1024 * 1024) hugeBeside = sinking - 1;
        else peakSinking = Math.max(peakSinking, sinking);
        await new Promise((r) => setTimeout(r, 150));
        sinking--;
      }
    },
  });
  proxy = await startTcpProxy(sink.port, (c: Socket, u: Socket) => {
    open++;
    peakOpen = Math.max(peakOpen, open);
    c.once('close', () => open--);
    c.pipe(u).pipe(c);
  });
});

after(async () => {
  await proxy.close();
  await sink.close();
});

async function withMailroom(env: Record<string, string>, fn: (t: TestMailroom, api: Agent) => Promise<void>) {
  const t = await startTestMailroom({ INBOUND_WORKER: 'off', OUTBOX_POLL_SECONDS: '0.05', LOG_LEVEL: 'warn', ...env });
  try {
    await fn(t, await loginAgent(t));
  } finally {
    await t.close();
  }
}

async function addServer(api: Agent, mailbox: string, limits: Record<string, number | null> = {}): Promise<string> {
  const s = await api.request('POST', '/api/v1/mail-servers', {
    name: mailbox,
    authType: 'none',
    username: mailbox,
    smtpHost: '127.0.0.1',
    smtpPort: proxy.port,
    smtpSecurity: 'none',
    fromFilter: mailbox,
    maxConnections: 3,
    messagesPerMinute: 30,
    ...limits,
  });
  assert.equal(s.status, 201, s.body);
  return s.json.id as string;
}

async function queue(t: TestMailroom, from: string, to: string, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i++) await t.mr.outbox.enqueue({ from, to: [to], subject: `${tag} ${i}`, text: 'x' });
}

const deliveredFrom = (from: string) => sink.messages.filter((m) => m.from === from).length;

async function until(what: string, cond: () => boolean, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - t0;
}

test('a paced mailbox with 100 queued for a slow remote end does not delay 20 other mailboxes with one message each', T, async () => {
  await withMailroom({}, async (t, api) => {
    const busy = 'busy@example.test';
    await addServer(api, busy);
    const others = Array.from({ length: 20 }, (_, i) => `clerk${i}@example.test`);
    for (const o of others) await addServer(api, o);
    // The busy mailbox's queue comes first: oldest messages, first server in the list.
    await queue(t, busy, 'slow@remote.example', 100, 'busy');
    for (const o of others) await queue(t, o, 'fast@remote.example', 1, 'other');
    t.mr.worker.start();
    const ms = await until('the 20 other mailboxes delivered', () => others.every((o) => deliveredFrom(o) === 1), 15_000);
    // Before the worker capped a mailbox at its connections, the busy one took every slot of the
    // worker (16) and the others waited for its 3 connections to work through them: 5 s and more.
    assert.ok(ms < 2500, `the other mailboxes waited ${ms} ms`);
    // The busy one still goes, at its own pace.
    await until('the busy mailbox delivering too', () => deliveredFrom(busy) >= 3, 10_000);
  });
});

test('round robin without limits: one mailbox with 300 queued does not go before another mailbox\'s one message', T, async () => {
  // The 300 are queued while the worker is stopped: nothing would lower the backlog the in-flow delay waits on.
  await withMailroom({ OUTBOX_CONCURRENCY: '4', OUTBOX_IN_FLOW_DELAY_SECONDS: '0' }, async (t, api) => {
    const bulk = 'bulk@example.test';
    const single = 'single@example.test';
    await addServer(api, bulk, { messagesPerMinute: null, recipientsPerDay: null, maxConnections: null });
    await addServer(api, single, { messagesPerMinute: null, recipientsPerDay: null, maxConnections: null });
    await queue(t, bulk, 'slow@remote.example', 300, 'bulk');
    await queue(t, single, 'fast@remote.example', 1, 'single');
    t.mr.worker.start();
    const ms = await until('the single message delivered', () => deliveredFrom(single) === 1, 15_000);
    assert.ok(ms < 2500, `the single message waited ${ms} ms behind the bulk mailbox`);
  });
});

test('SMTP_MAX_OPEN_CONNECTIONS caps the instance\'s connections over all mailboxes; SMTP_IDLE_CLOSE_SECONDS closes idle ones', T, async () => {
  await withMailroom({ SMTP_MAX_OPEN_CONNECTIONS: '3', SMTP_IDLE_CLOSE_SECONDS: '0.5' }, async (t, api) => {
    peakOpen = open;
    const boxes = Array.from({ length: 8 }, (_, i) => `cap${i}@example.test`);
    for (const b of boxes) await addServer(api, b, { messagesPerMinute: null, recipientsPerDay: null });
    for (const b of boxes) await queue(t, b, 'fast@remote.example', 5, 'cap');
    t.mr.worker.start();
    await until('all 40 messages delivered', () => boxes.every((b) => deliveredFrom(b) === 5), 20_000);
    // One more than the cap may be seen for a moment: a connection handed over sends QUIT and
    // closes while the next one opens. Without the cap: 8 mailboxes × 3 connections.
    assert.ok(peakOpen <= 4, `${peakOpen} SMTP connections were open at once`);
    assert.ok(peakOpen >= 1);
    // Nothing more to send: every connection closes after its idle time.
    await until('idle connections closed', () => open === 0, 5000);
  });
});

test('OUTBOX_INFLIGHT_MB bounds the bytes in flight over all mailboxes, paced or not; a message larger than all of it goes alone', T, async () => {
  await withMailroom({ OUTBOX_CONCURRENCY: '32', OUTBOX_INFLIGHT_MB: '1' }, async (t, api) => {
    const paced = 'paced-big@example.test';
    const free = 'free-big@example.test';
    await addServer(api, paced, { messagesPerMinute: 1000, recipientsPerDay: null, maxConnections: 4 });
    await addServer(api, free, { messagesPerMinute: null, recipientsPerDay: null, maxConnections: 4 });
    // 400 kB each: two fit in 1 MB, a third does not. Without the bound the two mailboxes' eight
    // connections would take eight at once.
    const body = 'x'.repeat(400 * 1024);
    for (let i = 0; i < 6; i++) {
      await t.mr.outbox.enqueue({ from: paced, to: ['big@remote.example'], subject: `paced ${i}`, text: body });
      await t.mr.outbox.enqueue({ from: free, to: ['big@remote.example'], subject: `free ${i}`, text: body });
    }
    const huge = await t.mr.outbox.enqueue({ from: free, to: ['big@remote.example'], subject: 'huge', text: 'y'.repeat(1536 * 1024) });
    peakSinking = 0;
    t.mr.worker.start();
    await until('all 13 messages delivered', () => sink.messages.filter((m) => m.to.includes('big@remote.example')).length === 13, 20_000);
    assert.equal(peakSinking, 2, `${peakSinking} messages of 400 kB were accepted at once under a 1 MB bound`);
    // Accepted at the sink a moment before the outcome is committed.
    let state = '';
    for (let i = 0; i < 100 && (state = (await t.mr.outbox.get(huge.message.id)).state) !== 'sent'; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(state, 'sent');
    assert.equal(hugeBeside, 0, 'the message larger than OUTBOX_INFLIGHT_MB was sent beside others');
  });
});

test('accepting does not outrun delivering: past its backlog a mailbox\'s new messages wait a little (never refused), another mailbox\'s do not', T, async () => {
  await withMailroom({ OUTBOX_IN_FLOW_BACKLOG: '5', OUTBOX_IN_FLOW_DELAY_SECONDS: '0.6' }, async (t, api) => {
    // One connection to a remote end that acknowledges nothing for 5 s: two messages in flight, the
    // rest due and unclaimed, a mailbox whose delivery cannot keep up.
    const flood = 'flood@example.test';
    const calm = 'calm@example.test';
    const paced = 'paced@example.test';
    await addServer(api, flood, { maxConnections: 1, messagesPerMinute: null, recipientsPerDay: null });
    await addServer(api, calm);
    await addServer(api, paced, { messagesPerMinute: 1 });
    t.mr.worker.start();
    const post = async (from: string, i: number) => {
      const t0 = Date.now();
      const r = await api.request('POST', '/api/v1/messages', { from, to: [from === flood ? 'stuck@remote.example' : 'fast@remote.example'], subject: `In flow ${i}`, text: 'x' });
      assert.equal(r.status, 202, r.body);
      return Date.now() - t0;
    };
    // Seven: two in flight, five due (the backlog).
    const times: number[] = [];
    for (let i = 0; i < 7; i++) times.push(await post(flood, i));
    assert.ok(times.every((ms) => ms < 400), `up to the backlog: ${times.join(', ')} ms`);
    // Past it each new one waits for room, the delay at most, then is accepted.
    const [late, beside] = await Promise.all([post(flood, 7), new Promise((r) => setTimeout(r, 100)).then(() => post(calm, 0))]);
    assert.ok(late >= 550, `past the backlog the message was accepted after ${late} ms`);
    assert.ok(beside < 400, `the other mailbox's message waited ${beside} ms`);
    assert.ok((await post(flood, 8)) >= 550);
    // A paced mailbox's queue waits on its rate, not on the worker: never held, however long.
    const pacedTimes: number[] = [];
    for (let i = 0; i < 10; i++) pacedTimes.push(await post(paced, 100 + i));
    assert.ok(pacedTimes.every((ms) => ms < 400), `a paced mailbox past the backlog: ${pacedTimes.join(', ')} ms`);
    const rows = await t.mr.database.db.selectFrom('outbox_messages').select(['subject']).where('subject', 'like', 'In flow %').execute();
    assert.equal(rows.length, 20, 'every message accepted');
  });
});

test('a mailbox added a moment ago is paced from its first message: the worker reads the servers again when one changes', T, async () => {
  await withMailroom({}, async (t, api) => {
    // Two unpaced mailboxes, and the worker already running with the list it read.
    const relays = ['relay1@example.test', 'relay2@example.test'];
    for (const r of relays) await addServer(api, r, { messagesPerMinute: null, recipientsPerDay: null, maxConnections: null });
    t.mr.worker.start();
    await queue(t, relays[0]!, 'fast@remote.example', 1, 'warm');
    await until('the worker delivering', () => deliveredFrom(relays[0]!) === 1, 10_000);
    // Added now, three a minute, and ten queued for it at once.
    const fresh = 'fresh@example.test';
    await addServer(api, fresh, { messagesPerMinute: 3, maxConnections: 3 });
    await queue(t, fresh, 'fast@remote.example', 10, 'fresh');
    await until('its first three delivered', () => deliveredFrom(fresh) >= 3, 10_000);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(deliveredFrom(fresh), 3, 'three a minute, from its first message');
  });
});
