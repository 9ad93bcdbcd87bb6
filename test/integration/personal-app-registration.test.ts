import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { MailroomError } from '../../src/errors/errors.ts';
import type { OAuthApp } from '../../src/oauth/oauth-provider.ts';
import { TokenManager, tokenAad } from '../../src/oauth/token-manager.ts';
import { createSealer, loadOrCreateKey } from '../../src/secrets/sealer.ts';
import { findMailServer, insertMailServer, replaceToken } from '../../src/storage/mail-server-store.ts';
import { loginAgent, startTestMailroom, type TestMailroom, VALID_SERVER } from '../helpers/test-mailroom.ts';

// A personal mailbox made from a template signs in with the template's app registration by
// reference: renewing the template's secret serves it at once, no copy is left to expire.
let t: TestMailroom;
let templateId: string;
let personalId: string;
const now = new Date('2026-12-07T10:00:00Z');
const sealer = () => createSealer(loadOrCreateKey(null, t.dataDir));
const SECRET_2 = 'Nw7R~renewed.Secret-Value_0123456789abcdef';

before(async () => {
  t = await startTestMailroom();
  templateId = (await t.mr.servers.create({ ...VALID_SERVER, tenant: 'contoso.example' })).id;
  const template = (await findMailServer(t.mr.database.db, templateId))!;
  personalId = randomUUID();
  // As the connect link leaves it (connect-link-service's upsertMailbox): no credential of its own.
  await insertMailServer(
    t.mr.database.db,
    personalId,
    { ...template, name: 'ann@contoso.example (erp-user-17)', username: 'ann@contoso.example', clientSecretSealed: null, clientSecretExpiresAt: null, appSourceId: templateId, owner: 'erp-user-17', fromFilter: null, lastError: null },
    now,
  );
  const s = sealer();
  await replaceToken(
    t.mr.database.db,
    personalId,
    {
      status: 'valid',
      statusReason: null,
      account: 'ann@contoso.example',
      accessTokenSealed: s.seal('access-old', tokenAad(personalId, 'access_token')),
      accessTokenExpiresAt: new Date(now.getTime() - 1000).toISOString(),
      refreshTokenSealed: s.seal('refresh-ann', tokenAad(personalId, 'refresh_token')),
    },
    now,
  );
});
after(() => t.close());

function manager(seen: OAuthApp[]) {
  return new TokenManager({
    db: t.mr.database.db,
    sealer: sealer(),
    config: t.mr.config,
    now: () => now,
    refresh: async (app) => {
      seen.push(app);
      return { accessToken: `access-${seen.length}`, refreshToken: 'refresh-ann', expiresAt: new Date(now.getTime() + 60_000), scope: undefined };
    },
  });
}

const secretOf = (app: OAuthApp) => (app.credential.kind === 'secret' ? app.credential.secret : `certificate ${app.credential.current.thumbprint}`);

test('the personal mailbox refreshes with the template\'s secret, and with the renewed one as soon as the template has it', async () => {
  const seen: OAuthApp[] = [];
  const tm = manager(seen);
  const first = await tm.getAccessToken(personalId);
  assert.equal(first.user, 'ann@contoso.example');
  assert.equal(seen.length, 1);
  assert.equal(secretOf(seen[0]!), VALID_SERVER.clientSecret);
  assert.equal(seen[0]!.clientId, VALID_SERVER.clientId);
  assert.equal(seen[0]!.tenant, 'contoso.example');

  await t.mr.servers.update(templateId, { clientSecret: SECRET_2 });
  await tm.getAccessToken(personalId, { forceRefresh: true });
  assert.equal(seen.length, 2);
  assert.equal(secretOf(seen[1]!), SECRET_2, 'the renewed secret, not a copy of the old one');
});

test('the personal mailbox\'s checklist counts the template\'s credentials; its form saves without a secret of its own', async () => {
  const view = await t.mr.servers.get(personalId);
  assert.equal(view.appSourceId, templateId);
  assert.equal(view.clientSecretSet, false);
  assert.equal(view.checklist.find((i) => i.key === 'credentials')?.state, 'done', JSON.stringify(view.checklist));
  const renamed = await t.mr.servers.update(personalId, { name: 'Ann — quotations', clientId: VALID_SERVER.clientId });
  assert.equal(renamed.name, 'Ann — quotations');
  assert.equal(renamed.appSourceId, templateId, 'an unchanged Client ID keeps the template\'s registration');
});

test('the template cannot be deleted while a personal mailbox signs in with it, and the refusal says why', async () => {
  await assert.rejects(t.mr.servers.remove(templateId), (e) => e instanceof MailroomError && e.code === 'MR_CONFLICT' && /1 personal mailbox signs in/.test(e.message) && /Delete those mailboxes first/.test(e.fix ?? ''));
  assert.ok(await findMailServer(t.mr.database.db, templateId));
  const r = await (await loginAgent(t)).request('DELETE', `/api/v1/mail-servers/${templateId}`);
  assert.equal(r.status, 409, r.body);
  assert.equal(r.json.error.code, 'MR_CONFLICT');
  assert.match(r.json.error.fix, /Delete those mailboxes first/);
});

test('a secret of its own detaches the mailbox from the template', async () => {
  const own = 'Pq3S~own.Secret-Value_abcdefghijklmnopqrst';
  const v = await t.mr.servers.update(personalId, { clientSecret: own });
  assert.equal(v.appSourceId, null);
  assert.equal(v.clientSecretSet, true);
  const seen: OAuthApp[] = [];
  await manager(seen).getAccessToken(personalId, { forceRefresh: true });
  assert.equal(secretOf(seen[0]!), own);
  await t.mr.servers.remove(templateId);
  assert.equal(await findMailServer(t.mr.database.db, templateId), undefined);
});
