import assert from 'node:assert/strict';
import { test } from 'node:test';
import { claimDue, holdServerUntil, markSentMany } from '../../src/storage/outbox-store.ts';
import { type Agent, loginAgent, startTestMailroom, type TestMailroom } from '../helpers/test-mailroom.ts';

/** A Mailroom with no workers and a relay server per name (From = <name>@example.test), limits as given. */
async function withServers(names: string[], limits: Record<string, number>, run: (t: TestMailroom, api: Agent, ids: string[]) => Promise<void>) {
  const t = await startTestMailroom({ INBOUND_WORKER: 'off', OUTBOX_WORKER: 'off' });
  try {
    const api = await loginAgent(t);
    const ids: string[] = [];
    for (const n of names) {
      const s = await api.request('POST', '/api/v1/mail-servers', { name: n, authType: 'none', username: `${n}@example.test`, smtpHost: '127.0.0.1', smtpPort: 2525, smtpSecurity: 'none', fromFilter: `${n}@example.test`, ...limits });
      assert.equal(s.status, 201, s.body);
      ids.push(s.json.id);
    }
    await run(t, api, ids);
  } finally {
    await t.close();
  }
}


// The server list and Mail Health read every server's sending state in a few statements for all
// servers (sendStatuses), not a few per server: the numbers must be the ones each server's own
// form shows (sendStatus, one server at a time).
test('the list\'s sending state of every server equals what each server\'s own view shows: queued, sent, being sent, held', { timeout: 60_000 }, async () => {
  await withServers(['s0', 's1', 's2', 's3'], { messagesPerMinute: 2, recipientsPerDay: 5 }, async (t, api, ids) => {
    const db = t.mr.database.db;
    // s0: 3 queued; s1: 3 sent (2 recipients each, over its daily 5) and 1 queued; s2: 2 held; s3: nothing.
    for (let i = 0; i < 3; i++) await t.mr.outbox.enqueue({ from: 's0@example.test', to: ['a@remote.example'], subject: `q${i}`, text: 'x' });
    for (let i = 0; i < 3; i++) await t.mr.outbox.enqueue({ from: 's1@example.test', to: ['a@remote.example', 'b@remote.example'], subject: `s${i}`, text: 'x' });
    const claimed = await claimDue(db, 'sqlite', 'test-owner', new Date(), 60_000, 100, ids.filter((id) => id !== ids[1]));
    assert.equal(claimed.length, 3);
    await markSentMany(db, 'test-owner', claimed.slice(0, 2).map((m) => ({ id: m.id, smtpResponse: '250 ok' })), new Date());
    await t.mr.outbox.enqueue({ from: 's1@example.test', to: ['c@remote.example'], subject: 'after', text: 'x' });
    for (let i = 0; i < 2; i++) await t.mr.outbox.enqueue({ from: 's2@example.test', to: ['a@remote.example'], subject: `h${i}`, text: 'x' });
    await holdServerUntil(db, ids[2]!, new Date(Date.now() + 3600_000), { code: 'MR_SEND_QUOTA_REACHED', message: 'held', at: new Date().toISOString() }, new Date());

    const list = new Map((await t.mr.servers.list()).map((s) => [s.id, s.sending]));
    for (const id of ids) {
      const one = (await t.mr.servers.get(id)).sending;
      assert.deepEqual(list.get(id), one, `server ${id}`);
    }
    // The cases are really different: not all zero.
    assert.equal(list.get(ids[0]!)!.queued, 3);
    assert.equal(list.get(ids[1]!)!.recipientsToday, 6);
    assert.equal(list.get(ids[1]!)!.messagesLastMinute, 3);
    assert.ok(list.get(ids[1]!)!.nextSendAt, 'the daily limit puts the next send of s1 later');
    assert.equal(list.get(ids[2]!)!.held, 2);
    assert.equal(list.get(ids[3]!)!.queued, 0);
  });
});

test('a claim naming the servers it may take (the shorter list) takes theirs and the messages of deleted servers, no one else\'s', { timeout: 60_000 }, async () => {
  await withServers(['o0', 'o1', 'o2'], {}, async (t, api, ids) => {
    for (let i = 0; i < 3; i++) for (let k = 0; k < 2; k++) await t.mr.outbox.enqueue({ from: `o${i}@example.test`, to: ['a@remote.example'], subject: `o${i}-${k}`, text: 'x' });
    // o2 is deleted with mail queued: its messages lose their server and must still be claimed (then failed, with the reason).
    assert.equal((await api.request('DELETE', `/api/v1/mail-servers/${ids[2]}`)).status, 204);
    const db = t.mr.database.db;
    const claimed = await claimDue(db, 'sqlite', 'test-owner', new Date(), 60_000, 100, { only: [ids[1]!] }, 8);
    assert.deepEqual(claimed.map((m) => m.subject).sort(), ['o1-0', 'o1-1', 'o2-0', 'o2-1']);
    // Nothing named: only the messages of no server (none left).
    assert.deepEqual(await claimDue(db, 'sqlite', 'test-owner', new Date(), 60_000, 100, { only: [] }), []);
  });
});
