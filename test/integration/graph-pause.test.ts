import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { GraphError } from '../../src/graph/graph-client.ts';
import { withGraphMailbox } from '../../src/graph/graph-sender.ts';
import { ConnectionGates } from '../../src/smtp/connection-gate.ts';
import { openDatabase, type OpenedDatabase } from '../../src/storage/database.ts';
import { createTestDatabase, type TestPostgres } from '../helpers/postgres-db.ts';

// Graph's Retry-After pauses a mailbox for every instance: two ConnectionGates over one database are
// two instances. The pause is a lease row, on SQLite as on PostgreSQL.

interface Engine {
  name: string;
  open(): Promise<OpenedDatabase>;
  drop(): Promise<void>;
}

function sqliteEngine(): Engine {
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-graph-pause-'));
  return { name: 'sqlite', open: () => openDatabase(`sqlite:${join(dir, 'db.sqlite')}`), drop: async () => rmSync(dir, { recursive: true, force: true }) };
}

function postgresEngine(): Engine {
  let pg: TestPostgres | undefined;
  return {
    name: 'postgres',
    async open() {
      pg ??= await createTestDatabase('mailroom_graph_pause');
      return openDatabase(pg.url);
    },
    drop: async () => pg?.drop(),
  };
}

const throttled = (retryAfterSeconds?: number, status = 429) =>
  new GraphError({ kind: 'graph', status, code: status === 429 ? 'ApplicationThrottled' : 'ServiceUnavailable', message: 'throttled', ...(retryAfterSeconds !== undefined && { retryAfterSeconds }) });

for (const engine of [sqliteEngine(), postgresEngine()]) {
  describe(`Graph mailbox pauses on ${engine.name}`, () => {
    const opened: OpenedDatabase[] = [];
    after(async () => {
      for (const o of opened) await o.close();
      await engine.drop();
    });

    test('a 429 with Retry-After met by one instance keeps every instance from calling Graph for that mailbox until it has passed', async () => {
      const a = await engine.open();
      const b = await engine.open();
      opened.push(a, b);
      const instanceA = new ConnectionGates(undefined, a.db);
      const instanceB = new ConnectionGates(undefined, b.db);
      const mailbox = `Sales-${engine.name}@Example.test`;
      let calls = 0;
      const call = async () => {
        calls++;
        return 'ok';
      };
      await assert.rejects(withGraphMailbox(instanceA, mailbox, async () => Promise.reject(throttled(2))), (e: unknown) => e instanceof GraphError && e.evidence.code === 'ApplicationThrottled');
      const started = Date.now();
      for (const [gates, who] of [[instanceA, 'the same instance'], [instanceB, 'another instance']] as const) {
        await assert.rejects(withGraphMailbox(gates, mailbox.toLowerCase(), call), (e: unknown) => {
          assert.ok(e instanceof GraphError, who);
          assert.equal(e.evidence.code, 'MailboxPaused');
          assert.equal(e.evidence.status, 429);
          assert.ok(e.evidence.retryAfterSeconds! >= 1 && e.evidence.retryAfterSeconds! <= 2, `${who}: ${e.evidence.retryAfterSeconds}`);
          assert.match(e.message, /sends no request for it until/);
          return true;
        });
      }
      assert.equal(calls, 0, 'no request inside the window');
      // Another mailbox is not paused.
      assert.equal(await withGraphMailbox(instanceB, 'other@example.test', call), 'ok');
      // A 503 with Retry-After pauses too; a shorter pause recorded meanwhile does not shorten a longer one.
      await assert.rejects(withGraphMailbox(instanceB, 'other@example.test', async () => Promise.reject(throttled(1, 503))));
      await instanceB.pauses.pauseFor(`graph:${mailbox.toLowerCase()}`, 300);
      await new Promise((r) => setTimeout(r, 600));
      await assert.rejects(withGraphMailbox(instanceB, mailbox, call), (e: unknown) => e instanceof GraphError && e.evidence.code === 'MailboxPaused');
      const rows = await a.db.selectFrom('leases').select(['name', 'expires_at']).where('name', 'like', 'pause:%').orderBy('name').execute();
      assert.deepEqual(rows.map((r) => r.name), ['pause:graph:other@example.test', `pause:graph:${mailbox.toLowerCase()}`]);
      await new Promise((r) => setTimeout(r, 2100 - (Date.now() - started)));
      assert.equal(await withGraphMailbox(instanceB, mailbox, call), 'ok', 'requests resume after Retry-After');
      assert.equal(await withGraphMailbox(instanceA, mailbox, call), 'ok');
    });

    test('a throttling answer without Retry-After, or another error, pauses nothing', async () => {
      const a = await engine.open();
      opened.push(a);
      const gates = new ConnectionGates(undefined, a.db);
      await assert.rejects(withGraphMailbox(gates, 'plain@example.test', async () => Promise.reject(throttled(undefined))));
      await assert.rejects(withGraphMailbox(gates, 'plain@example.test', async () => Promise.reject(new GraphError({ kind: 'graph', status: 400, code: 'BadRequest', message: 'x', retryAfterSeconds: 5 }))));
      assert.equal(await withGraphMailbox(gates, 'plain@example.test', async () => 'ok'), 'ok');
    });
  });
}
