import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { MailroomError } from '../../src/errors/errors.ts';
import { providerError, oauthEvidence, type OutlookTokens } from '../../src/oauth/outlook.ts';
import { TokenManager, tokenAad } from '../../src/oauth/token-manager.ts';
import { OUTLOOK_SCOPES } from '../../src/oauth/outlook.ts';
import { tokenLimitError } from '../../src/oauth/token-endpoint.ts';
import { createSealer, loadOrCreateKey } from '../../src/secrets/sealer.ts';
import { findToken, replaceToken } from '../../src/storage/mail-server-store.ts';
import { startTestMailroom, type TestMailroom, VALID_SERVER } from '../helpers/test-mailroom.ts';

let t: TestMailroom;
let serverId: string;
const now = new Date('2026-11-28T10:00:00Z');
const sealer = () => createSealer(loadOrCreateKey(null, t.dataDir));

before(async () => {
  t = await startTestMailroom();
  serverId = (await t.mr.servers.create(VALID_SERVER)).id;
});
after(() => t.close());

async function storeTokens(access: string, refresh: string, expiresInMs: number) {
  const s = sealer();
  await replaceToken(
    t.mr.database.db,
    serverId,
    {
      status: 'valid',
      statusReason: null,
      account: VALID_SERVER.username,
      accessTokenSealed: s.seal(access, tokenAad(serverId, 'access_token')),
      accessTokenExpiresAt: new Date(now.getTime() + expiresInMs).toISOString(),
      refreshTokenSealed: s.seal(refresh, tokenAad(serverId, 'refresh_token')),
    },
    now,
  );
}

beforeEach(() => storeTokens('access-1', 'refresh-1', 60_000));

function manager(refresh: (refreshToken: string) => Promise<OutlookTokens>) {
  return new TokenManager({ db: t.mr.database.db, sealer: sealer(), config: t.mr.config, now: () => now, refresh: (_app, rt) => refresh(rt) });
}

test('an expiring token is refreshed once for many concurrent callers, and the rotated refresh token is stored', async () => {
  let calls = 0;
  const tm = manager(async (rt) => {
    calls++;
    assert.equal(rt, 'refresh-1');
    await new Promise((r) => setTimeout(r, 20));
    return { accessToken: 'access-2', refreshToken: 'refresh-2', expiresAt: new Date(now.getTime() + 3600_000), scope: undefined };
  });
  const results = await Promise.all(Array.from({ length: 50 }, () => tm.getAccessToken(serverId)));
  assert.equal(calls, 1);
  assert.ok(results.every((r) => r.accessToken === 'access-2' && r.user === VALID_SERVER.username));
  const row = (await findToken(t.mr.database.db, serverId))!;
  assert.equal(sealer().open(row.refreshTokenSealed!, tokenAad(serverId, 'refresh_token')), 'refresh-2');
  // The next call uses the stored token without refreshing.
  assert.equal((await tm.getAccessToken(serverId)).accessToken, 'access-2');
  assert.equal(calls, 1);
});

test('invalid_grant sets Reconnect needed with the reason and stops further refreshes', async () => {
  let calls = 0;
  const tm = manager(async () => {
    calls++;
    throw providerError(
      oauthEvidence('refresh', { error: 'invalid_grant', error_description: 'AADSTS50173: The provided grant has expired due to it being revoked.', error_codes: [50173] }, 400),
    );
  });
  await assert.rejects(tm.getAccessToken(serverId), (e) => e instanceof MailroomError && e.code === 'MR_OAUTH_RECONNECT_NEEDED');
  const view = await t.mr.servers.get(serverId);
  assert.equal(view.tokenStatus, 'reconnect_needed');
  assert.match(view.tokenStatusReason!, /revoked/);
  assert.equal(view.lastError?.code, 'AADSTS50173');
  await assert.rejects(tm.getAccessToken(serverId), (e) => e instanceof MailroomError && e.code === 'MR_OAUTH_RECONNECT_NEEDED');
  assert.equal(calls, 1, 'a dead grant is not retried');
});

