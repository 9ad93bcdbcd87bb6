import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { sql } from 'kysely';
import { openDatabase } from '../../src/storage/database.ts';

// Two connections to one SQLite file from two threads of a process, as serve's API and its delivery
// thread: a transaction waits for the other thread's to commit without blocking its event loop.
const THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const { tsImport } = await import('tsx/esm/api');
  const { openDatabase } = await tsImport(workerData.database, workerData.from);
  const { sql } = await import('kysely');
  const opened = await openDatabase(workerData.url, undefined, { migrate: false, turns: workerData.turns });
  await opened.db.transaction().execute(async (trx) => {
    await sql\`insert into cluster_settings (name, value, created_at) values ('turn', 'thread', 'now')\`.execute(trx);
    parentPort.postMessage('in');
    // A transaction that takes a while (awaits inside it): the other thread must wait it out.
    await new Promise((r) => setTimeout(r, 400));
  });
  await opened.close();
  parentPort.postMessage('committed');
})();
`;

test('a transaction waits for the other thread\'s turn without blocking its event loop, then commits', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-turns-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const url = `sqlite:${join(dir, 'mailroom.db')}`;
  const main = await openDatabase(url);
  t.after(() => main.close());
  assert.ok(main.turns, 'SQLite hands out turns');
  const worker = new Worker(THREAD, {
    eval: true,
    workerData: { url, turns: main.turns, database: new URL('../../src/storage/database.ts', import.meta.url).href, from: import.meta.url },
  });
  const events: string[] = [];
  const inThread = new Promise<void>((resolve) => worker.on('message', (m: string) => (events.push(`thread ${m}`), m === 'in' && resolve())));
  worker.on('error', (e) => events.push(`thread failed: ${e.message}`));
  await inThread;

  // While the thread holds its transaction open, this thread's event loop keeps running.
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 10);
  const t0 = Date.now();
  await main.db.transaction().execute(async (trx) => {
    events.push('main in');
    const row = await sql<{ value: string }>`select value from cluster_settings where name = 'turn'`.execute(trx);
    assert.equal(row.rows[0]?.value, 'thread', 'the thread\'s transaction committed before this one began');
    await sql`update cluster_settings set value = 'main' where name = 'turn'`.execute(trx);
  });
  clearInterval(ticker);
  assert.ok(Date.now() - t0 >= 200, `waited for the thread's commit (${Date.now() - t0} ms)`);
  assert.ok(ticks >= 5, `the event loop ran meanwhile (${ticks} ticks of 10 ms)`);
  await new Promise((r) => worker.once('exit', r));
  assert.deepEqual(events.sort(), ['main in', 'thread committed', 'thread in']);
  const row = await sql<{ value: string }>`select value from cluster_settings where name = 'turn'`.execute(main.db);
  assert.equal(row.rows[0]?.value, 'main');
});
