import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { prng } from '../helpers/prng.ts';
import { loginAgent, startTestMailroom, type Agent, type TestMailroom, VALID_SERVER } from '../helpers/test-mailroom.ts';

// A bounded, seeded fuzz over every route in the OpenAPI document (and the few outside /api): hostile
// path parameters, query strings, bodies, headers and credentials. Any 5xx, or an error answer that is
// not {"error":{"code":"MR_…","message"}}, fails the test with the request that caused it.
const SEED = Number(process.env.FUZZ_SEED ?? 20261203);
const PER_OPERATION = Number(process.env.FUZZ_PER_OPERATION ?? 40);

const rand = prng(SEED).next;
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const chance = (p: number) => rand() < p;

const STRINGS = [
  '',
  ' ',
  'a',
  'null',
  '0',
  '-1',
  '1.5',
  '1e309',
  'NaN',
  '201',
  '%',
  '_',
  '\\',
  "'; drop table admins; --",
  '<script>alert(1)</script>',
  'é€𝄞',
  '\u0000',
  'a\r\nBcc: victim@example.test',
  'sales@contoso.example',
  'Name <a@b.example>',
  '00000000-0000-4000-8000-000000000000',
  'x'.repeat(300),
  'y'.repeat(10_000),
  '\n'.repeat(5_000) + '!',
  'a@' + 'a.'.repeat(2_000),
  'QUJD',
  '2026-13-45',
  'https://erp.example.test/hook',
  'http://127.0.0.1:1/',
];
const PATH_VALUES = ['00000000-0000-4000-8000-000000000000', 'nope', '..%2f..', '%00', '%E0%A4%A', 'é', '1', 'x'.repeat(99), 'x'.repeat(150), 'a%20b', '__proto__'];
const QUERY_KEYS = ['limit', 'cursor', 'q', 'state', 'targetId', 'username', 'order', 'after', 'serverId', 'mailServerId', '__proto__', 'constructor'];

function value(depth: number, fields: string[]): unknown {
  const r = rand();
  if (depth > 3 || r < 0.35) return pick([...STRINGS, 0, -1, 1.5, 1e308, Number.MAX_SAFE_INTEGER + 2, true, false, null]);
  if (r < 0.5) return Array.from({ length: Math.floor(rand() * 4) }, () => value(depth + 1, fields));
  const o: Record<string, unknown> = {};
  for (let i = Math.floor(rand() * 6); i > 0; i--) o[chance(0.8) && fields.length ? pick(fields) : pick(['__proto__', 'constructor', 'prototype', 'x', 'é'])] = value(depth + 1, fields);
  return o;
}

function body(fields: string[]): { payload: string; contentType: string } | undefined {
  const r = rand();
  if (r < 0.1) return undefined;
  if (r < 0.15) return { payload: '{"a":', contentType: 'application/json' };
  if (r < 0.2) return { payload: '['.repeat(20_000) + ']'.repeat(20_000), contentType: 'application/json' };
  if (r < 0.25) return { payload: 'hello', contentType: pick(['text/plain', 'application/xml', 'multipart/form-data', 'application/x-www-form-urlencoded']) };
  if (r < 0.3) return { payload: JSON.stringify(value(0, fields)), contentType: 'application/json; charset=latin1' };
  const top: Record<string, unknown> = {};
  for (const f of fields) if (chance(0.6)) top[f] = value(1, fields);
  return { payload: JSON.stringify(chance(0.9) ? top : value(0, fields)), contentType: 'application/json' };
}

