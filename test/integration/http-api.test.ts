import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ADMIN, loginAgent, startTestMailroom, type Agent, type TestMailroom, VALID_SERVER } from '../helpers/test-mailroom.ts';

let t: TestMailroom;
let agent: Agent;

before(async () => {
  t = await startTestMailroom({ MICROSOFT_AUTHORITY_HOST: 'https://login.example.test' });
  agent = await loginAgent(t);
});
after(() => t.close());

const ID = '00000000-0000-4000-8000-000000000000';
const protectedRoutes: Array<[string, string]> = [
  ['GET', '/api/v1/session'],
  ['GET', '/api/v1/mail-servers'],
  ['GET', '/api/v1/mail-servers/defaults'],
  ['POST', '/api/v1/mail-servers'],
  ['GET', `/api/v1/mail-servers/${ID}`],
  ['PATCH', `/api/v1/mail-servers/${ID}`],
  ['DELETE', `/api/v1/mail-servers/${ID}`],
  ['POST', `/api/v1/mail-servers/${ID}/connect`],
  ['POST', `/api/v1/mail-servers/${ID}/test`],
  ['POST', `/api/v1/mail-servers/${ID}/send-test`],
];

test('every API route answers 401 without a session', async () => {
  for (const [method, url] of protectedRoutes) {
    const r = await t.app.inject({ method: method as 'GET', url, ...(method !== 'GET' && method !== 'DELETE' && { payload: {} }) });
    assert.equal(r.statusCode, 401, `${method} ${url}`);
    assert.equal(r.json().error.code, 'MR_AUTH_REQUIRED');
  }
});

test('a state-changing request without the CSRF token is refused', async () => {
  const r = await t.app.inject({ method: 'POST', url: '/api/v1/mail-servers', headers: { cookie: agent.cookie }, payload: VALID_SERVER });
  assert.equal(r.statusCode, 403);
  assert.equal(r.json().error.code, 'MR_AUTH_CSRF');
  const forged = await t.app.inject({
    method: 'POST',
    url: '/api/v1/mail-servers',
    headers: { cookie: agent.cookie, 'x-csrf-token': 'guess' },
    payload: VALID_SERVER,
  });
  assert.equal(forged.statusCode, 403);
});

test('login: wrong password is 401 naming no account detail; repeated failures are rate limited', async () => {
  const wrong = await t.app.inject({ method: 'POST', url: '/api/v1/session', payload: { email: 'victim@example.test', password: 'nope' } });
  assert.equal(wrong.statusCode, 401);
  assert.equal(wrong.json().error.message, 'Wrong email or password.');
  for (let i = 0; i < 4; i++) await t.app.inject({ method: 'POST', url: '/api/v1/session', payload: { email: 'victim@example.test', password: 'nope' } });
  const limited = await t.app.inject({ method: 'POST', url: '/api/v1/session', payload: { email: 'victim@example.test', password: 'nope' } });
  assert.equal(limited.statusCode, 429);
  assert.ok(Number(limited.headers['retry-after']) > 0);
});

test('login: twenty parallel wrong passwords for one account get at most five password checks', async () => {
  const check = t.mr.admins.checkCredentials.bind(t.mr.admins);
  let checked = 0;
  t.mr.admins.checkCredentials = async (email, password) => {
    checked++;
    return check(email, password);
  };
  try {
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => t.app.inject({ method: 'POST', url: '/api/v1/session', remoteAddress: '192.0.2.20', payload: { email: ADMIN.email, password: 'wrong guess' } })),
    );
    assert.ok(checked <= 5, `${checked} passwords checked`);
    assert.equal(answers.filter((a) => a.statusCode === 401).length, checked);
    assert.equal(answers.filter((a) => a.statusCode === 429).length, 20 - checked);
    // The real admin, from another address, still gets in.
    const ok = await t.app.inject({ method: 'POST', url: '/api/v1/session', remoteAddress: '192.0.2.21', payload: ADMIN });
    assert.equal(ok.statusCode, 200);
  } finally {
    t.mr.admins.checkCredentials = check;
  }
});

test('logout ends the session server-side', async () => {
  const a = await loginAgent(t);
  assert.equal((await a.request('DELETE', '/api/v1/session')).status, 204);
  assert.equal((await a.request('GET', '/api/v1/session')).status, 401);
});

test('the session cookie is HttpOnly and SameSite=Lax', async () => {
  const r = await t.app.inject({ method: 'POST', url: '/api/v1/session', payload: ADMIN });
  const c = r.cookies.find((x) => x.name === 'mailroom_session')!;
  assert.equal(c.httpOnly, true);
  assert.equal(c.sameSite, 'Lax');
});

