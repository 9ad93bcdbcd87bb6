import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { ApiKeyService, scopeAllows } from '../../src/apikeys/api-key-service.ts';
import { openDatabase } from '../../src/storage/database.ts';
import { migrateTo } from '../../src/storage/migrations.ts';
import { createTestDatabase, type TestPostgres } from '../helpers/postgres-db.ts';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

// Keys as the release before scopes stored them: one `scope` column, send | read | admin.
const OLD_KEYS = [
  { name: 'Warehouse scanner', scope: 'send' },
  { name: 'Reporting', scope: 'read' },
  { name: 'Ops', scope: 'admin' },
] as const;
const keyOf = (name: string) => `mr_${Buffer.from(name).toString('base64url').padEnd(43, 'x')}`;
const hashKey = (key: string) => createHash('sha256').update(key).digest('base64url');

async function oldDatabase(dialect: 'sqlite' | 'postgres'): Promise<string> {
  let url: string;
  let db: Kysely<any>;
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'mailroom-keys-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    url = `sqlite:${join(dir, 'mailroom.sqlite')}`;
    db = new Kysely<any>({ dialect: new SqliteDialect({ database: new SQLite(join(dir, 'mailroom.sqlite')) }) });
  } else {
    const p: TestPostgres = await createTestDatabase('mailroom_keys');
    cleanups.push(() => p.drop());
    url = p.url;
    db = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }) });
  }
  try {
    await migrateTo(db, dialect, '0015_inbound_problems');
    await db
      .insertInto('api_keys')
      .values(OLD_KEYS.map((k, i) => ({ id: `k${i}`, name: k.name, scope: k.scope, prefix: keyOf(k.name).slice(0, 10), key_hash: hashKey(keyOf(k.name)), created_by: null, created_at: `2026-01-0${i + 1}T00:00:00.000Z`, last_used_at: null, revoked_at: null })))
      .execute();
  } finally {
    await db.destroy();
  }
  return url;
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  test(`old keys get the closest scopes that do not widen their access (${dialect})`, async () => {
    const opened = await openDatabase(await oldDatabase(dialect));
    cleanups.push(() => opened.close());
    const keys = new ApiKeyService(opened.db);
    const listed = new Map((await keys.list()).map((k) => [k.name, k]));
    assert.deepEqual(listed.get('Warehouse scanner')?.scopes, ['send']);
    assert.deepEqual(listed.get('Reporting')?.scopes, ['outbox:read', 'inbound:read']);
    assert.deepEqual(listed.get('Ops')?.scopes, ['admin']);
    for (const k of listed.values()) {
      assert.equal(k.mailServerIds, null, 'no server limit');
      assert.equal(k.incomingServerIds, null, 'no server limit');
    }

    // The old send key still sends, and no longer reads what others queued or received.
    const scanner = (await keys.authenticate(keyOf('Warehouse scanner')))!;
    assert.ok(scopeAllows(scanner.scopes, 'send'));
    assert.ok(!scopeAllows(scanner.scopes, 'outbox:read'));
    assert.ok(!scopeAllows(scanner.scopes, 'inbound:read'));
    const reporting = (await keys.authenticate(keyOf('Reporting')))!;
    assert.ok(scopeAllows(reporting.scopes, 'outbox:read') && scopeAllows(reporting.scopes, 'inbound:read'));
    assert.ok(!scopeAllows(reporting.scopes, 'send'), 'read never could send');
    assert.ok(!scopeAllows(reporting.scopes, 'admin'));
    assert.ok(scopeAllows((await keys.authenticate(keyOf('Ops')))!.scopes, 'admin'));

    // A key made now leaves the old column at a value an older instance grants nothing.
    const made = await keys.create({ name: 'New scanner', scopes: ['send', 'outbox:read'] }, null);
    const row = await opened.db.selectFrom('api_keys').select(['scope', 'scopes']).where('id', '=', made.id).executeTakeFirstOrThrow();
    assert.deepEqual(row, { scope: 'scoped', scopes: '["send","outbox:read"]' });
  });
}
