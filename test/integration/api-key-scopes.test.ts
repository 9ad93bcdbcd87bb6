import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { importInboundMessages, type NewInboundMessage } from '../../src/storage/inbound-store.ts';
import { loginAgent, startTestMailroom, type Agent, type TestMailroom, VALID_SERVER } from '../helpers/test-mailroom.ts';

type Scope = 'send' | 'outbox:read' | 'inbound:read' | 'connect' | 'admin';

// What each key may call, written out by hand (not read from the code under test): a key whose scope
// is not listed must get 403 MR_AUTH_FORBIDDEN; one that is listed must get past authorization (a 2xx,
// or a 4xx about the deliberately bad input: an unknown id, an empty body). `anyone`: routes without
// authorization (logging in and out, first setup); `session`: only an admin signed in to the web UI,
// so every key is 403 whatever its scopes.
const ROUTES: Record<string, readonly Scope[] | 'anyone' | 'session'> = {
  'GET /api/v1/session': 'session',
  'POST /api/v1/session': 'anyone',
  'DELETE /api/v1/session': 'anyone',
  'POST /api/v1/setup': 'anyone',
  // Microsoft Graph posts here without credentials; only a known subscription with its clientState counts.
  'POST /graph/notifications': 'anyone',
  'POST /graph/lifecycle': 'anyone',

  'GET /api/v1/mail-servers/defaults': ['admin'],
  'GET /api/v1/mail-servers': ['admin'],
  'POST /api/v1/mail-servers': ['admin'],
  'GET /api/v1/mail-servers/{id}': ['admin'],
  'PATCH /api/v1/mail-servers/{id}': ['admin'],
  'DELETE /api/v1/mail-servers/{id}': ['admin'],
  'POST /api/v1/mail-servers/{id}/connect': 'session',
  'POST /api/v1/mail-servers/{id}/disconnect': ['admin'],
  'GET /api/v1/mail-servers/{id}/admin-consent-url': ['admin'],
  'GET /api/v1/mail-servers/{id}/application-guide': ['admin'],
  'POST /api/v1/mail-servers/{id}/test': ['admin'],
  'POST /api/v1/mail-servers/{id}/send-test': ['admin'],
  'POST /api/v1/mail-servers/{id}/certificate': ['admin'],
  'POST /api/v1/mail-servers/{id}/certificate/import': ['admin'],
  'POST /api/v1/mail-servers/{id}/certificate/roll': ['admin'],
  'POST /api/v1/mail-servers/{id}/certificate/dismiss-rolled': ['admin'],
  'GET /api/v1/mail-servers/{id}/certificate.pem': ['admin'],
  'GET /api/v1/mail-servers/{id}/certificate.cer': ['admin'],
  'POST /api/v1/mail-servers/bulk': ['admin'],
  'GET /api/v1/owners': ['admin'],

  // An ERP hands its users links to connect their own mailbox: the connect scope does only that.
  'POST /api/v1/connect-links': ['connect', 'admin'],
  'POST /api/v1/mailboxes': ['connect', 'admin'],

  'POST /api/v1/messages': ['send', 'admin'],
  'GET /api/v1/messages': ['send', 'outbox:read', 'admin'],
  'GET /api/v1/messages/{id}': ['send', 'outbox:read', 'admin'],
  'POST /api/v1/messages/{id}/retry': ['send', 'admin'],
  'POST /api/v1/messages/{id}/cancel': ['send', 'admin'],

  'GET /api/v1/api-keys': ['admin'],
  'POST /api/v1/api-keys': ['admin'],
  'DELETE /api/v1/api-keys/{id}': ['admin'],

  'GET /api/v1/incoming-servers/defaults': ['admin'],
  'GET /api/v1/incoming-servers/reusable-connections': ['admin'],
  'GET /api/v1/incoming-servers': ['admin'],
  'POST /api/v1/incoming-servers': ['admin'],
  'GET /api/v1/incoming-servers/{id}': ['admin'],
  'PATCH /api/v1/incoming-servers/{id}': ['admin'],
  'DELETE /api/v1/incoming-servers/{id}': ['admin'],
  'POST /api/v1/incoming-servers/{id}/connect': 'session',
  'GET /api/v1/incoming-servers/{id}/admin-consent-url': ['admin'],
  'GET /api/v1/incoming-servers/{id}/application-guide': ['admin'],
  'POST /api/v1/incoming-servers/{id}/disconnect': ['admin'],
  'POST /api/v1/incoming-servers/{id}/test': ['admin'],
  'POST /api/v1/incoming-servers/{id}/fetch': ['admin'],
  'POST /api/v1/incoming-servers/bulk': ['admin'],
  'POST /api/v1/incoming-servers/{id}/certificate': ['admin'],
  'POST /api/v1/incoming-servers/{id}/certificate/import': ['admin'],
  'POST /api/v1/incoming-servers/{id}/certificate/roll': ['admin'],
  'POST /api/v1/incoming-servers/{id}/certificate/dismiss-rolled': ['admin'],
  'GET /api/v1/incoming-servers/{id}/certificate.pem': ['admin'],
  'GET /api/v1/incoming-servers/{id}/certificate.cer': ['admin'],

  'GET /api/v1/inbound-messages': ['inbound:read', 'admin'],
  'GET /api/v1/inbound-messages/{id}': ['inbound:read', 'admin'],
  'GET /api/v1/inbound-messages/{id}/raw': ['inbound:read', 'admin'],
  'GET /api/v1/inbound-messages/{id}/attachments/{index}': ['inbound:read', 'admin'],

  'GET /api/v1/suppressions': ['outbox:read', 'admin'],
  'DELETE /api/v1/suppressions/{address}': ['send', 'admin'],
  'GET /api/v1/delivery-reports': ['outbox:read', 'admin'],
  'GET /api/v1/mail-servers/{id}/report-settings': ['admin'],
  'PATCH /api/v1/mail-servers/{id}/report-settings': ['admin'],
  'POST /api/v1/mail-servers/{id}/watch': ['admin'],

  'GET /api/v1/webhooks': ['admin'],
  'POST /api/v1/webhooks': ['admin'],
  'PATCH /api/v1/webhooks/{id}': ['admin'],
  'DELETE /api/v1/webhooks/{id}': ['admin'],
  'GET /api/v1/webhooks/{id}/deliveries': ['admin'],
  'POST /api/v1/webhook-deliveries/{id}/redeliver': ['admin'],

  'GET /api/v1/health/servers': ['outbox:read', 'inbound:read', 'admin'],
  'GET /api/v1/audit-events': ['admin'],
};
/** Not in the OpenAPI document (Prometheus' text format), guarded all the same. */
const OUTSIDE_DOC: Record<string, readonly Scope[]> = { 'GET /metrics': ['outbox:read', 'inbound:read', 'admin'] };