test('validation errors are 400 and name each field', async () => {
  const r = await agent.request('POST', '/api/v1/mail-servers', { ...VALID_SERVER, username: 'not-an-email', clientId: 'abc', smtpPort: 70000 });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'MR_VALIDATION');
  assert.deepEqual(Object.keys(r.json.error.fields).sort(), ['clientId', 'smtpPort', 'username']);
  assert.equal(r.json.error.field, 'username');
});

test('a Secret ID pasted instead of the secret Value is caught at the field', async () => {
  const r = await agent.request('POST', '/api/v1/mail-servers', { ...VALID_SERVER, clientSecret: '8a4e3f2d-1c0b-4a9e-8d7c-6b5a4f3e2d1c' });
  assert.equal(r.status, 400);
  assert.match(r.json.error.fields.clientSecret, /Secret ID/);
});

test('malformed JSON and wrong content types are 4xx, never 500', async () => {
  const bad = await t.app.inject({
    method: 'POST',
    url: '/api/v1/mail-servers',
    headers: { cookie: agent.cookie, 'x-csrf-token': agent.csrfToken, 'content-type': 'application/json' },
    payload: '{"name": ',
  });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().error.field, 'body');
  const text = await t.app.inject({
    method: 'POST',
    url: '/api/v1/mail-servers',
    headers: { cookie: agent.cookie, 'x-csrf-token': agent.csrfToken, 'content-type': 'text/plain' },
    payload: 'hello',
  });
  assert.equal(text.statusCode, 400);
  assert.equal(text.json().error.field, 'body');
  const missing = await agent.request('GET', '/api/v1/mail-servers/does-not-exist');
  assert.equal(missing.status, 404);
});

test('create, read, update and delete a mail server without ever returning the secret', async () => {
  const created = await agent.request('POST', '/api/v1/mail-servers', VALID_SERVER);
  assert.equal(created.status, 201);
  const s = created.json;
  assert.equal(s.redirectUri, 'http://localhost:8080/oauth2/outlook/callback');
  assert.equal(s.clientSecretSet, true);
  assert.equal(s.tokenStatus, 'not_connected');
  assert.equal(s.smtpHost, 'smtp.office365.com');
  assert.equal(s.smtpPort, 587);
  assert.equal(s.smtpSecurity, 'starttls');
  assert.ok(!created.body.includes(VALID_SERVER.clientSecret));

  const patched = await agent.request('PATCH', `/api/v1/mail-servers/${s.id}`, { name: 'Renamed', clientSecret: '' });
  assert.equal(patched.status, 200);
  assert.equal(patched.json.name, 'Renamed');
  assert.equal(patched.json.clientSecretSet, true, 'an empty secret keeps the current one');

  const list = await agent.request('GET', '/api/v1/mail-servers');
  assert.equal(list.json.items.length, 1);
  for (const body of [list.body, (await agent.request('GET', `/api/v1/mail-servers/${s.id}`)).body]) {
    assert.ok(!body.includes(VALID_SERVER.clientSecret));
    assert.ok(!/client_?secret"\s*:\s*"/i.test(body));
  }

  assert.equal((await agent.request('DELETE', `/api/v1/mail-servers/${s.id}`)).status, 204);
  assert.equal((await agent.request('GET', `/api/v1/mail-servers/${s.id}`)).status, 404);
});

test('connect returns a Microsoft authorize URL with PKCE S256, state, nonce and the Outlook scopes', async () => {
  const s = (await agent.request('POST', '/api/v1/mail-servers', { ...VALID_SERVER, tenant: 'contoso.example' })).json;
  const r = await agent.request('POST', `/api/v1/mail-servers/${s.id}/connect`);
  assert.equal(r.status, 200);
  const u = new URL(r.json.authorizeUrl);
  assert.equal(u.origin + u.pathname, 'https://login.example.test/contoso.example/oauth2/v2.0/authorize');
  const q = u.searchParams;
  assert.equal(q.get('client_id'), VALID_SERVER.clientId);
  assert.equal(q.get('response_type'), 'code');
  assert.equal(q.get('redirect_uri'), 'http://localhost:8080/oauth2/outlook/callback');
  assert.equal(q.get('code_challenge_method'), 'S256');
  assert.match(q.get('code_challenge')!, /^[\w-]{43}$/);
  assert.match(q.get('state')!, /^[\w-]{43}$/);
  assert.ok(q.get('nonce'));
  assert.equal(q.get('login_hint'), VALID_SERVER.username);
  assert.equal(q.get('prompt'), 'select_account');
  assert.deepEqual(q.get('scope')!.split(' ').sort(), [
    'email',
    'https://outlook.office.com/IMAP.AccessAsUser.All',
    'https://outlook.office.com/SMTP.Send',
    'offline_access',
    'openid',
    'profile',
  ]);
});

