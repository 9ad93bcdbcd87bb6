import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/config.ts';
import { createLogger } from '../../src/logger.ts';
import { DeliveryThread } from '../../src/outbox/delivery-thread.ts';
import { openDatabase } from '../../src/storage/database.ts';

// serve's delivery thread when it fails: the process lives on, the failure is a JSON log line, and
// the thread is started again (with a growing pause while it keeps failing). Delivery itself through
// the thread is covered by the end-to-end tests, which run `serve`.
test('a delivery thread that fails is logged and started again; stop ends it', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-thread-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = loadConfig({ DATA_DIR: dir });
  const opened = await openDatabase(config.databaseUrl);
  t.after(() => opened.close());
  // A database the thread cannot open: its directory is a file.
  writeFileSync(join(dir, 'not-a-dir'), '');
  const lines: Array<{ level: number; event?: string; restartInMs?: number; err?: { message: string } }> = [];
  const log = { write: (line: string) => void lines.push(JSON.parse(line)) };
  const tokens = {
    getAccessToken: () => Promise.reject(new Error('not asked in this test')),
    getLogin: () => Promise.reject(new Error('not asked in this test')),
    applicationContext: () => Promise.reject(new Error('not asked in this test')),
  };
  const thread = new DeliveryThread({
    data: { databaseUrl: `sqlite:${join(dir, 'not-a-dir', 'mailroom.db')}`, databaseTimeouts: config.databaseTimeouts, outbox: config.outbox, graphHost: config.microsoftGraph.host, outbound: config.outbound, logLevel: 'info', instance: 'test' },
    db: opened.db,
    tokens,
    logger: createLogger('info', log),
    log,
  });
  thread.start();
  t.after(() => thread.stop());
  const deadline = Date.now() + 30_000;
  while (lines.filter((l) => l.event === 'outbox.thread_exit').length < 2) {
    assert.ok(Date.now() < deadline, `not started again: ${JSON.stringify(lines)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const errors = lines.filter((l) => l.event === 'outbox.thread_error');
  assert.ok(errors.length >= 2 && errors.every((e) => e.level === 50 && /EEXIST|ENOTDIR/.test(e.err!.message)), JSON.stringify(errors));
  assert.deepEqual(lines.filter((l) => l.event === 'outbox.thread_exit').slice(0, 2).map((l) => l.restartInMs), [1000, 2000]);
  const s0 = Date.now();
  await thread.stop();
  assert.ok(Date.now() - s0 < 5000, 'stopped at once, the pending restart cancelled');
  const exits = lines.filter((l) => l.event === 'outbox.thread_exit').length;
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal(lines.filter((l) => l.event === 'outbox.thread_exit').length, exits, 'not started again after stop');
});
