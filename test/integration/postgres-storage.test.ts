import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { openDatabase, type OpenedDatabase } from '../../src/storage/database.ts';
import { findMailServer, findToken, insertMailServer, replaceToken, updateTokenIfVersion } from '../../src/storage/mail-server-store.ts';
import { consumeOAuthState, insertOAuthState } from '../../src/storage/oauth-state-store.ts';
import { insertAdmin } from '../../src/storage/admin-store.ts';

// The same storage code on PostgreSQL (127.0.0.1:5432, trust auth), in a database made for this run.
const ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/test';
const dbName = `mailroom_test_${randomBytes(4).toString('hex')}`;
let opened: OpenedDatabase;

before(async () => {
  const c = new pg.Client(ADMIN_URL);
  await c.connect();
  await c.query(`create database ${dbName}`);
  await c.end();
  opened = await openDatabase(`postgres://postgres@127.0.0.1:5432/${dbName}`);
});

after(async () => {
  await opened?.close();
  const c = new pg.Client(ADMIN_URL);
  await c.connect();
  await c.query(`drop database if exists ${dbName}`);
  await c.end();
});

test('migrations run on PostgreSQL and are idempotent', async () => {
  assert.equal(opened.dialect, 'postgres');
  const again = await openDatabase(`postgres://postgres@127.0.0.1:5432/${dbName}`);
  await again.close();
});

test('mail servers, versioned token writes and single-use states behave as on SQLite', async () => {
  const now = new Date();
  const { db } = opened;
  await insertAdmin(db, { id: 'a1', email: 'a@example.test', passwordHash: 'x' }, now);
  const s = await insertMailServer(
    db,
    'srv1',
    {
      name: 'PG',
      authType: 'outlook_oauth',
      username: 'u@example.test',
      clientId: 'c',
      clientSecretSealed: 'v1:x',
      clientSecretExpiresAt: null,
      tenant: 'common',
      smtpHost: 'h',
      smtpPort: 587,
      smtpSecurity: 'starttls',
      priority: 10,
      fromFilter: null,
      active: true,
      lastError: null,
    },
    now,
  );
  assert.equal(s.smtpPort, 587);
  assert.equal(s.active, true);
  await replaceToken(db, 'srv1', { status: 'valid', statusReason: null, accessTokenSealed: 'a1' }, now);
  const t = (await findToken(db, 'srv1'))!;
  assert.equal(await updateTokenIfVersion(db, 'srv1', t.version, { status: 'valid', statusReason: null, accessTokenSealed: 'a2' }, now), true);
  assert.equal(await updateTokenIfVersion(db, 'srv1', t.version, { status: 'valid', statusReason: null, accessTokenSealed: 'a3' }, now), false);
  assert.equal((await findToken(db, 'srv1'))!.accessTokenSealed, 'a2');

  await insertOAuthState(db, { stateHash: 'h', mailServerId: 'srv1', adminId: 'a1', codeVerifierSealed: 'v', nonce: 'n', expiresAt: new Date(now.getTime() + 60_000) }, now);
  const [first, second] = await Promise.all([consumeOAuthState(db, 'h', now), consumeOAuthState(db, 'h', now)]);
  assert.equal([first, second].filter((r) => r.ok).length, 1, 'exactly one concurrent callback wins');
  assert.ok(await findMailServer(db, 'srv1'));
});
