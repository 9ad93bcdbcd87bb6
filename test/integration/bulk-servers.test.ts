import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { after, before, test } from 'node:test';
import { findToken, replaceToken, updateMailServer } from '../../src/storage/mail-server-store.ts';
import { createSealer, loadOrCreateKey } from '../../src/secrets/sealer.ts';
import { tokenAad } from '../../src/oauth/token-manager.ts';
import { BULK_MAX_IDS } from '../../src/servers/bulk-servers.ts';
import { createTestDatabase, type TestPostgres } from '../helpers/postgres-db.ts';
import { type Agent, loginAgent, startTestMailroom, type TestMailroom, VALID_SERVER } from '../helpers/test-mailroom.ts';
import { type SmtpSink, startSmtpSink } from '../peers/smtp-sink.ts';

// Bulk Test Connection, Disconnect and Delete of outgoing and incoming servers through inject(), and
// the owner list behind the Owner filter, on SQLite and PostgreSQL. Test Connection talks to a real
// SMTP sink (passes) and to a port nobody listens on (fails with the reason).
const pgs: TestPostgres[] = [];
let sink: SmtpSink;
let closedPort: number;

before(async () => {
  sink = await startSmtpSink();
  // A port that was just free: connecting to it is refused.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  closedPort = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
});

after(async () => {
  await sink.close();
  for (const p of pgs) await p.drop();
});

async function engines(): Promise<Array<[string, Record<string, string>]>> {
  const pg = await createTestDatabase('mailroom_bulk');
  pgs.push(pg);
  return [
    ['SQLite', {}],
    ['PostgreSQL', { DATABASE_URL: pg.url, MAILROOM_SECRET_KEY: randomBytes(32).toString('base64') }],
  ];
}

const keys = new WeakMap<TestMailroom, Buffer>();

async function eachEngine(run: (t: TestMailroom, admin: Agent, name: string) => Promise<void>) {
  for (const [name, env] of await engines()) {
    const t = await startTestMailroom({ INBOUND_WORKER: 'off', OUTBOX_WORKER: 'off', ...env });
    keys.set(t, loadOrCreateKey(env.MAILROOM_SECRET_KEY ? Buffer.from(env.MAILROOM_SECRET_KEY, 'base64') : null, t.dataDir));
    try {
      await run(t, await loginAgent(t), name);
    } finally {
      await t.close();
    }
  }
}

/** As a completed sign-in leaves it: a valid token with a refresh token. */
async function connect(t: TestMailroom, id: string) {
  const now = new Date();
  const sealer = createSealer(keys.get(t)!);
  await replaceToken(t.mr.database.db, id, {
    status: 'valid',
    statusReason: null,
    account: 'signed-in@contoso.example',
    scope: 'https://outlook.office.com/SMTP.Send offline_access',
    accessTokenSealed: sealer.seal('access', tokenAad(id, 'access_token')),
    accessTokenExpiresAt: new Date(now.getTime() + 3600_000).toISOString(),
    refreshTokenSealed: sealer.seal('refresh', tokenAad(id, 'refresh_token')),
    connectedAt: now.toISOString(),
    refreshedAt: now.toISOString(),
  }, now);
}

const smtpServer = (name: string, port: number, owner: string | null) => ({
  name,
  authType: 'none',
  username: `${name.toLowerCase()}@contoso.example`,
  fromFilter: `${name.toLowerCase()}@contoso.example`,
  smtpHost: '127.0.0.1',
  smtpPort: port,
  smtpSecurity: 'none',
  owner,
});