const KEY_SETS: Record<string, Scope[]> = {
  send: ['send'],
  'outbox:read': ['outbox:read'],
  'inbound:read': ['inbound:read'],
  connect: ['connect'],
  admin: ['admin'],
  'send+outbox:read+inbound:read': ['send', 'outbox:read', 'inbound:read'],
};

const NO_SUCH_ID = '00000000-0000-4000-8000-000000000000';

let t: TestMailroom;
let admin: Agent;
const keys: Record<string, string> = {};
const keyIds: Record<string, string> = {};
let sales: string;
let relay: string;
let inA: string;
let inB: string;

const newKey = async (name: string, body: object) => {
  const r = await admin.request('POST', '/api/v1/api-keys', { name, ...body });
  assert.equal(r.status, 201, r.body);
  return r.json as { id: string; key: string; scopes: Scope[]; mailServerIds: string[] | null; incomingServerIds: string[] | null };
};

const call = async (key: string, method: string, url: string, payload?: object) => {
  const r = await t.app.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${key}` }, ...(payload && { payload }) });
  let json: any;
  try {
    json = r.json();
  } catch {
    json = undefined;
  }
  return { status: r.statusCode, json, body: r.body };
};

function inbound(id: string, serverId: string, subject: string): NewInboundMessage {
  return {
    id,
    serverId,
    folder: 'INBOX',
    uidValidity: '1',
    uid: 1,
    dedupeKey: `dedupe-${id}`,
    messageId: `<${id}@sender.example>`,
    from: 'sender@sender.example',
    to: ['payroll@contoso.example'],
    cc: [],
    subject,
    date: null,
    inReplyTo: null,
    references: [],
    text: 'confidential',
    html: null,
    attachments: [],
    sizeBytes: 40,
    raw: { mime: Buffer.from(`Subject: ${subject}\r\n\r\nconfidential\r\n`) },
    outboxMessageId: null,
    afterFetchPending: false,
  };
}

before(async () => {
  t = await startTestMailroom();
  admin = await loginAgent(t);
  sales = (await admin.request('POST', '/api/v1/mail-servers', VALID_SERVER)).json.id;
  const r = await admin.request('POST', '/api/v1/mail-servers', { ...VALID_SERVER, name: 'Relay for example.com', username: 'relay@example.com', fromFilter: 'example.com', priority: 20 });
  assert.equal(r.status, 201, r.body);
  relay = r.json.id;
  const incoming = async (name: string, username: string) => {
    const c = await admin.request('POST', '/api/v1/incoming-servers', { name, username, clientId: VALID_SERVER.clientId, clientSecret: VALID_SERVER.clientSecret, active: false, afterFetch: 'leave' });
    assert.equal(c.status, 201, c.body);
    return c.json.id as string;
  };
  inA = await incoming('Payroll inbox', 'payroll@contoso.example');
  inB = await incoming('Support inbox', 'support@contoso.example');
  await importInboundMessages(t.mr.database.db, { serverId: inA, folder: 'INBOX', uidValidity: '1', lastUid: 1 }, [inbound('in-a', inA, 'Payroll Q4')], [], () => 'd1', new Date());
  await importInboundMessages(t.mr.database.db, { serverId: inB, folder: 'INBOX', uidValidity: '1', lastUid: 1 }, [inbound('in-b', inB, 'Support ticket')], [], () => 'd2', new Date());
  for (const [name, scopes] of Object.entries(KEY_SETS)) {
    const k = await newKey(name, { scopes });
    keys[name] = k.key;
    keyIds[name] = k.id;
  }
});
after(() => t.close());

test('every route of the OpenAPI document, with a key of each scope: allowed as written here, or 403 MR_AUTH_FORBIDDEN', async () => {
  const doc = (await t.app.inject({ method: 'GET', url: '/api/openapi.json' })).json() as { paths: Record<string, Record<string, unknown>> };
  const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
  // A new route needs its row here: the table is the access policy, reviewed by a person.
  assert.deepEqual([...documented].sort(), Object.keys(ROUTES).sort());
  const problems: string[] = [];
  for (const [route, allowed] of [...Object.entries(ROUTES), ...Object.entries(OUTSIDE_DOC)]) {
    const [method, path] = route.split(' ') as [string, string];
    const url = path.replace(/\{\w+\}/g, NO_SUCH_ID);
    for (const [name, scopes] of Object.entries(KEY_SETS)) {
      const r = await call(keys[name]!, method, url, method === 'POST' || method === 'PATCH' ? {} : undefined);
      const may = allowed === 'anyone' || (allowed !== 'session' && scopes.some((s) => allowed.includes(s)));
      if (may) {
        if (r.status >= 500 || r.status === 401 || r.status === 403) problems.push(`${route} with ${name}: expected allowed, got ${r.status} ${r.body.slice(0, 200)}`);
      } else if (r.status !== 403 || r.json?.error?.code !== 'MR_AUTH_FORBIDDEN') {
        problems.push(`${route} with ${name}: expected 403 MR_AUTH_FORBIDDEN, got ${r.status} ${r.body.slice(0, 200)}`);
      }
    }
  }
  assert.deepEqual(problems, []);
});

test('a refusal names the scopes the key has and the ones the request needs', async () => {
  const r = await call(keys.send!, 'GET', '/api/v1/inbound-messages');
  assert.equal(r.status, 403);
  assert.equal(r.json.error.message, 'This API key has the scope send; this request needs inbound:read or admin.');
  assert.match(r.json.error.fix, /Settings > Technical > API Keys/);
  const s = await call(keys.admin!, 'POST', `/api/v1/mail-servers/${sales}/connect`);
  assert.equal(s.status, 403);
  assert.match(s.json.error.message, /admin signed in to the web UI/);
});

test('a send key sees, retries and cancels only what it queued: another key\'s message is 404, received mail 403', async () => {
  const other = await newKey('Reporting tool', { scope: 'send' });
  const payroll = await call(keys.send!, 'POST', '/api/v1/messages', { from: 'sales@contoso.example', to: ['staff@contoso.example'], subject: 'confidential payroll Q4', text: 'x' });
  assert.equal(payroll.status, 202);
  const id = payroll.json.id as string;
  assert.equal(payroll.json.apiKeyId, keyIds.send);

  const list = await call(other.key, 'GET', '/api/v1/messages?limit=200');
  assert.equal(list.status, 200);
  assert.ok(!list.json.items.some((m: { id: string }) => m.id === id), 'another send key does not list it');
  assert.ok(!(await call(other.key, 'GET', '/api/v1/messages?q=payroll')).json.items.length, 'nor find it by search');
  for (const [method, url] of [['GET', `/api/v1/messages/${id}`], ['POST', `/api/v1/messages/${id}/cancel`], ['POST', `/api/v1/messages/${id}/retry`]] as const) {
    const r = await call(other.key, method, url);
    assert.equal(r.status, 404, `${method} ${url}`);
    // The same answer as for a message that does not exist: nothing says it does.
    assert.equal(r.json.error.message, `Message ${id} does not exist.`);
  }
  for (const url of ['/api/v1/inbound-messages', '/api/v1/inbound-messages/in-a', '/api/v1/inbound-messages/in-a/raw']) {
    assert.equal((await call(other.key, 'GET', url)).status, 403, url);
  }

  // The key that queued it lists it; outbox:read sees every message but cannot cancel; a key that
  // reads everything and sends too is told why it may not cancel another key's message.
  assert.ok((await call(keys.send!, 'GET', '/api/v1/messages?limit=200')).json.items.some((m: { id: string }) => m.id === id));
  assert.equal((await call(keys['outbox:read']!, 'GET', `/api/v1/messages/${id}`)).json.subject, 'confidential payroll Q4');
  assert.equal((await call(keys['outbox:read']!, 'POST', `/api/v1/messages/${id}/cancel`)).status, 403);
  const both = await call(keys['send+outbox:read+inbound:read']!, 'POST', `/api/v1/messages/${id}/cancel`);
  assert.equal(both.status, 403);
  assert.equal(both.json.error.code, 'MR_AUTH_FORBIDDEN');
  assert.match(both.json.error.message, /may cancel only the messages it queued/);
  assert.equal((await call(keys.send!, 'GET', `/api/v1/messages/${id}`)).json.state, 'queued', 'nothing was cancelled by the refused calls');

  const cancelled = await call(keys.send!, 'POST', `/api/v1/messages/${id}/cancel`);
  assert.equal(cancelled.status, 200);
  assert.equal(cancelled.json.state, 'cancelled');
  assert.equal((await call(keys.send!, 'POST', `/api/v1/messages/${id}/retry`)).json.state, 'queued');
  assert.equal((await call(keys.admin!, 'POST', `/api/v1/messages/${id}/cancel`)).json.state, 'cancelled', 'an admin key acts on any message');
});

test('a message queued from an admin session (no key) is seen by outbox:read and admin only', async () => {
  const m = await admin.request('POST', '/api/v1/messages', { from: 'sales@contoso.example', to: ['a@b.example'], subject: 'From the UI', text: 'x' });
  assert.equal(m.status, 202);
  assert.equal(m.json.apiKeyId, null);
  assert.equal((await call(keys.send!, 'GET', `/api/v1/messages/${m.json.id}`)).status, 404);
  assert.equal((await call(keys['outbox:read']!, 'GET', `/api/v1/messages/${m.json.id}`)).status, 200);
});

test('FROM Filtering applies to a named server: ceo@victim.test through the example.com relay is 422 naming the filter', async () => {
  const count = async () => (await call(keys.admin!, 'GET', `/api/v1/messages?mailServerId=${relay}&limit=200`)).json.items.length;
  const before = await count();
  for (const key of [keys.send!, keys.admin!]) {
    const r = await call(key, 'POST', '/api/v1/messages', { from: 'ceo@victim.test', to: ['bank@victim.test'], subject: 'Wire', text: 'x', mailServerId: relay });
    assert.equal(r.status, 422);
    assert.equal(r.json.error.code, 'MR_UNPROCESSABLE');
    assert.equal(r.json.error.field, 'from');
    assert.equal(r.json.error.message, 'The mail server "Relay for example.com" has FROM Filtering example.com: it sends only as addresses at example.com, not as ceo@victim.test.');
    assert.match(r.json.error.fix, /leave mailServerId out/);
  }
  // A display name does not change the address that is checked.
  const named = await call(keys.send!, 'POST', '/api/v1/messages', { from: 'Billing <ceo@victim.test>', to: ['a@b.example'], subject: 'x', text: 'x', mailServerId: relay });
  assert.equal(named.status, 422);
  assert.equal(await count(), before, 'nothing was queued');
  const ok = await call(keys.send!, 'POST', '/api/v1/messages', { from: 'Billing <Billing@Example.com>', to: ['a@b.example'], subject: 'x', text: 'x', mailServerId: relay });
  assert.equal(ok.status, 202, ok.body);
  assert.equal(ok.json.mailServerId, relay);
  // A mailbox without FROM Filtering sends only as its Username, even when named.
  const unfiltered = await call(keys.send!, 'POST', '/api/v1/messages', { from: 'ceo@victim.test', to: ['a@b.example'], subject: 'x', text: 'x', mailServerId: sales });
  assert.equal(unfiltered.status, 422, unfiltered.body);
  assert.match(unfiltered.json.error.message, /signs in as the mailbox sales@contoso\.example and has no FROM Filtering: it sends only as sales@contoso\.example, not as ceo@victim\.test/);
  assert.equal((await call(keys.send!, 'POST', '/api/v1/messages', { from: 'sales@contoso.example', to: ['a@b.example'], subject: 'x', text: 'x', mailServerId: sales })).status, 202);
});

test('a key limited to one outgoing server sends and reads only through it', async () => {
  const limited = await newKey('Relay only', { scopes: ['send', 'outbox:read'], mailServerIds: [relay] });
  assert.deepEqual(limited.mailServerIds, [relay]);
  // The automatic choice picks among its servers only: the open "sales" server (Priority 10) would win otherwise.
  const auto = await call(limited.key, 'POST', '/api/v1/messages', { from: 'a@example.com', to: ['x@y.example'], subject: 'Limited', text: 'x' });
  assert.equal(auto.status, 202, auto.body);
  assert.equal(auto.json.mailServerId, relay);
  const named = await call(limited.key, 'POST', '/api/v1/messages', { from: 'a@example.com', to: ['x@y.example'], subject: 'x', text: 'x', mailServerId: sales });
  assert.equal(named.status, 403);
  assert.equal(named.json.error.field, 'mailServerId');
  assert.match(named.json.error.message, new RegExp(`may not send through the mail server ${sales}`));
  // Said the same way for a server that does not exist.
  assert.equal((await call(limited.key, 'POST', '/api/v1/messages', { from: 'a@example.com', to: ['x@y.example'], subject: 'x', text: 'x', mailServerId: NO_SUCH_ID })).status, 403);
  const noServer = await call(limited.key, 'POST', '/api/v1/messages', { from: 'someone@other.example', to: ['x@y.example'], subject: 'x', text: 'x' });
  assert.equal(noServer.status, 422);
  assert.match(noServer.json.error.fix, /this API key may use only some servers/);

  // outbox:read of a limited key: its servers' messages, every key's, and none of the others.
  const viaSales = await call(keys.admin!, 'POST', '/api/v1/messages', { from: 'sales@contoso.example', to: ['x@y.example'], subject: 'Via sales', text: 'x' });
  const listed = (await call(limited.key, 'GET', '/api/v1/messages?limit=200')).json.items as Array<{ id: string; mailServerId: string }>;
  assert.ok(listed.length > 1 && listed.every((m) => m.mailServerId === relay));
  assert.equal((await call(limited.key, 'GET', `/api/v1/messages/${viaSales.json.id}`)).status, 404);
  const health = (await call(limited.key, 'GET', '/api/v1/health/servers')).json.items as Array<{ id: string }>;
  assert.deepEqual(health.map((s) => s.id), [relay]);
});

test('a key limited to one incoming server reads only its mail; raw MIME included', async () => {
  const limited = await newKey('Payroll reader', { scopes: ['inbound:read'], incomingServerIds: [inA] });
  const list = await call(limited.key, 'GET', '/api/v1/inbound-messages');
  assert.deepEqual(list.json.items.map((m: { id: string }) => m.id), ['in-a']);
  assert.deepEqual((await call(limited.key, 'GET', `/api/v1/inbound-messages?serverId=${inB}`)).json.items, []);
  assert.equal((await call(limited.key, 'GET', '/api/v1/inbound-messages/in-a')).json.subject, 'Payroll Q4');
  const raw = await call(limited.key, 'GET', '/api/v1/inbound-messages/in-a/raw');
  assert.equal(raw.status, 200);
  assert.match(raw.body, /^Subject: Payroll Q4/);
  for (const url of ['/api/v1/inbound-messages/in-b', '/api/v1/inbound-messages/in-b/raw']) {
    const r = await call(limited.key, 'GET', url);
    assert.equal(r.status, 404, url);
    assert.equal(r.json.error.message, 'Incoming message in-b does not exist.');
  }
  const health = (await call(limited.key, 'GET', '/api/v1/health/servers')).json.items as Array<{ id: string }>;
  assert.deepEqual(health.map((s) => s.id), [inA]);
  // An unlimited inbound:read key reads both.
  assert.equal((await call(keys['inbound:read']!, 'GET', '/api/v1/inbound-messages')).json.items.length, 2);
});

test('an attachment downloads as an attachment with a safe name, for keys that may read its server only', async () => {
  const pdf = Buffer.from('%PDF-1.4 payslip\n');
  const html = '<script>alert(1)</script>';
  const mime = [
    'Subject: Payslips',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b"',
    '',
    '--b',
    'Content-Type: text/plain',
    '',
    'See attached.',
    '--b',
    'Content-Type: application/pdf',
    'Content-Disposition: attachment; filename*=UTF-8\'\'Lohn%20M%C3%A4rz.pdf',
    'Content-Transfer-Encoding: base64',
    '',
    pdf.toString('base64'),
    '--b',
    'Content-Type: text/html',
    'Content-Disposition: attachment; filename="../evil.html"',
    '',
    html,
    '--b--',
    '',
  ].join('\r\n');
  const m = {
    ...inbound('in-att', inA, 'Payslips'),
    uid: 2,
    attachments: [
      { filename: 'Lohn März.pdf', contentType: 'application/pdf', size: pdf.length },
      { filename: 'evil.html', originalFilename: '../evil.html', contentType: 'text/html', size: html.length },
    ],
    raw: { mime: Buffer.from(mime) },
  };
  await importInboundMessages(t.mr.database.db, { serverId: inA, folder: 'INBOX', uidValidity: '1', lastUid: 2 }, [m], [], () => 'd3', new Date());
  const limited = await newKey('Payslip reader', { scopes: ['inbound:read'], incomingServerIds: [inA] });

  const first = await t.app.inject({ method: 'GET', url: '/api/v1/inbound-messages/in-att/attachments/0', headers: { authorization: `Bearer ${limited.key}` } });
  assert.equal(first.statusCode, 200, first.body);
  assert.deepEqual(first.rawPayload, pdf);
  assert.equal(first.headers['content-type'], 'application/octet-stream');
  assert.equal(first.headers['x-content-type-options'], 'nosniff');
  assert.equal(first.headers['content-disposition'], `attachment; filename="Lohn M_rz.pdf"; filename*=UTF-8''Lohn%20M%C3%A4rz.pdf`);

  const second = await t.app.inject({ method: 'GET', url: '/api/v1/inbound-messages/in-att/attachments/1', headers: { authorization: `Bearer ${limited.key}` } });
  assert.equal(second.body, html);
  assert.match(String(second.headers['content-disposition']), /^attachment; filename="evil\.html"/);
  assert.equal(second.headers['content-type'], 'application/octet-stream');

  const missing = await call(limited.key, 'GET', '/api/v1/inbound-messages/in-att/attachments/2');
  assert.equal(missing.status, 404);
  assert.match(missing.json.error.message, /has no attachment 2/);
  assert.equal((await call(limited.key, 'GET', '/api/v1/inbound-messages/in-att/attachments/x')).status, 404);
  // Another server's message is as missing as one that does not exist.
  const other = await newKey('Support reader', { scopes: ['inbound:read'], incomingServerIds: [inB] });
  const refused = await call(other.key, 'GET', '/api/v1/inbound-messages/in-att/attachments/0');
  assert.equal(refused.status, 404);
  assert.equal(refused.json.error.message, 'Incoming message in-att does not exist.');
  assert.equal((await call(keys.send!, 'GET', '/api/v1/inbound-messages/in-att/attachments/0')).status, 403);
});

test('creating a key: scopes or the one-scope shorthand, server limits checked, shown in the list', async () => {
  assert.deepEqual((await newKey('Old client', { scope: 'send' })).scopes, ['send']);
  assert.deepEqual((await newKey('Old reader', { scope: 'read' })).scopes, ['outbox:read', 'inbound:read']);
  const k = await newKey('Both', { scopes: ['inbound:read', 'send', 'send'], mailServerIds: [sales], incomingServerIds: [inB] });
  assert.deepEqual(k.scopes, ['send', 'inbound:read']);
  const listed = (await admin.request('GET', '/api/v1/api-keys')).json.items.find((x: { id: string }) => x.id === k.id);
  assert.deepEqual({ scopes: listed.scopes, mailServerIds: listed.mailServerIds, incomingServerIds: listed.incomingServerIds }, { scopes: ['send', 'inbound:read'], mailServerIds: [sales], incomingServerIds: [inB] });
  assert.ok(!('key' in listed));
  assert.equal((await admin.request('GET', '/api/v1/api-keys')).json.items.find((x: { id: string }) => x.id === keyIds.admin).mailServerIds, null);

  const bad: Array<[object, string, RegExp]> = [
    [{ name: 'x' }, 'scopes', /at least one scope/],
    [{ name: 'x', scopes: [] }, 'scopes', /at least one scope/],
    [{ name: 'x', scopes: ['read'] }, 'scopes.0', /one of send, outbox:read, inbound:read, connect, admin/],
    [{ name: 'x', scope: 'send', scopes: ['send'] }, 'scope', /not both/],
    [{ name: 'x', scopes: ['admin'], mailServerIds: [sales] }, 'mailServerIds', /admin key cannot be limited/],
    [{ name: 'x', scopes: ['inbound:read'], mailServerIds: [sales] }, 'mailServerIds', /send and outbox:read/],
    [{ name: 'x', scopes: ['send'], incomingServerIds: [inA] }, 'incomingServerIds', /inbound:read/],
    [{ name: 'x', scopes: ['send'], mailServerIds: [inA] }, 'mailServerIds.0', /No outgoing mail server with id/],
    [{ name: 'x', scopes: ['inbound:read'], incomingServerIds: [sales] }, 'incomingServerIds.0', /No incoming mail server with id/],
    [{ name: 'x', scopes: ['send'], mailServerIds: [] }, 'mailServerIds', /leave the field out/],
  ];
  for (const [body, field, message] of bad) {
    const r = await admin.request('POST', '/api/v1/api-keys', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.ok(field in r.json.error.fields, `${JSON.stringify(body)}: ${r.body}`);
    assert.match(r.json.error.fields[field], message);
  }
});

test('over the SMTP listener a key is limited the same way: its servers only, and its submissions are its own messages', async () => {
  const limited = await newKey('Scanner on the relay', { scopes: ['send'], mailServerIds: [relay] });
  const submit = (from: string) =>
    t.mr.outbox.enqueueRaw({
      raw: Buffer.from(`From: ${from}\r\nTo: x@y.example\r\nSubject: Scan 7\r\nMessage-ID: <scan-${from}@example.com>\r\n\r\nscan\r\n`),
      envelope: { from, to: ['x@y.example'] },
      apiKeyId: limited.id,
      receivedVia: { protocol: 'smtp', clientAddress: '127.0.0.1', apiKeyName: 'Scanner on the relay' },
    });
  const m = await submit('scanner@example.com');
  assert.equal(m.mailServerId, relay);
  // The open "sales" server would send for this sender; the key may not use it.
  await assert.rejects(submit('scanner@contoso.example'), (e: { code?: string; message?: string }) => e.code === 'MR_UNPROCESSABLE' && /scanner@contoso\.example/.test(e.message ?? ''));
  assert.deepEqual((await call(limited.key, 'GET', '/api/v1/messages')).json.items.map((x: { id: string }) => x.id), [m.id]);
  assert.equal((await call(keys.send!, 'GET', `/api/v1/messages/${m.id}`)).status, 404);
});
