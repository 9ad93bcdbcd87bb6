import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { createTestDatabase, type TestPostgres } from '../helpers/postgres-db.ts';
import { type Agent, loginAgent, startTestMailroom, type TestMailroom, VALID_SERVER } from '../helpers/test-mailroom.ts';

// Owners on servers and the connect-link API through inject(): the list filters and paging in SQL on
// SQLite and PostgreSQL, the link's validation, its page and the sign-in it starts (the sign-in itself
// and the result are in test/e2e/connect-links.test.ts, with Chromium and the real peers).
const RETURN = 'https://erp.example.com/mail/';
const CONNECT_ENV = { CONNECT_RETURN_URLS: `${RETURN},http://localhost:9999/cb`, CONNECT_RESULT_SECRET: 'x'.repeat(40), CONNECT_APP_NAME: 'Contoso ERP' };

const pgs: TestPostgres[] = [];
after(async () => {
  for (const p of pgs) await p.drop();
});

async function engines(): Promise<Array<[string, Record<string, string>]>> {
  const pg = await createTestDatabase('mailroom_owners');
  pgs.push(pg);
  return [
    ['SQLite', {}],
    ['PostgreSQL', { DATABASE_URL: pg.url, MAILROOM_SECRET_KEY: randomBytes(32).toString('base64') }],
  ];
}

test('the server lists filter by owner, shared, state and text and page with a cursor, in SQL, on SQLite and PostgreSQL', { timeout: 120_000 }, async () => {
  for (const [name, env] of await engines()) {
    const t = await startTestMailroom(env);
    try {
      const admin = await loginAgent(t);
      const make = async (i: number, owner: string | null, active = true) => {
        const r = await admin.request('POST', '/api/v1/mail-servers', { ...VALID_SERVER, name: `Box ${String(i).padStart(2, '0')}`, username: `box${i}@contoso.example`, owner, active, priority: i % 3 });
        assert.equal(r.status, 201, r.body);
        return r.json;
      };
      const made = [];
      for (let i = 0; i < 23; i++) made.push(await make(i, i % 4 === 0 ? null : `u-${i % 2}`, i !== 5));
      assert.equal(made[1].owner, 'u-1');
      assert.equal(made[0].owner, null);
      assert.equal(made[5].state, 'disabled');
      assert.equal(made[1].state, 'not_connected');

      const all = await admin.request('GET', '/api/v1/mail-servers');
      assert.equal(all.json.total, 23, name);
      assert.equal(all.json.items.length, 23);
      assert.equal(all.json.nextCursor, null);
      const byOwner = (await admin.request('GET', '/api/v1/mail-servers?owner=u-1')).json;
      assert.deepEqual(byOwner.items.map((s: { owner: string }) => s.owner), Array(byOwner.total).fill('u-1'));
      assert.equal(byOwner.total, made.filter((s) => s.owner === 'u-1').length);
      assert.equal((await admin.request('GET', '/api/v1/mail-servers?shared=true')).json.total, 6);
      assert.deepEqual((await admin.request('GET', '/api/v1/mail-servers?state=disabled')).json.items.map((s: { name: string }) => s.name), ['Box 05']);
      assert.equal((await admin.request('GET', '/api/v1/mail-servers?state=not_connected')).json.total, 22);
      assert.equal((await admin.request('GET', '/api/v1/mail-servers?state=connected')).json.total, 0);
      assert.deepEqual((await admin.request('GET', '/api/v1/mail-servers?q=BOX1%40')).json.items.map((s: { username: string }) => s.username), ['box1@contoso.example']);
      assert.deepEqual((await admin.request('GET', '/api/v1/mail-servers?q=box2&owner=u-0')).json.items.map((s: { username: string }) => s.username).sort(), ['box22@contoso.example', 'box2@contoso.example'], 'box20 and box21 are shared or u-1');

      // Pages of 5 walk the whole list once, in the unpaged order, each page saying the total.
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { items: Array<{ id: string }>; nextCursor: string | null; total: number } = (await admin.request('GET', `/api/v1/mail-servers?limit=5${cursor ? `&cursor=${cursor}` : ''}`)).json;
        assert.equal(page.total, 23);
        assert.ok(page.items.length <= 5);
        seen.push(...page.items.map((s) => s.id));
        cursor = page.nextCursor;
      } while (cursor);
      assert.deepEqual(seen, all.json.items.map((s: { id: string }) => s.id));

      for (const [q, field] of [['state=gone', 'state'], ['limit=0', 'limit'], ['cursor=bm9wZQ', 'cursor'], ['owner=a&shared=true', 'shared']] as const) {
        const r = await admin.request('GET', `/api/v1/mail-servers?${q}`);
        assert.equal(r.status, 400, q);
        assert.ok(field in r.json.error.fields, `${q}: ${r.body}`);
      }
      const inbox = await admin.request('POST', '/api/v1/incoming-servers', { name: 'Ann inbox', username: 'ann@contoso.example', clientId: VALID_SERVER.clientId, clientSecret: VALID_SERVER.clientSecret, active: false, afterFetch: 'leave' });
      assert.equal(inbox.status, 201, inbox.body);
      const incoming = (await admin.request('GET', '/api/v1/incoming-servers?shared=true&limit=1')).json;
      assert.equal(incoming.total, 1);
      assert.equal(incoming.items[0].owner, null);
      assert.equal(incoming.items[0].state, 'disabled');
    } finally {
      await t.close();
    }
  }
});