function query(): string {
  const parts: string[] = [];
  for (let i = Math.floor(rand() * 4); i > 0; i--) {
    const k = pick(QUERY_KEYS);
    const times = chance(0.2) ? 2 : 1;
    for (let j = 0; j < times; j++) parts.push(`${encodeURIComponent(k)}${chance(0.1) ? '[]' : ''}=${chance(0.1) ? pick(['%', '%ZZ', '%E0']) : encodeURIComponent(pick(STRINGS))}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

let t: TestMailroom;
let agent: Agent;
const keys: Record<string, string> = {};

before(async () => {
  t = await startTestMailroom({ MICROSOFT_AUTHORITY_HOST: 'https://login.example.test' });
  agent = await loginAgent(t);
  for (const scope of ['read', 'send', 'admin']) keys[scope] = (await t.mr.apiKeys.create({ name: `fuzz ${scope}`, scope }, null)).key;
  // Something to find, so routes get past "not found" too.
  await agent.request('POST', '/api/v1/mail-servers', VALID_SERVER);
});
after(() => t.close());

test(`no request to any route gets a 5xx or an error off the shape (seed ${SEED})`, async () => {
  const doc = (await t.app.inject({ method: 'GET', url: '/api/openapi.json' })).json() as {
    paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties?: Record<string, unknown> } }> } }>>;
  };
  const ops: Array<{ method: string; path: string; fields: string[] }> = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      ops.push({ method: method.toUpperCase(), path, fields: Object.keys(op.requestBody?.content['application/json']?.schema.properties ?? {}) });
    }
  }
  for (const path of ['/oauth2/outlook/callback', '/healthz', '/readyz', '/metrics', '/api/openapi.json']) ops.push({ method: 'GET', path, fields: [] });
  assert.ok(ops.length > 40, `${ops.length} operations`);

  const failures: string[] = [];
  let requests = 0;
  for (const op of ops) {
    for (let i = 0; i < PER_OPERATION; i++) {
      const url = op.path.replace(/\{\w+\}/g, () => pick(PATH_VALUES)) + query();
      const headers: Record<string, string> = {};
      const cred = pick(['none', 'session', 'session-no-csrf', 'read', 'send', 'admin', 'bad-key', 'garbage']);
      if (cred === 'session' || cred === 'session-no-csrf') headers.cookie = agent.cookie;
      if (cred === 'session') headers['x-csrf-token'] = agent.csrfToken;
      if (keys[cred]) headers.authorization = `Bearer ${keys[cred]}`;
      if (cred === 'bad-key') headers.authorization = 'Bearer mr_not-a-key';
      if (cred === 'garbage') headers.authorization = pick(['Basic Zm9vOmJhcg==', 'Bearer', 'Bearer a b', 'x'.repeat(5000)]);
      if (chance(0.3)) headers['idempotency-key'] = pick(STRINGS.filter((s) => !/[\r\n\u0000]/.test(s)));
      const b = op.method === 'GET' || op.method === 'DELETE' ? (chance(0.1) ? body(op.fields) : undefined) : body(op.fields);
      if (b) headers['content-type'] = b.contentType;
      const res = await t.app.inject({ method: op.method as 'GET', url, headers, remoteAddress: `198.18.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}`, ...(b && { payload: b.payload }) });
      requests++;
      const what = `${op.method} ${url.slice(0, 120)} [${cred}] ${b ? b.payload.slice(0, 120) : ''} → ${res.statusCode} ${res.body.slice(0, 200)}`;
      if (res.statusCode >= 500 && !(op.path === '/readyz' && res.statusCode === 503)) {
        const logged = t.logs.filter((l) => l.includes('"level":50')).pop() ?? '';
        failures.push(`${what}\n    logged: ${logged.slice(0, 600)}`);
      } else if (res.statusCode >= 400 && op.path !== '/readyz') {
        if (res.headers['x-content-type-options'] !== 'nosniff') failures.push(`no security headers: ${what}`);
        // The OAuth callback is a browser navigation: it may answer with a page instead.
        if (op.path.startsWith('/oauth2/') && String(res.headers['content-type']).startsWith('text/html')) continue;
        try {
          const e = (res.json() as { error?: { code?: unknown; message?: unknown } }).error;
          if (typeof e?.code !== 'string' || !/^MR_[A-Z_]+$/.test(e.code) || typeof e.message !== 'string') failures.push(`off-shape: ${what}`);
        } catch {
          failures.push(`not JSON: ${what}`);
        }
      }
      // A fuzzed logout ends the shared session: log in again so later requests still reach the routes.
      if (op.path === '/api/v1/session' && op.method === 'DELETE' && res.statusCode === 204 && cred === 'session') agent = await loginAgent(t);
    }
  }
  assert.deepEqual(failures.slice(0, 20), [], `${failures.length} of ${requests} requests failed`);
});