test('a wrong client secret on refresh is reported with its fix, and the connection is kept', async () => {
  const tm = manager(async () => {
    throw providerError(oauthEvidence('refresh', { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.', error_codes: [7000215] }, 401));
  });
  await assert.rejects(tm.getAccessToken(serverId), (e) => e instanceof MailroomError && /Secret ID/.test(e.message));
  const view = await t.mr.servers.get(serverId);
  assert.equal(view.tokenStatus, 'valid');
  assert.equal(view.lastError?.code, 'AADSTS7000215');
});

test('a network failure while the old token still has a minute left falls back to it', async () => {
  const tm = manager(async () => {
    throw new MailroomError('MR_OAUTH_UNREACHABLE', 'down', { evidence: { kind: 'network', code: 'ECONNREFUSED' } });
  });
  assert.equal((await tm.getAccessToken(serverId)).accessToken, 'access-1');
});

/** What the token request raises when the endpoint did not answer within its 20 s. */
const timedOut = () => tokenLimitError({ stage: 'refresh', scopes: OUTLOOK_SCOPES }, 'https://login.example.test', { kind: 'time', bound: 20_000 });

test('a token endpoint that did not answer in time, while the old token still has a minute left: the old token is used and the delay explained', async () => {
  const tm = manager(async () => {
    throw timedOut();
  });
  assert.equal((await tm.getAccessToken(serverId)).accessToken, 'access-1');
  const view = await t.mr.servers.get(serverId);
  assert.equal(view.tokenStatus, 'valid');
  assert.equal(view.lastError?.code, 'OAUTH_TOKEN_ENDPOINT_TIMEOUT');
  assert.match(view.lastError!.message, /token endpoint at https:\/\/login\.example\.test did not finish answering within 20 s/);
  assert.match(view.lastError!.fix!, /MICROSOFT_AUTHORITY_HOST/);
});

test('a refresh that times out with no usable token fails every waiting caller at once, as a temporary failure, not Reconnect needed', async () => {
  await storeTokens('access-1', 'refresh-1', -60_000);
  let calls = 0;
  const tm = manager(async () => {
    calls++;
    await new Promise((r) => setTimeout(r, 50));
    throw timedOut();
  });
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => tm.getAccessToken(serverId)));
  assert.equal(calls, 1, 'one refresh for all callers');
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    assert.ok(r.reason instanceof MailroomError && r.reason.code === 'MR_OAUTH_UNREACHABLE', String(r.reason));
  }
  const view = await t.mr.servers.get(serverId);
  assert.equal(view.tokenStatus, 'valid', 'a slow token endpoint does not ask for a new sign-in');
  assert.equal(view.lastError?.code, 'OAUTH_TOKEN_ENDPOINT_TIMEOUT');
  // The next caller tries again.
  await assert.rejects(tm.getAccessToken(serverId));
  assert.equal(calls, 2);
});

test('a refresh that lost the race to another writer uses the newer token instead of overwriting it', async () => {
  const tm = manager(async () => {
    // Someone else (another process, or a reconnect) writes newer tokens while we wait on Microsoft.
    await storeTokens('access-other', 'refresh-other', 3600_000);
    return { accessToken: 'access-mine', refreshToken: 'refresh-mine', expiresAt: new Date(now.getTime() + 3600_000), scope: undefined };
  });
  assert.equal((await tm.getAccessToken(serverId)).accessToken, 'access-other');
  const row = (await findToken(t.mr.database.db, serverId))!;
  assert.equal(sealer().open(row.refreshTokenSealed!, tokenAad(serverId, 'refresh_token')), 'refresh-other');
});

test('a change of Send Using keeps the grant and refreshes an access token for the other resource, once, rotating the refresh token', async () => {
  const graphServer = await t.mr.servers.create({ ...VALID_SERVER, name: 'Per resource', username: 'resource@contoso.example' });
  const s = sealer();
  await replaceToken(
    t.mr.database.db,
    graphServer.id,
    {
      status: 'valid',
      statusReason: null,
      account: 'resource@contoso.example',
      accessTokenSealed: s.seal('outlook-access', tokenAad(graphServer.id, 'access_token')),
      accessTokenExpiresAt: new Date(now.getTime() + 3600_000).toISOString(),
      refreshTokenSealed: s.seal('refresh-A', tokenAad(graphServer.id, 'refresh_token')),
    },
    now,
  );
  const asked: string[][] = [];
  const tm = new TokenManager({
    db: t.mr.database.db,
    sealer: s,
    config: t.mr.config,
    now: () => now,
    refresh: async (app, rt) => {
      asked.push([...app.scopes, rt]);
      await new Promise((r) => setTimeout(r, 10));
      return { accessToken: 'graph-access', refreshToken: 'refresh-B', expiresAt: new Date(now.getTime() + 3600_000), scope: 'https://graph.microsoft.com/Mail.Send' };
    },
  });
  assert.equal((await tm.getAccessToken(graphServer.id)).accessToken, 'outlook-access', 'SMTP uses the cached Outlook token');
  await t.mr.servers.update(graphServer.id, { sendUsing: 'graph' });
  const tokens = await Promise.all(Array.from({ length: 20 }, () => tm.getAccessToken(graphServer.id)));
  assert.ok(tokens.every((x) => x.accessToken === 'graph-access'));
  assert.equal(asked.length, 1, 'one refresh for all callers');
  assert.ok(asked[0]!.includes('https://graph.microsoft.com/Mail.Send') && !asked[0]!.some((x) => x.includes('outlook.office.com')), 'the refresh names the Graph resource only');
  assert.equal(asked[0]!.at(-1), 'refresh-A', 'from the same refresh token');
  const row = (await findToken(t.mr.database.db, graphServer.id))!;
  assert.equal(row.status, 'valid');
  assert.equal(s.open(row.refreshTokenSealed!, tokenAad(graphServer.id, 'refresh_token')), 'refresh-B', 'the rotated refresh token is stored');
});
