import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { ADMIN, loginAgent, startTestMailroom, type Agent, type TestMailroom } from '../helpers/test-mailroom.ts';

const SECURITY = ['x-content-type-options', 'referrer-policy', 'x-frame-options', 'content-security-policy'];

/** The one error shape: {"error":{"code":"MR_…","message":"…"}} with the security headers. */
function assertErrorShape(status: number, headers: Record<string, unknown>, body: string, code: string): void {
  const json = JSON.parse(body) as { error: { code: string; message: string } };
  assert.equal(json.error.code, code, body);
  assert.equal(typeof json.error.message, 'string');
  for (const h of SECURITY) assert.ok(headers[h], `${status} carries ${h}`);
}

/** Writes raw bytes to the server and collects everything it answers until it closes the socket. */
function rawRequest(port: number, write: (s: net.Socket, answered: () => boolean) => void | Promise<void>): Promise<{ text: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => resolve({ text, closedAfterMs: Date.now() - started }));
    s.on('connect', () => Promise.resolve(write(s, () => text.length > 0)).catch(reject));
  });
}

function parseRaw(text: string): { status: number; headers: Record<string, string>; body: string } {
  const [head = '', body = ''] = text.split('\r\n\r\n');
  const [statusLine, ...lines] = head.split('\r\n');
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return { status: Number(statusLine?.split(' ')[1]), headers, body };
}

