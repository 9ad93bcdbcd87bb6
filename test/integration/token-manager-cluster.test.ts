import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { loadConfig } from '../../src/config/config.ts';
import { MailroomError } from '../../src/errors/errors.ts';
import { OUTLOOK_SCOPES } from '../../src/oauth/outlook.ts';
import { tokenLimitError } from '../../src/oauth/token-endpoint.ts';
import { secretAad, TokenManager, tokenAad } from '../../src/oauth/token-manager.ts';
import { createSealer } from '../../src/secrets/sealer.ts';
import { openDatabase, type OpenedDatabase } from '../../src/storage/database.ts';
import { findMailServer, insertMailServer, replaceToken } from '../../src/storage/mail-server-store.ts';
import { createTestDatabase, type TestPostgres } from '../helpers/postgres-db.ts';

// Two instances on one PostgreSQL, each with its own pool: a refresh holds the server's advisory lock,
// so the other instance's callers wait for it. When it fails because the token endpoint did not answer,
// they get that failure at once instead of waiting the whole deadline a second time.
let pgdb: TestPostgres;
const opened: OpenedDatabase[] = [];
const sealer = createSealer(randomBytes(32));
const now = () => new Date();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  pgdb = await createTestDatabase('mailroom_tokens');
  for (let i = 0; i < 2; i++) opened.push(await openDatabase(pgdb.url));
});
after(async () => {
  await Promise.allSettled(opened.map((o) => o.close()));
  await pgdb?.drop();
});

/** What the token request raises when the endpoint did not answer within its deadline. */
const timedOut = () => tokenLimitError({ stage: 'refresh', scopes: OUTLOOK_SCOPES }, 'https://login.example.test', { kind: 'time', bound: 20_000 });

function instance(i: number, refresh: () => Promise<never>): TokenManager {
  const { db, dialect } = opened[i]!;
  const config = loadConfig({ DATABASE_URL: pgdb.url, MAILROOM_SECRET_KEY: randomBytes(32).toString('base64'), LOG_LEVEL: 'silent' });
  return new TokenManager({ db, dialect, sealer, config, now, refresh });
}

test('a refresh that times out at one instance fails the callers waiting at another at once; their next call tries again', async () => {
  const { db } = opened[0]!;
  const id = 'slow-endpoint';
  await insertMailServer(
    db,
    id,
    {
      name: 'Slow endpoint', authType: 'outlook_oauth', username: 'x@example.test', clientId: '6731de76-14a6-49ae-97bc-6eba6914391e', clientSecretSealed: sealer.seal('kX38Q~secret', secretAad(id)),
      clientSecretExpiresAt: null, tenant: 'common', smtpHost: 'h', smtpPort: 587, smtpSecurity: 'starttls', priority: 10, fromFilter: null, active: true, lastError: null,
    },
    now(),
  );
  await replaceToken(
    db,
    id,
    {
      status: 'valid',
      statusReason: null,
      account: 'x@example.test',
      accessTokenSealed: sealer.seal('expired-access', tokenAad(id, 'access_token')),
      accessTokenExpiresAt: new Date(Date.now() - 60_000).toISOString(),
      refreshTokenSealed: sealer.seal('refresh-1', tokenAad(id, 'refresh_token')),
    },
    now(),
  );
  const calls = [0, 0];
  const a = instance(0, async () => {
    calls[0]!++;
    await sleep(1500);
    throw timedOut();
  });
  const b = instance(1, async () => {
    calls[1]!++;
    await sleep(1500);
    throw timedOut();
  });
  const first = a.getAccessToken(id).then(() => undefined, (e: unknown) => e);
  await sleep(300); // a holds the lock and waits on the endpoint
  const start = performance.now();
  const waiting = await Promise.allSettled([b.getAccessToken(id), b.getAccessToken(id)]);
  const took = performance.now() - start;
  const failed = await first;
  assert.ok(failed instanceof MailroomError && failed.code === 'MR_OAUTH_UNREACHABLE', String(failed));
  for (const r of waiting) {
    assert.equal(r.status, 'rejected');
    assert.ok(r.reason instanceof MailroomError && r.reason.code === 'MR_OAUTH_UNREACHABLE', String(r.reason));
    assert.match(r.reason.message, /did not finish answering within 20 s/);
  }
  assert.deepEqual(calls, [1, 0], 'the waiting instance did not ask the endpoint a second time');
  assert.ok(took < 1500, `the waiting callers were answered ${Math.round(took)} ms later, not after a second wait`);
  assert.equal((await findMailServer(db, id))!.lastError?.code, 'OAUTH_TOKEN_ENDPOINT_TIMEOUT');
  await assert.rejects(b.getAccessToken(id));
  assert.deepEqual(calls, [1, 1], 'the next caller tries again');
});