async function withLinks(run: (t: TestMailroom, admin: Agent, key: (scope: string) => Promise<string>) => Promise<void>) {
  const t = await startTestMailroom(CONNECT_ENV);
  try {
    const admin = await loginAgent(t);
    const key = async (scope: string) => (await admin.request('POST', '/api/v1/api-keys', { name: `k-${scope}-${randomBytes(2).toString('hex')}`, scope })).json.key as string;
    await run(t, admin, key);
  } finally {
    await t.close();
  }
}

const post = (t: TestMailroom, key: string, url: string, payload: object) =>
  t.app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${key}` }, payload });

test('a connect link is refused, naming the field, for a return URL outside CONNECT_RETURN_URLS, a template that cannot sign in, or bad purposes', async () => {
  await withLinks(async (t, admin, key) => {
    const k = await key('connect');
    const template = (await admin.request('POST', '/api/v1/mail-servers', VALID_SERVER)).json.id as string;
    const relay = (await admin.request('POST', '/api/v1/mail-servers', { name: 'Relay', authType: 'none', username: 'relay@contoso.example', smtpHost: '127.0.0.1', smtpPort: 2525, smtpSecurity: 'none' })).json.id as string;
    const ok = { templateServerId: template, owner: 'u-1', purposes: ['send'], returnUrl: `${RETURN}done` };
    const bad: Array<[object, string, RegExp]> = [
      [{ ...ok, returnUrl: 'https://erp.example.com/other' }, 'returnUrl', /not one of CONNECT_RETURN_URLS/],
      [{ ...ok, returnUrl: 'https://erp.example.com.evil.test/mail/x' }, 'returnUrl', /not one of/],
      [{ ...ok, returnUrl: 'http://erp.example.com/mail/x' }, 'returnUrl', /not one of/],
      [{ ...ok, returnUrl: `${RETURN}x#frag` }, 'returnUrl', /fragment/],
      [{ ...ok, returnUrl: `${RETURN}x?sig=1` }, 'returnUrl', /cannot use sig/],
      [{ ...ok, returnUrl: 'not a url' }, 'returnUrl', /absolute URL/],
      [{ ...ok, templateServerId: relay }, 'templateServerId', /Outlook OAuth or Gmail OAuth/],
      [{ ...ok, templateServerId: 'nope' }, 'templateServerId', /No outgoing mail server/],
      [{ ...ok, purposes: [] }, 'purposes', /send, receive or both/],
      [{ ...ok, purposes: ['spam'] }, 'purposes.0', /send or receive/],
      [{ ...ok, owner: ' ' }, 'owner', /owner/],
      [{ ...ok, expiresInMinutes: 20_000 }, 'expiresInMinutes', /7 days/],
      [{ ...ok, loginHint: 'not an address' }, 'loginHint', /one email address/],
      [{ purpose: 'disconnect', owner: 'u-1', returnUrl: `${RETURN}x`, templateServerId: template }, 'purpose', /only the owner/],
    ];
    for (const [body, field, message] of bad) {
      const r = await post(t, k, '/api/v1/connect-links', body);
      assert.equal(r.statusCode, 400, JSON.stringify(body));
      assert.match(r.json().error.fields[field] ?? '', message, `${JSON.stringify(body)}: ${r.body}`);
    }
    // An application-access template is needed for a mailbox without sign-in.
    const mbox = await post(t, k, '/api/v1/mailboxes', { templateServerId: template, owner: 'u-1', mailbox: 'ann@contoso.example', purposes: ['send'] });
    assert.equal(mbox.statusCode, 422, mbox.body);
    assert.match(mbox.json().error.fields.templateServerId, /Access: Application/);
    const badBox = await post(t, k, '/api/v1/mailboxes', { templateServerId: template, owner: 'u-1', mailbox: 'nope', purposes: [] });
    assert.equal(badBox.statusCode, 400);
    assert.deepEqual(Object.keys(badBox.json().error.fields).sort(), ['mailbox', 'purposes']);
    // A connect key does nothing else.
    assert.equal((await t.app.inject({ method: 'GET', url: '/api/v1/mail-servers', headers: { authorization: `Bearer ${k}` } })).statusCode, 403);
  });
});