test('bulk Test Connection answers one result per server in the order asked: passed, failed with the reason, unknown; each is in the audit log', { timeout: 180_000 }, async () => {
  await eachEngine(async (t, admin, name) => {
    const ids: string[] = [];
    for (const [n, port] of [['Ann', sink.port], ['Bob', sink.port], ['Cat', closedPort]] as const) {
      const r = await admin.request('POST', '/api/v1/mail-servers', smtpServer(n, port, 'u-1'));
      assert.equal(r.status, 201, r.body);
      ids.push(r.json.id);
    }
    const r = await admin.request('POST', '/api/v1/mail-servers/bulk', { action: 'test', ids: [ids[2], ids[0], 'no-such-server', ids[1], ids[0]] });
    assert.equal(r.status, 200, r.body);
    const results = r.json.results as Array<{ id: string; ok: boolean; code: string | null; message: string; fix?: string }>;
    assert.deepEqual(results.map((x) => x.id), [ids[2], ids[0], 'no-such-server', ids[1]], `${name}: once each, in the order asked`);
    assert.deepEqual(results.map((x) => x.ok), [false, true, false, true]);
    assert.equal(results[1]!.code, null);
    assert.equal(results[1]!.message, 'Connection Test Successful!');
    // The diagnosis catalogue's code for it, with its plain words.
    assert.equal(results[0]!.code, 'NET_ECONNREFUSED');
    assert.match(`${results[0]!.message} ${results[0]!.fix ?? ''}`, /refused|reach|connect/i, results[0]!.message);
    assert.equal(results[2]!.code, 'MR_NOT_FOUND');

    const audit = (await admin.request('GET', '/api/v1/audit-events?limit=50')).json.items as Array<{ action: string; targetId: string; details: { ok: boolean; code?: string } }>;
    const tested = audit.filter((e) => e.action === 'mail_server.bulk_test');
    assert.deepEqual(tested.map((e) => e.targetId).sort(), [...ids].sort(), 'one entry per existing server');
    assert.equal(tested.find((e) => e.targetId === ids[2])!.details.ok, false);
    assert.equal(tested.find((e) => e.targetId === ids[2])!.details.code, results[0]!.code);
  });
});

test('bulk Disconnect leaves no token behind on outgoing and incoming servers, which then say Not connected; the other direction\'s ids are not found', { timeout: 180_000 }, async () => {
  await eachEngine(async (t, admin, name) => {
    const out = [];
    for (const i of [1, 2]) {
      const r = await admin.request('POST', '/api/v1/mail-servers', { ...VALID_SERVER, name: `Out ${i}`, username: `out${i}@contoso.example`, owner: 'u-7' });
      assert.equal(r.status, 201, r.body);
      out.push(r.json.id as string);
      await connect(t, r.json.id);
    }
    const inbox = await admin.request('POST', '/api/v1/incoming-servers', { name: 'In', username: 'in@contoso.example', clientId: VALID_SERVER.clientId, clientSecret: VALID_SERVER.clientSecret, imapHost: '127.0.0.1', imapPort: closedPort, active: false, afterFetch: 'leave' });
    assert.equal(inbox.status, 201, inbox.body);
    const inId = inbox.json.id as string;
    await connect(t, inId);
    for (const id of [...out, inId]) assert.equal((await findToken(t.mr.database.db, id))?.status, 'valid');
    assert.equal((await admin.request('GET', `/api/v1/mail-servers/${out[0]}`)).json.tokenStatus, 'valid');

    const r = await admin.request('POST', '/api/v1/mail-servers/bulk', { action: 'disconnect', ids: [...out, inId] });
    assert.equal(r.status, 200, r.body);
    const [a, b, wrong] = r.json.results;
    assert.equal(a.ok, true, JSON.stringify(a));
    assert.equal(a.code, null);
    // Microsoft has no per-grant revocation: the tokens are forgotten and the answer says how to end the grant.
    assert.equal(a.grantRevoked, false);
    assert.match(a.note, /myapps\.microsoft\.com|My Apps|90 days/i);
    assert.equal(b.ok, true);
    assert.deepEqual({ id: wrong.id, ok: wrong.ok, code: wrong.code }, { id: inId, ok: false, code: 'MR_NOT_FOUND' }, `${name}: an incoming server is not a mail server`);
    for (const id of out) {
      assert.equal(await findToken(t.mr.database.db, id), undefined, `${name}: no token row for ${id}`);
      const view = (await admin.request('GET', `/api/v1/mail-servers/${id}`)).json;
      assert.equal(view.tokenStatus, 'not_connected');
      assert.equal(view.state, 'not_connected');
    }
    assert.equal((await findToken(t.mr.database.db, inId))?.status, 'valid', 'the incoming server was left alone');

    const rin = await admin.request('POST', '/api/v1/incoming-servers/bulk', { action: 'disconnect', ids: [inId] });
    assert.equal(rin.status, 200, rin.body);
    assert.equal(rin.json.results[0].ok, true, rin.body);
    assert.equal(await findToken(t.mr.database.db, inId), undefined);
    assert.equal((await admin.request('GET', `/api/v1/incoming-servers/${inId}`)).json.tokenStatus, 'not_connected');
    const audit = (await admin.request('GET', '/api/v1/audit-events?limit=50')).json.items as Array<{ action: string; targetId: string }>;
    assert.deepEqual(audit.filter((e) => e.action === 'mail_server.bulk_disconnect').map((e) => e.targetId).sort(), [...out].sort());
    assert.deepEqual(audit.filter((e) => e.action === 'incoming_server.bulk_disconnect').map((e) => e.targetId), [inId]);

    // Test Connection of the disconnected mailbox fails with the reason: it needs a sign-in first.
    const tested = await admin.request('POST', '/api/v1/incoming-servers/bulk', { action: 'test', ids: [inId] });
    assert.equal(tested.json.results[0].ok, false, tested.body);
    assert.equal(tested.json.results[0].code, 'MR_OAUTH_NOT_CONNECTED');
    assert.ok(tested.json.results[0].message.length > 10, tested.body);

    // Deleting an incoming server with a connection of its own ends its grant as for an outgoing one:
    // Microsoft has none to revoke, and the answer says how the grant ends.
    await connect(t, inId);
    const del = await admin.request('POST', '/api/v1/incoming-servers/bulk', { action: 'delete', ids: [inId] });
    assert.equal(del.status, 200, del.body);
    assert.equal(del.json.results[0].ok, true, del.body);
    assert.equal(del.json.results[0].grantRevoked, false);
    assert.match(del.json.results[0].note, /myapps\.microsoft\.com/);
    assert.equal((await admin.request('GET', `/api/v1/incoming-servers/${inId}`)).status, 404);
  });
});

