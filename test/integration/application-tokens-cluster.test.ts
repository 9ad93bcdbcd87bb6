import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { loadConfig } from '../../src/config/config.ts';
import { isMailroomError } from '../../src/errors/errors.ts';
import { secretAad, TokenManager } from '../../src/oauth/token-manager.ts';
import { createSealer } from '../../src/secrets/sealer.ts';
import { openDatabase, type OpenedDatabase } from '../../src/storage/database.ts';
import { findToken, insertMailServer } from '../../src/storage/mail-server-store.ts';
import { createTestDatabase, type TestPostgres } from '../helpers/postgres-db.ts';

// Application tokens on two instances sharing one PostgreSQL: one client-credentials request per
// (tenant, app, resource) at a time cluster-wide, the token shared by every server of that app, and
// renewed before it expires. The token endpoint is a counting stand-in (the grant itself is tested
// end to end against the authorization server peer in test/e2e/application-access.test.ts).
let pgdb: TestPostgres;
const opened: OpenedDatabase[] = [];
const sealer = createSealer(randomBytes(32));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CLIENT_ID = '6731de76-14a6-49ae-97bc-6eba6914391e';
const TENANT = '9188040d-6c67-4c5b-b112-36a304b66dad';
const jwt = (payload: Record<string, unknown>) => `e30.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.c2ln`;

let requests = 0;
let roles = ['SMTP.SendAsApp'];
let clock = Date.now();
async function endpoint(_app: unknown, now: Date) {
  requests++;
  await sleep(300);
  const accessToken = jwt({ roles, tid: TENANT, appid: CLIENT_ID, oid: 'sp-object-id', n: requests });
  return { accessToken, expiresAt: new Date(now.getTime() + 3600_000), roles: [...roles], tenantId: TENANT, appId: CLIENT_ID, objectId: 'sp-object-id' };
}

function instance(i: number): TokenManager {
  const { db, dialect } = opened[i]!;
  const config = loadConfig({ DATABASE_URL: pgdb.url, MAILROOM_SECRET_KEY: randomBytes(32).toString('base64'), LOG_LEVEL: 'silent' });
  return new TokenManager({ db, dialect, sealer, config, now: () => new Date(clock), clientCredentials: endpoint });
}

async function server(id: string, username: string, extra: Record<string, unknown> = {}) {
  await insertMailServer(
    opened[0]!.db,
    id,
    {
      name: id, authType: 'outlook_oauth', username, clientId: CLIENT_ID, clientSecretSealed: sealer.seal('kX38Q~secret', secretAad(id)), clientSecretExpiresAt: null,
      tenant: TENANT, smtpHost: 'smtp.office365.com', smtpPort: 587, smtpSecurity: 'starttls', priority: 10, fromFilter: null, active: true, lastError: null, access: 'application', ...extra,
    },
    new Date(clock),
  );
}

before(async () => {
  pgdb = await createTestDatabase('mailroom_app_tokens');
  for (let i = 0; i < 2; i++) opened.push(await openDatabase(pgdb.url));
  await server('sales', 'sales@contoso.com');
  await server('billing', 'billing@contoso.com');
  await server('support', 'support@contoso.com', { clientId: '', clientSecretSealed: null, tokenSourceId: 'sales' });
});
after(async () => {
  await Promise.allSettled(opened.map((o) => o.close()));
  await pgdb?.drop();
});

test('twenty callers on two instances for three servers of one app make one token request and share its token', async () => {
  const [a, b] = [instance(0), instance(1)];
  const ids = ['sales', 'billing', 'support'];
  const got = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).getAccessToken(ids[i % 3]!)));
  assert.equal(requests, 1);
  assert.equal(new Set(got.map((t) => t.accessToken)).size, 1);
  // XOAUTH2's user= is each server's own mailbox.
  assert.deepEqual([...new Set(got.map((t) => t.user))].sort(), ['billing@contoso.com', 'sales@contoso.com', 'support@contoso.com']);
  const row = await findToken(opened[0]!.db, 'support');
  assert.equal(row?.status, 'valid');
  assert.equal(row?.scope, 'SMTP.SendAsApp');
  assert.equal(row?.refreshTokenSealed, null);
});

test('a token is renewed once, cluster-wide, when less than 5 minutes remain', async () => {
  clock += 3600_000 - 4 * 60_000;
  const [a, b] = [instance(0), instance(1)];
  const before = requests;
  await Promise.all([a.getAccessToken('sales'), b.getAccessToken('billing'), a.getAccessToken('support'), b.getAccessToken('sales')]);
  assert.equal(requests, before + 1);
});

test('a token without the role the transport needs is refused naming the role; admin consent shows in the next token', async () => {
  const graph = instance(0);
  await server('graph', 'graph@contoso.com', { transport: 'graph' });
  await assert.rejects(graph.getAccessToken('graph'), (e: unknown) => isMailroomError(e, 'MR_OAUTH_ROLE_MISSING') && /Mail\.Send/.test(e.message) && /Microsoft Graph/.test(e.fix ?? ''));
  assert.equal((await findToken(opened[0]!.db, 'graph'))?.status, 'not_connected');
  roles = ['Mail.Send'];
  const t = await graph.getApplicationAccess('graph', { forceRefresh: true });
  assert.deepEqual(t.roles, ['Mail.Send']);
  assert.equal((await findToken(opened[0]!.db, 'graph'))?.status, 'valid');
});