test('links are off without CONNECT_RETURN_URLS, and the configuration is checked at start', async () => {
  const t = await startTestMailroom();
  try {
    const admin = await loginAgent(t);
    const r = await admin.request('POST', '/api/v1/connect-links', { owner: 'u', purposes: ['send'], returnUrl: 'https://x.example/' });
    assert.equal(r.status, 409);
    assert.equal(r.json.error.code, 'MR_CONNECT_NOT_CONFIGURED');
  } finally {
    await t.close();
  }
  const { loadConfig, ConfigError } = await import('../../src/config/config.ts');
  const problems = (env: Record<string, string>) => {
    try {
      loadConfig({ DATA_DIR: '/tmp', ...env });
      return [];
    } catch (e) {
      return (e as InstanceType<typeof ConfigError>).problems;
    }
  };
  assert.match(problems({ CONNECT_RETURN_URLS: 'https://erp.example.com/x' }).join(), /CONNECT_RESULT_SECRET is required/);
  assert.match(problems({ CONNECT_RETURN_URLS: 'https://erp.example.com/x', CONNECT_RESULT_SECRET: 'short' }).join(), /at least 32 characters/);
  assert.match(problems({ CONNECT_RETURN_URLS: 'http://erp.example.com/x', CONNECT_RESULT_SECRET: 'x'.repeat(32) }).join(), /must use https/);
  assert.match(problems({ CONNECT_RETURN_URLS: 'https://erp.example.com/x?a=1', CONNECT_RESULT_SECRET: 'x'.repeat(32) }).join(), /without query/);
  assert.match(problems({ CONNECT_RESULT_SECRET: 'x'.repeat(32) }).join(), /CONNECT_RETURN_URLS is not/);
  assert.deepEqual(problems({ CONNECT_RETURN_URLS: 'https://erp.example.com/x', CONNECT_SIGNING_SECRET: 'x'.repeat(32) }), []);
});

