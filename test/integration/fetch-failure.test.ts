import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findMailServer } from '../../src/storage/mail-server-store.ts';
import { startTestMailroom } from '../helpers/test-mailroom.ts';

// A bug in a fetch (here: a record without its IMAP settings) must not become an unhandled rejection
// that ends the process: it is recorded on the server like any failed fetch and logged with its stack.
test('an unexpected error in a fetch is recorded on the server as MR_INTERNAL and logged with its stack; the fetch promise never rejects', async () => {
  const t = await startTestMailroom();
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    const created = await t.mr.incoming.create({ name: 'Inbox', authType: 'password', username: 'clerk@example.test', password: 'pw', imapHost: 'localhost', imapPort: 1, imapSecurity: 'tls', active: false });
    const record = (await findMailServer(t.mr.database.db, created.id))!;
    const state = await t.mr.incoming.runFetch({ ...record, imap: { ...record.imap!, get host(): string { throw new TypeError('host is gone'); } } });
    assert.equal(state.error?.code, 'MR_INTERNAL');
    assert.match(state.error.message, /unexpected error: host is gone/);
    assert.match(state.error.fix ?? '', /inbound\.fetch_failed/);
    const view = await t.mr.incoming.get(created.id);
    assert.equal(view.lastError?.code, 'MR_INTERNAL');
    const line = t.logs.find((l) => l.includes('"event":"inbound.fetch_failed"'));
    assert.ok(line && /"stack":"TypeError: host is gone/.test(line), line);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    await t.close();
  }
});