test('test connection on a server that is not connected says how to connect', async () => {
  const s = (await agent.request('POST', '/api/v1/mail-servers', VALID_SERVER)).json;
  const r = await agent.request('POST', `/api/v1/mail-servers/${s.id}/test`);
  assert.equal(r.status, 200);
  assert.equal(r.json.ok, false);
  assert.match(r.json.fix, /Connect your Outlook account/);
  const bad = await agent.request('POST', `/api/v1/mail-servers/${s.id}/send-test`, { to: 'not an address' });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.field, 'to');
});

test('the OpenAPI document lists the mail server routes with their schemas', async () => {
  const r = await t.app.inject({ method: 'GET', url: '/api/openapi.json' });
  const doc = r.json();
  assert.equal(doc.openapi, '3.1.0');
  assert.ok(doc.paths['/api/v1/mail-servers'].post.requestBody.content['application/json'].schema.properties.clientSecret);
  assert.ok(doc.paths['/api/v1/mail-servers/{id}/test'].post);
});

test('health, readiness and metrics answer', async () => {
  assert.equal((await t.app.inject({ method: 'GET', url: '/healthz' })).json().status, 'ok');
  assert.equal((await t.app.inject({ method: 'GET', url: '/readyz' })).json().database, 'sqlite');
  const anonymous = await t.app.inject({ method: 'GET', url: '/metrics' });
  assert.equal(anonymous.statusCode, 401, 'metrics need a key unless METRICS_PUBLIC=true');
  assert.equal(anonymous.json().error.code, 'MR_AUTH_REQUIRED');
  const { key } = await t.mr.apiKeys.create({ name: 'Prometheus', scope: 'read' }, null);
  const metrics = (await t.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${key}` } })).body;
  assert.match(metrics, /mailroom_mail_servers\{token_status="not_connected"\} \d+/);
  assert.match(metrics, /mailroom_outbox_messages\{state="queued"\} \d+/);
});

test('neither the database file nor the log holds the client secret or the admin password in clear', async () => {
  await agent.request('POST', '/api/v1/mail-servers', VALID_SERVER);
  const dbBytes = ['mailroom.sqlite', 'mailroom.sqlite-wal']
    .map((f) => {
      try {
        return readFileSync(join(t.dataDir, f)).toString('latin1');
      } catch {
        return '';
      }
    })
    .join('');
  assert.ok(dbBytes.length > 0);
  assert.ok(!dbBytes.includes(VALID_SERVER.clientSecret));
  assert.ok(!dbBytes.includes(ADMIN.password));
  const logs = t.logs.join('');
  assert.ok(logs.includes('mail_server.created'), 'the log is being captured');
  assert.ok(!logs.includes(VALID_SERVER.clientSecret));
  assert.ok(!logs.includes(ADMIN.password));
  assert.ok(!logs.includes(agent.csrfToken));
});

test('the OAuth callback without a session sends the admin to log in and back', async () => {
  const r = await t.app.inject({ method: 'GET', url: '/oauth2/outlook/callback?code=abc&state=xyz' });
  assert.equal(r.statusCode, 302);
  assert.equal(r.headers.location, `/login?next=${encodeURIComponent('/oauth2/outlook/callback?code=abc&state=xyz')}`);
});

test('the admin consent answer returns to the form; a refusal is explained there', async () => {
  const s = (await agent.request('POST', '/api/v1/mail-servers', { ...VALID_SERVER, name: 'Consent' })).json;
  const ok = await agent.request('GET', `/oauth2/outlook/callback?admin_consent=True&tenant=x&state=admin-consent.${s.id}`);
  assert.equal(ok.status, 302);
  assert.equal(ok.headers.location, `/settings/technical/mail-servers/${s.id}?oauth=admin_consent`);
  const no = await agent.request(
    'GET',
    `/oauth2/outlook/callback?error=access_denied&error_description=${encodeURIComponent('AADSTS65004: User declined to consent.')}&state=admin-consent.${s.id}`,
  );
  assert.equal(no.headers.location, `/settings/technical/mail-servers/${s.id}?oauth=error`);
  assert.equal((await agent.request('GET', `/api/v1/mail-servers/${s.id}`)).json.lastError.code, 'AADSTS65004');
  const audit = (await agent.request('GET', `/api/v1/audit-events?targetId=${s.id}`)).json.items.map((e: { action: string }) => e.action);
  assert.ok(audit.includes('oauth.admin_consent') && audit.includes('oauth.failed'));
});

test('the audit log names the admin by email, not by id', async () => {
  const s = (await agent.request('POST', '/api/v1/mail-servers', { ...VALID_SERVER, name: 'Audited' })).json;
  const events = (await agent.request('GET', `/api/v1/audit-events?targetId=${s.id}`)).json.items as Array<{ actor: string; actorDisplay: string; action: string }>;
  const created = events.find((e) => e.action === 'mail_server.created');
  assert.ok(created, JSON.stringify(events));
  assert.match(created.actor, /^admin:/);
  assert.equal(created.actorDisplay, ADMIN.email);
});