test('the public page: no account, not frameable, one button that starts a PKCE sign-in with the hint; a new click replaces the state; a used link is refused', async () => {
  await withLinks(async (t, admin, key) => {
    const template = (await admin.request('POST', '/api/v1/mail-servers', VALID_SERVER)).json.id as string;
    const k = await key('connect');
    const r = await post(t, k, '/api/v1/connect-links', { templateServerId: template, owner: 'u-1', loginHint: 'Ann@Contoso.example', purposes: ['send', 'receive'], returnUrl: `${RETURN}done` });
    assert.equal(r.statusCode, 201, r.body);
    const path = new URL(r.json().url).pathname;
    const token = path.split('/').pop()!;
    // Only the hash is stored.
    const rows = await t.mr.database.db.selectFrom('connect_links').selectAll().execute();
    assert.equal(rows.length, 1);
    assert.ok(!JSON.stringify(rows).includes(token));

    const page = await t.app.inject({ method: 'GET', url: path });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-security-policy']), /^default-src 'none'; style-src 'nonce-[\w+/=]+'; img-src 'none'; form-action 'self' https:\/\/login\.microsoftonline\.com; frame-ancestors 'none'; base-uri 'none'$/);
    assert.equal(page.headers['x-frame-options'], 'DENY');
    assert.equal(page.headers['referrer-policy'], 'no-referrer');
    assert.equal(page.headers['cache-control'], 'no-store');
    assert.match(page.body, /Connect your Outlook account to Contoso ERP/);
    assert.match(page.body, /Send mail as you/);
    assert.match(page.body, /Read the mail that arrives/);
    assert.doesNotMatch(page.body, /<script/i);

    const start = async () => {
      const s = await t.app.inject({ method: 'POST', url: `${path}/start`, headers: { 'content-type': 'text/plain' }, payload: '' });
      assert.equal(s.statusCode, 303, s.body);
      return new URL(String(s.headers.location));
    };
    const first = await start();
    assert.equal(first.origin, 'https://login.microsoftonline.com');
    assert.equal(first.searchParams.get('login_hint'), 'ann@contoso.example');
    assert.equal(first.searchParams.get('code_challenge_method'), 'S256');
    assert.match(first.searchParams.get('state')!, /^cl\.[\w-]{43}$/);
    assert.equal(first.searchParams.get('client_id'), VALID_SERVER.clientId);
    const second = await start();
    // The first click's state is no longer one Mailroom knows; the second is refused for the error it carries.
    const stale = await t.app.inject({ method: 'GET', url: `/oauth2/outlook/callback?state=${first.searchParams.get('state')}&code=x` });
    assert.equal(stale.statusCode, 400);
    assert.match(stale.body, /does not belong to a link Mailroom knows/);
    const cancelled = await t.app.inject({ method: 'GET', url: `/oauth2/outlook/callback?state=${second.searchParams.get('state')}&error=access_denied&error_description=AADSTS65004` });
    assert.equal(cancelled.statusCode, 400);
    assert.match(cancelled.body, /You cancelled the sign-in/);
    const back = /href="([^"]+)"/.exec(cancelled.body)![1]!.replace(/&#38;/g, '&');
    const result = new URL(back);
    assert.equal(result.origin + result.pathname, `${RETURN}done`);
    assert.equal(result.searchParams.get('error'), 'access_denied');
    assert.match(result.searchParams.get('sig')!, /^[0-9a-f]{64}$/);
    // Spent: the page, the button and the same answer again are each refused.
    assert.equal((await t.app.inject({ method: 'GET', url: path })).statusCode, 410);
    assert.equal((await t.app.inject({ method: 'POST', url: `${path}/start`, headers: { 'content-type': 'text/plain' }, payload: '' })).statusCode, 410);
    const replay = await t.app.inject({ method: 'GET', url: `/oauth2/outlook/callback?state=${second.searchParams.get('state')}&error=access_denied` });
    assert.equal(replay.statusCode, 410);
    assert.match(replay.body, /already used/);
    assert.ok(t.logs.some((l) => l.includes('/connect/[token]')), 'the page requests are logged');
    assert.ok(!t.logs.some((l) => l.includes(token)), 'without the link\'s token');
    // Admin callbacks still need a session.
    assert.equal((await t.app.inject({ method: 'GET', url: '/oauth2/outlook/callback?state=abc&code=x' })).statusCode, 302);
  });
});