describe('on a listening socket', () => {
  let t: TestMailroom;
  let port: number;
  before(async () => {
    t = await startTestMailroom({ HTTP_HEADERS_TIMEOUT_SECONDS: '1', HTTP_MAX_CONNECTIONS_PER_ADDRESS: '20' });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    port = (t.app.server.address() as net.AddressInfo).port;
  });
  after(() => t.close());

  test('an unauthenticated 30 MB body is refused with 401 without being read', async () => {
    const rssBefore = process.memoryUsage().rss;
    const chunk = Buffer.alloc(1024 * 1024, 'a');
    let sent = 0;
    const r = await rawRequest(port, async (s, answered) => {
      s.write(`POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${30 * 1024 * 1024}\r\n\r\n`);
      // Like a client that reads while it writes: it stops sending once the answer has come.
      for (let i = 0; i < 30 && !s.destroyed && !answered(); i++) {
        await new Promise<void>((ok) => (s.write(chunk) ? ok() : s.once('drain', ok)));
        sent++;
        await new Promise((ok) => setTimeout(ok, 20));
      }
    });
    const res = parseRaw(r.text);
    assert.equal(res.status, 401);
    assertErrorShape(res.status, res.headers, res.body, 'MR_AUTH_REQUIRED');
    assert.equal(res.headers.connection, 'close');
    assert.ok(sent < 30, `the server closed the connection (client wrote ${sent} of 30 MB)`);
    assert.ok(process.memoryUsage().rss - rssBefore < 20 * 1024 * 1024, 'the body was not buffered');
  });

  test('a body whose Content-Length exceeds the route limit is refused with 413 before it is read', async () => {
    const { key } = await t.mr.apiKeys.create({ name: 'ERP', scope: 'send' }, null);
    const r = await rawRequest(port, (s) => {
      s.write(`POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${500 * 1024 * 1024}\r\n\r\n{`);
    });
    const res = parseRaw(r.text);
    assert.equal(res.status, 413);
    assertErrorShape(res.status, res.headers, res.body, 'MR_PAYLOAD_TOO_LARGE');
  });

  test('a client sending its headers a byte at a time is answered 408 and disconnected', async () => {
    let wrote = 0;
    const r = await rawRequest(port, async (s) => {
      for (const ch of 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaa') {
        if (s.destroyed) return;
        s.write(ch);
        wrote++;
        await new Promise((ok) => setTimeout(ok, 250));
      }
    });
    assert.ok(r.closedAfterMs < 4000, `closed after ${r.closedAfterMs} ms`);
    assert.ok(wrote < 20, `the client got to write ${wrote} bytes`);
    const res = parseRaw(r.text);
    assert.equal(res.status, 408);
    assertErrorShape(res.status, res.headers, res.body, 'MR_REQUEST_TIMEOUT');
  });

  test('headers too large are answered 431 in the error shape', async () => {
    const r = await rawRequest(port, (s) => {
      s.write(`GET /api/v1/session HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    });
    const res = parseRaw(r.text);
    assert.equal(res.status, 431);
    assertErrorShape(res.status, res.headers, res.body, 'MR_HEADERS_TOO_LARGE');
  });

  test('one address cannot hold more connections than HTTP_MAX_CONNECTIONS_PER_ADDRESS', async () => {
    const sockets = await Promise.all(
      Array.from({ length: 25 }, () => new Promise<net.Socket>((ok) => {
        const s = net.connect(port, '127.0.0.1', () => ok(s));
        s.on('error', () => {});
      })),
    );
    await new Promise((ok) => setTimeout(ok, 200));
    const open = sockets.filter((s) => !s.destroyed && s.readyState === 'open');
    for (const s of sockets) s.destroy();
    assert.equal(open.length, 20);
  });
});

describe('through inject()', () => {
  let t: TestMailroom;
  let agent: Agent;
  before(async () => {
    t = await startTestMailroom({ TRUST_PROXY: '10.0.0.0/8' });
    agent = await loginAgent(t);
  });
  after(() => t.close());

  const loginIps = async () => (await t.mr.audit.list({ limit: '200' })).items.filter((e) => e.action === 'auth.login').map((e) => e.details?.ip);

  test('X-Forwarded-For is ignored from an untrusted peer and honoured from a trusted proxy', async () => {
    const forged = await t.app.inject({ method: 'POST', url: '/api/v1/session', remoteAddress: '198.51.100.10', headers: { 'x-forwarded-for': '192.0.2.99' }, payload: ADMIN });
    assert.equal(forged.statusCode, 200);
    const proxied = await t.app.inject({ method: 'POST', url: '/api/v1/session', remoteAddress: '10.0.0.5', headers: { 'x-forwarded-for': '203.0.113.7' }, payload: ADMIN });
    assert.equal(proxied.statusCode, 200);
    const ips = await loginIps();
    assert.ok(ips.includes('198.51.100.10') && !ips.includes('192.0.2.99'), 'the forged address is not recorded');
    assert.ok(ips.includes('203.0.113.7'), 'the client behind the trusted proxy is recorded');
  });

  test('a forged X-Forwarded-For does not dodge the per-address login limit', async () => {
    const statuses = [];
    for (let i = 0; i < 25; i++) {
      const r = await t.app.inject({ method: 'POST', url: '/api/v1/session', remoteAddress: '198.51.100.66', headers: { 'x-forwarded-for': `192.0.2.${i}` }, payload: { email: `user${i}@example.test`, password: 'guess' } });
      statuses.push(r.statusCode);
    }
    assert.equal(statuses.filter((s) => s === 401).length, 20);
    assert.equal(statuses.filter((s) => s === 429).length, 5);
  });

  test('malformed JSON without credentials is 401, not 400', async () => {
    const r = await t.app.inject({ method: 'POST', url: '/api/v1/mail-servers', headers: { 'content-type': 'application/json' }, payload: '{"name": ' });
    assert.equal(r.statusCode, 401);
  });

  test('errors of the HTTP layer itself follow the error shape with the security headers', async () => {
    const cases: Array<[string, string, number, string, Record<string, string>?, string?]> = [
      ['GET', '/api/v1/mail-servers/%E0%A4%A', 400, 'MR_BAD_REQUEST'],
      ['GET', `/api/v1/mail-servers/${'a'.repeat(300)}`, 414, 'MR_URI_TOO_LONG'],
      ['GET', '/api/v1/no-such-route', 404, 'MR_NOT_FOUND'],
      ['POST', '/api/v1/mail-servers', 415, 'MR_UNSUPPORTED_MEDIA_TYPE', { 'content-type': 'application/xml' }, '<server/>'],
      ['POST', '/api/v1/mail-servers', 413, 'MR_PAYLOAD_TOO_LARGE', { 'content-type': 'application/json' }, JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) })],
      ['POST', '/api/v1/session', 413, 'MR_PAYLOAD_TOO_LARGE', { 'content-type': 'application/json' }, JSON.stringify({ email: 'x'.repeat(64 * 1024) })],
    ];
    for (const [method, url, status, code, headers, payload] of cases) {
      const r = await t.app.inject({ method: method as 'GET', url, headers: { cookie: agent.cookie, 'x-csrf-token': agent.csrfToken, ...headers }, ...(payload !== undefined && { payload }) });
      assert.equal(r.statusCode, status, `${method} ${url.slice(0, 40)}: ${r.body.slice(0, 200)}`);
      assertErrorShape(r.statusCode, r.headers, r.body, code);
    }
  });

  test('deeply nested JSON is a 400 naming the body, also with an Idempotency-Key', async () => {
    const { key } = await t.mr.apiKeys.create({ name: 'ERP', scope: 'send' }, null);
    const deep = '['.repeat(50_000) + ']'.repeat(50_000);
    for (const payload of [deep, JSON.stringify({ to: 'a@b.example', headers: JSON.parse('{"a":'.repeat(40) + '1' + '}'.repeat(40)) })]) {
      const r = await t.app.inject({ method: 'POST', url: '/api/v1/messages', headers: { authorization: `Bearer ${key}`, 'idempotency-key': 'deep-1', 'content-type': 'application/json' }, payload });
      assert.equal(r.statusCode, 400, r.body.slice(0, 200));
      assert.equal(r.json().error.field, 'body');
    }
  });

  test('repeated or fractional query parameters are a 400 naming the parameter', async () => {
    const cases: Array<[string, string]> = [
      ['/api/v1/incoming-servers/reusable-connections?username=a@b.example&username=c@d.example', 'username'],
      ['/api/v1/audit-events?targetId=a&targetId=b', 'targetId'],
      ['/api/v1/audit-events?limit=1.5', 'limit'],
      ['/api/v1/messages?limit=0', 'limit'],
      ['/api/v1/messages?q=a&q=b', 'q'],
      ['/api/v1/inbound-messages?cursor=a&cursor=b', 'cursor'],
    ];
    for (const [url, field] of cases) {
      const r = await agent.request('GET', url);
      assert.equal(r.status, 400, `${url}: ${r.body}`);
      assert.equal(r.json.error.code, 'MR_VALIDATION');
      assert.equal(r.json.error.field, field, url);
    }
    const hook = await agent.request('POST', '/api/v1/webhooks', { url: 'https://erp.example.test/hook' });
    const r = await agent.request('GET', `/api/v1/webhooks/${hook.json.id}/deliveries?limit=1.5`);
    assert.equal(r.status, 400);
    assert.equal(r.json.error.field, 'limit');
  });

  test('responses that carry a key, a webhook secret or a CSRF token are not cacheable', async () => {
    const session = await t.app.inject({ method: 'POST', url: '/api/v1/session', payload: ADMIN });
    assert.equal(session.headers['cache-control'], 'no-store');
    const created = await agent.request('POST', '/api/v1/api-keys', { name: 'Cache check', scope: 'read' });
    assert.equal(created.headers['cache-control'], 'no-store');
    const hook = await agent.request('POST', '/api/v1/webhooks', { url: 'https://erp.example.test/cache' });
    assert.ok(hook.json.secret, 'the webhook secret is in the response');
    assert.equal(hook.headers['cache-control'], 'no-store');
    assert.equal((await agent.request('GET', '/api/v1/session')).headers['cache-control'], 'no-store');
    assert.equal(session.headers['strict-transport-security'], undefined, 'no HSTS on plain http');
  });

  test('logging out needs the CSRF token', async () => {
    const a = await loginAgent(t);
    const forged = await t.app.inject({ method: 'DELETE', url: '/api/v1/session', headers: { cookie: a.cookie } });
    assert.equal(forged.statusCode, 403);
    assert.equal((await a.request('GET', '/api/v1/session')).status, 200, 'the session survived the forged logout');
    assert.equal((await a.request('DELETE', '/api/v1/session')).status, 204);
    assert.equal((await t.app.inject({ method: 'DELETE', url: '/api/v1/session' })).statusCode, 204, 'without a session it only clears the cookie');
  });

  test('an Idempotency-Key belongs to the API key that used it', async () => {
    await agent.request('POST', '/api/v1/mail-servers', { name: 'Idem', authType: 'outlook_oauth', username: 'idem@contoso.example', clientId: '3f0c2d1e-5b6a-4c7d-8e9f-0a1b2c3d4e5f', clientSecret: 'Xy8Q~s3cr3t.Value-Only_Shown~Once1234567', tenant: 'common' });
    const a = await t.mr.apiKeys.create({ name: 'A', scope: 'send' }, null);
    const b = await t.mr.apiKeys.create({ name: 'B', scope: 'send' }, null);
    const body = { from: 'idem@contoso.example', to: 'x@y.example', subject: 'Invoice', text: 'Hi' };
    const send = (key: string, payload: object) => t.app.inject({ method: 'POST', url: '/api/v1/messages', headers: { authorization: `Bearer ${key}`, 'idempotency-key': 'order-7' }, payload });
    const first = await send(a.key, body);
    assert.equal(first.statusCode, 202, first.body);
    const other = await send(b.key, body);
    assert.equal(other.statusCode, 202);
    assert.notEqual(other.json().id, first.json().id, 'B gets a message of its own, not A\'s');
    const otherBody = await send(b.key, { ...body, subject: 'Something else' });
    assert.equal(otherBody.statusCode, 409, 'B\'s own key is checked against B\'s own message');
    assert.equal((await send(a.key, body)).json().id, first.json().id, 'A still replays its own');
  });

  test('search text with % and _ matches those characters, not any text', async () => {
    const { key } = await t.mr.apiKeys.create({ name: 'Search', scope: 'send' }, null);
    for (const subject of ['Rebate 100% paid', 'Rebate 1000 paid', 'file_name.pdf', 'filename.pdf']) {
      const r = await t.app.inject({ method: 'POST', url: '/api/v1/messages', headers: { authorization: `Bearer ${key}` }, payload: { from: 'idem@contoso.example', to: 'x@y.example', subject, text: 'Hi' } });
      assert.equal(r.statusCode, 202, r.body);
    }
    const subjects = async (q: string) => (await agent.request('GET', `/api/v1/messages?q=${encodeURIComponent(q)}`)).json.items.map((m: { subject: string }) => m.subject);
    assert.deepEqual(await subjects('100%'), ['Rebate 100% paid']);
    assert.deepEqual(await subjects('e_n'), ['file_name.pdf']);
    assert.deepEqual((await subjects('REBATE')).sort(), ['Rebate 1000 paid', 'Rebate 100% paid'].sort());
  });
});

test('with an https BASE_URL responses carry HSTS', async () => {
  const t = await startTestMailroom({ BASE_URL: 'https://mail.example.test' });
  try {
    const r = await t.app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(r.headers['strict-transport-security'], 'max-age=31536000');
  } finally {
    await t.close();
  }
});

test('DATA_DIR is 0700 and the database and key files 0600', async () => {
  const t = await startTestMailroom();
  try {
    await loginAgent(t);
    const mode = (p: string) => statSync(join(t.dataDir, p)).mode & 0o777;
    assert.equal(mode('.'), 0o700);
    for (const f of ['mailroom.sqlite', 'mailroom.sqlite-wal', 'mailroom.sqlite-shm', 'secret.key']) assert.equal(mode(f), 0o600, f);
  } finally {
    await t.close();
  }
});

test('admin create reads the password from standard input or MAILROOM_ADMIN_PASSWORD', async () => {
  const t = await startTestMailroom();
  const dataDir = t.dataDir;
  await t.mr.close();
  const bin = fileURLToPath(new URL('../../bin/mailroom.js', import.meta.url));
  const env = { PATH: process.env.PATH ?? '', DATA_DIR: dataDir, LOG_LEVEL: 'silent' };
  const stdin = spawnSync(process.execPath, [bin, 'admin', 'create', '--email', 'stdin@example.test', '--password-stdin'], { env, input: 'piped long passphrase\n', encoding: 'utf8' });
  assert.equal(stdin.status, 0, stdin.stderr);
  const fromEnv = spawnSync(process.execPath, [bin, 'admin', 'create', '--email', 'env@example.test'], { env: { ...env, MAILROOM_ADMIN_PASSWORD: 'environment passphrase' }, encoding: 'utf8' });
  assert.equal(fromEnv.status, 0, fromEnv.stderr);
  const none = spawnSync(process.execPath, [bin, 'admin', 'create', '--email', 'none@example.test'], { env, encoding: 'utf8' });
  assert.equal(none.status, 2);
  assert.match(none.stderr, /--password-stdin/);
  const again = await startTestMailroom({ DATA_DIR: dataDir });
  try {
    assert.ok(await again.mr.admins.checkCredentials('stdin@example.test', 'piped long passphrase'));
    assert.ok(await again.mr.admins.checkCredentials('env@example.test', 'environment passphrase'));
  } finally {
    await again.close();
    await t.app.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