test('the bulk routes are for admins only and refuse bad input naming the field', { timeout: 120_000 }, async () => {
  const t = await startTestMailroom({ INBOUND_WORKER: 'off', OUTBOX_WORKER: 'off' });
  try {
    const admin = await loginAgent(t);
    const s = await admin.request('POST', '/api/v1/mail-servers', smtpServer('Dan', sink.port, null));
    const key = async (scope: string) => (await admin.request('POST', '/api/v1/api-keys', { name: `k-${scope}`, scope })).json.key as string;
    for (const base of ['/api/v1/mail-servers/bulk', '/api/v1/incoming-servers/bulk']) {
      const body = { action: 'test', ids: [s.json.id] };
      assert.equal((await t.app.inject({ method: 'POST', url: base, payload: body })).statusCode, 401, base);
      for (const scope of ['send', 'outbox:read', 'inbound:read', 'connect']) {
        const r = await t.app.inject({ method: 'POST', url: base, headers: { authorization: `Bearer ${await key(scope)}` }, payload: body });
        assert.equal(r.statusCode, 403, `${base} ${scope}`);
        assert.equal(r.json().error.code, 'MR_AUTH_FORBIDDEN');
      }
      const ok = await t.app.inject({ method: 'POST', url: base, headers: { authorization: `Bearer ${await key('admin')}` }, payload: body });
      assert.equal(ok.statusCode, 200, ok.body);
      assert.equal(ok.json().results.length, 1);

      const tooMany = Array.from({ length: BULK_MAX_IDS + 1 }, (_, i) => `id-${i}`);
      const bad: Array<[unknown, string]> = [
        [{ action: 'test' }, 'ids'],
        [{ action: 'test', ids: [] }, 'ids'],
        [{ action: 'test', ids: 'abc' }, 'ids'],
        [{ action: 'test', ids: tooMany }, 'ids'],
        [{ action: 'test', ids: ['ok-id', 'not an id!'] }, 'ids.1'],
        [{ action: 'test', ids: ['ok-id', 42] }, 'ids.1'],
        [{ action: 'explode', ids: ['x'] }, 'action'],
        [{ action: 'test', ids: ['x'], filter: {} }, 'filter'],
      ];
      for (const [payload, field] of bad) {
        const r = await admin.request('POST', base, payload);
        assert.equal(r.status, 400, `${JSON.stringify(payload).slice(0, 80)}: ${r.body}`);
        assert.equal(r.json.error.code, 'MR_VALIDATION');
        assert.ok(field in r.json.error.fields, `${field} named: ${r.body}`);
      }
    }
  } finally {
    await t.close();
  }
});

