import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { openDatabase, type OpenedDatabase } from '../../src/storage/database.ts';
import { deleteMailServer, insertMailServer, mailServersVersion, setLastFetch, setMailServerError, updateMailServer } from '../../src/storage/mail-server-store.ts';
import { createTestDatabase } from '../helpers/postgres-db.ts';

// The version a cached server list is compared with (POST /messages, the SMTP listener) moves on
// every add, save and delete, even two saves in one millisecond, and not on a fetch's or an error's stamp.

const server = (name: string, direction: 'outgoing' | 'incoming' = 'outgoing') => ({
  name,
  direction,
  authType: 'none' as const,
  username: `${name}@example.test`,
  tenant: 'common',
  clientId: '',
  clientSecretSealed: null,
  clientSecretExpiresAt: null,
  smtpHost: 'h',
  smtpPort: 587,
  smtpSecurity: 'starttls' as const,
  priority: 10,
  fromFilter: null,
  active: true,
  lastError: null,
});

async function check(opened: OpenedDatabase): Promise<void> {
  const { db } = opened;
  const at = new Date('2026-12-07T10:00:00.000Z');
  const seen = [await mailServersVersion(db)];
  const moved = async (what: string) => {
    const v = await mailServersVersion(db);
    assert.ok(!seen.includes(v), `${what}: the version moved (${seen.at(-1)} → ${v})`);
    seen.push(v);
  };
  await insertMailServer(db, 's1', server('s1'), at);
  await moved('a server added');
  await updateMailServer(db, 's1', { active: false }, at);
  await moved('a save in the same millisecond as the add');
  await updateMailServer(db, 's1', { active: true }, new Date(at.getTime() - 60_000));
  await moved('a save stamped by a clock that is behind');
  const incoming = await mailServersVersion(db, 'incoming');
  await insertMailServer(db, 'i1', server('i1', 'incoming'), at);
  assert.equal(await mailServersVersion(db), seen.at(-1), 'an incoming server leaves the outgoing version');
  assert.notEqual(await mailServersVersion(db, 'incoming'), incoming, 'and moves its own');
  await setMailServerError(db, 's1', { code: 'NET_TIMEOUT', message: 'x', at: at.toISOString() });
  await setLastFetch(db, [{ id: 'i1', at: at.toISOString() }]);
  assert.equal(await mailServersVersion(db), seen.at(-1), 'stamps (an error, a fetch) move nothing');
  await deleteMailServer(db, 's1');
  await moved('a server deleted');
}

test('SQLite: the server list version moves on every add, save and delete, not on stamps', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-revisions-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const opened = await openDatabase(`sqlite:${join(dir, 'mailroom.db')}`);
  try {
    await check(opened);
  } finally {
    await opened.close();
  }
});

test('PostgreSQL: the server list version moves on every add, save and delete, not on stamps', async () => {
  const pg = await createTestDatabase('mailroom_revisions');
  after(() => pg.drop());
  const opened = await openDatabase(pg.url);
  try {
    await check(opened);
  } finally {
    await opened.close();
  }
});