test('GET /api/v1/owners lists distinct owners with their server counts, by direction and text, a page at a time', { timeout: 180_000 }, async () => {
  await eachEngine(async (t, admin, name) => {
    const owners = ['erp-07', 'erp-03', 'ERP-12', 'sales-1', 'erp-03'];
    let i = 0;
    for (const owner of [...owners, null]) {
      const r = await admin.request('POST', '/api/v1/mail-servers', smtpServer(`Box${i++}`, sink.port, owner));
      assert.equal(r.status, 201, r.body);
    }
    const inbox = await admin.request('POST', '/api/v1/incoming-servers', { name: 'In', username: 'in@contoso.example', clientId: VALID_SERVER.clientId, clientSecret: VALID_SERVER.clientSecret, active: false, afterFetch: 'leave' });
    assert.equal(inbox.status, 201, inbox.body);
    // An incoming server gets its owner from a connect link.
    await updateMailServer(t.mr.database.db, inbox.json.id, { owner: 'inbox-only' }, new Date());

    const all = (await admin.request('GET', '/api/v1/owners')).json;
    const sorted = (xs: string[]) => [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    assert.deepEqual(all.items.map((o: { owner: string }) => o.owner), sorted(['erp-07', 'erp-03', 'ERP-12', 'sales-1', 'inbox-only']), name);
    assert.equal(all.items.find((o: { owner: string }) => o.owner === 'erp-03').servers, 2);
    assert.equal(all.nextCursor, null);
    const outgoing = (await admin.request('GET', '/api/v1/owners?direction=outgoing')).json.items.map((o: { owner: string }) => o.owner);
    assert.ok(!outgoing.includes('inbox-only'));
    assert.deepEqual((await admin.request('GET', '/api/v1/owners?direction=incoming')).json.items, [{ owner: 'inbox-only', servers: 1 }]);
    assert.deepEqual((await admin.request('GET', '/api/v1/owners?q=erp')).json.items.map((o: { owner: string }) => o.owner), sorted(['erp-07', 'erp-03', 'ERP-12']), 'any case');

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: Array<{ owner: string }>; nextCursor: string | null } = (await admin.request('GET', `/api/v1/owners?limit=2${cursor ? `&cursor=${cursor}` : ''}`)).json;
      assert.ok(page.items.length <= 2);
      seen.push(...page.items.map((o) => o.owner));
      cursor = page.nextCursor;
    } while (cursor);
    assert.deepEqual(seen, all.items.map((o: { owner: string }) => o.owner));

    for (const [q, field] of [['limit=0', 'limit'], ['direction=sideways', 'direction'], ['cursor=%2B%2B', 'cursor'], ['color=red', 'color']] as const) {
      const r = await admin.request('GET', `/api/v1/owners?${q}`);
      assert.equal(r.status, 400, q);
      assert.ok(field in r.json.error.fields, `${q}: ${r.body}`);
    }
  });
});

test('an incoming server takes an owner through the API as an outgoing one does: set, filtered by, cleared, refused when empty', { timeout: 120_000 }, async () => {
  const t = await startTestMailroom({ INBOUND_WORKER: 'off', OUTBOX_WORKER: 'off' });
  try {
    const admin = await loginAgent(t);
    const body = { name: 'Ann inbox', username: 'ann@contoso.example', clientId: VALID_SERVER.clientId, clientSecret: VALID_SERVER.clientSecret, active: false, afterFetch: 'leave' };
    const c = await admin.request('POST', '/api/v1/incoming-servers', { ...body, owner: 'u-ann' });
    assert.equal(c.status, 201, c.body);
    assert.equal(c.json.owner, 'u-ann');
    const shared = await admin.request('POST', '/api/v1/incoming-servers', { ...body, name: 'Sales inbox', username: 'sales@contoso.example' });
    assert.equal(shared.json.owner, null);
    const mine = (await admin.request('GET', '/api/v1/incoming-servers?owner=u-ann')).json.items.map((s: { id: string }) => s.id);
    assert.deepEqual(mine, [c.json.id]);
    assert.deepEqual((await admin.request('GET', '/api/v1/owners?direction=incoming')).json.items, [{ owner: 'u-ann', servers: 1 }]);
    const cleared = await admin.request('PATCH', `/api/v1/incoming-servers/${c.json.id}`, { owner: null });
    assert.equal(cleared.status, 200, cleared.body);
    assert.equal(cleared.json.owner, null);
    const empty = await admin.request('PATCH', `/api/v1/incoming-servers/${c.json.id}`, { owner: '  ' });
    assert.equal(empty.status, 400);
    assert.match(empty.json.error.fields.owner, /owner is empty/);
  } finally {
    await t.close();
  }
});
