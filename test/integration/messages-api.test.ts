import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { loginAgent, startTestMailroom, type Agent, type TestMailroom, VALID_SERVER } from '../helpers/test-mailroom.ts';

let t: TestMailroom;
let admin: Agent;
const keys: Record<string, string> = {};
let serverId: string;

before(async () => {
  t = await startTestMailroom({ MAX_MESSAGE_MB: '1' });
  admin = await loginAgent(t);
  serverId = (await admin.request('POST', '/api/v1/mail-servers', VALID_SERVER)).json.id;
  for (const scope of ['send', 'read', 'admin']) {
    const r = await admin.request('POST', '/api/v1/api-keys', { name: `${scope} key`, scope });
    assert.equal(r.status, 201);
    assert.match(r.json.key, /^mr_[\w-]{43}$/);
    keys[scope] = r.json.key;
  }
});
after(() => t.close());

const call = (key: string, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object, headers: Record<string, string> = {}) =>
  t.app.inject({ method, url, headers: { authorization: `Bearer ${key}`, ...headers }, ...(payload && { payload }) });

const msg = { from: 'sales@contoso.example', to: ['buyer@example.org'], subject: 'Invoice 42', text: 'Please find your invoice.' };

test('a send key queues a message: 202 with id, state, chosen server and Message-ID', async () => {
  const r = await call(keys.send!, 'POST', '/api/v1/messages', msg);
  assert.equal(r.statusCode, 202);
  const m = r.json();
  assert.equal(m.state, 'queued');
  assert.equal(m.mailServerId, serverId);
  assert.equal(m.mailServerName, VALID_SERVER.name);
  assert.match(m.messageId, /^<[0-9a-f-]{36}@contoso\.example>$/);
  assert.equal(r.headers.location, `/api/v1/messages/${m.id}`);
  const got = await call(keys.send!, 'GET', `/api/v1/messages/${m.id}`);
  assert.equal(got.json().subject, 'Invoice 42');
});

test('scopes: read cannot send, send cannot manage servers, admin can; bad or revoked keys are 401', async () => {
  assert.equal((await call(keys.read!, 'POST', '/api/v1/messages', msg)).statusCode, 403);
  assert.equal((await call(keys.read!, 'GET', '/api/v1/messages')).statusCode, 200);
  assert.equal((await call(keys.send!, 'GET', '/api/v1/mail-servers')).statusCode, 403);
  assert.equal((await call(keys.admin!, 'GET', '/api/v1/mail-servers')).statusCode, 200);
  assert.equal((await call('mr_not-a-real-key', 'GET', '/api/v1/messages')).statusCode, 401);
  const extra = (await admin.request('POST', '/api/v1/api-keys', { name: 'temp', scope: 'send' })).json;
  assert.equal((await admin.request('DELETE', `/api/v1/api-keys/${extra.id}`)).status, 204);
  assert.equal((await call(extra.key, 'POST', '/api/v1/messages', msg)).statusCode, 401);
  const listed = (await admin.request('GET', '/api/v1/api-keys')).json.items;
  assert.ok(listed.every((k: Record<string, unknown>) => !('key' in k) && !('keyHash' in k)));
  assert.ok(listed.find((k: { id: string }) => k.id === extra.id).revokedAt);
});

test('the same Idempotency-Key and body return the same message; another body is 409', async () => {
  const h = { 'idempotency-key': 'order-1001-confirmation' };
  const a = await call(keys.send!, 'POST', '/api/v1/messages', msg, h);
  const b = await call(keys.send!, 'POST', '/api/v1/messages', { ...msg }, h);
  assert.equal(a.statusCode, 202);
  assert.equal(b.statusCode, 202);
  assert.equal(a.json().id, b.json().id);
  const c = await call(keys.send!, 'POST', '/api/v1/messages', { ...msg, subject: 'Different' }, h);
  assert.equal(c.statusCode, 409);
  assert.equal(c.json().error.field, 'Idempotency-Key');
  // Concurrent first uses of one key still make one message.
  const h2 = { 'idempotency-key': 'order-1002' };
  const many = await Promise.all(Array.from({ length: 10 }, () => call(keys.send!, 'POST', '/api/v1/messages', msg, h2)));
  assert.equal(new Set(many.map((r) => r.json().id)).size, 1);
});

test('validation: header injection, bad addresses and oversize are 400 naming the field; nothing is queued', async () => {
  const before = (await call(keys.read!, 'GET', '/api/v1/messages?limit=200')).json().items.length;
  const cases: Array<[object, string]> = [
    [{ ...msg, subject: 'Hi\r\nBcc: everyone@example.org' }, 'subject'],
    [{ ...msg, to: ['not an address'] }, 'to.0'],
    [{ ...msg, headers: { 'X-Order': 'x\nBcc: a@b.example' } }, 'headers.X-Order'],
    [{ ...msg, attachments: [{ filename: 'big.bin', contentType: 'application/octet-stream', content: Buffer.alloc(1_100_000).toString('base64') }] }, 'attachments'],
  ];
  for (const [body, field] of cases) {
    const r = await call(keys.send!, 'POST', '/api/v1/messages', body);
    assert.equal(r.statusCode, 400, field);
    assert.equal(r.json().error.field, field);
  }
  const after = (await call(keys.read!, 'GET', '/api/v1/messages?limit=200')).json().items.length;
  assert.equal(after, before);
});

test('a sender no server may send for is 422 with the reason', async () => {
  await admin.request('PATCH', `/api/v1/mail-servers/${serverId}`, { fromFilter: 'contoso.example' });
  const r = await call(keys.send!, 'POST', '/api/v1/messages', { ...msg, from: 'someone@elsewhere.example' });
  assert.equal(r.statusCode, 422);
  assert.match(r.json().error.message, /contoso\.example/);
  assert.equal(r.json().error.field, 'from');
  await admin.request('PATCH', `/api/v1/mail-servers/${serverId}`, { fromFilter: null });
});

test('a sender the mailbox cannot send as (not its Username, no FROM Filtering) is 422 at once, naming both addresses and the fix', async () => {
  const r = await call(keys.send!, 'POST', '/api/v1/messages', { ...msg, from: 'billing@contoso.example' });
  assert.equal(r.statusCode, 422, r.body);
  const e = r.json().error;
  assert.equal(e.field, 'from');
  assert.match(e.message, /signs in as the mailbox sales@contoso\.example and has no FROM Filtering: it sends only as sales@contoso\.example, not as billing@contoso\.example/);
  assert.match(e.fix, /FROM Filtering of one to billing@contoso\.example or contoso\.example.*Send As rights on billing@contoso\.example/);
  // Set to send as the address (FROM Filtering), the same message is accepted.
  await admin.request('PATCH', `/api/v1/mail-servers/${serverId}`, { fromFilter: 'billing@contoso.example' });
  assert.equal((await call(keys.send!, 'POST', '/api/v1/messages', { ...msg, from: 'billing@contoso.example' })).statusCode, 202);
  await admin.request('PATCH', `/api/v1/mail-servers/${serverId}`, { fromFilter: null });
});

test('list pages with a cursor, newest first, and filters by state and text', async () => {
  for (let i = 0; i < 5; i++) await call(keys.send!, 'POST', '/api/v1/messages', { ...msg, subject: `Paging ${i}` });
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const r: { items: Array<{ id: string; subject: string }>; nextCursor: string | null } = (
      await call(keys.read!, 'GET', `/api/v1/messages?q=paging&limit=2${cursor ? `&cursor=${cursor}` : ''}`)
    ).json();
    seen.push(...r.items.map((m) => m.subject));
    cursor = r.nextCursor;
  } while (cursor);
  assert.deepEqual(seen, ['Paging 4', 'Paging 3', 'Paging 2', 'Paging 1', 'Paging 0']);
  assert.equal((await call(keys.read!, 'GET', '/api/v1/messages?state=sent')).json().items.length, 0);
  assert.equal((await call(keys.read!, 'GET', '/api/v1/messages?state=bogus')).statusCode, 400);
});

test('cancel and retry follow the state rules', async () => {
  const m = (await call(keys.send!, 'POST', '/api/v1/messages', msg)).json();
  const cancelled = await call(keys.send!, 'POST', `/api/v1/messages/${m.id}/cancel`);
  assert.equal(cancelled.json().state, 'cancelled');
  assert.equal((await call(keys.send!, 'POST', `/api/v1/messages/${m.id}/cancel`)).statusCode, 409);
  const retried = await call(keys.send!, 'POST', `/api/v1/messages/${m.id}/retry`);
  assert.equal(retried.json().state, 'queued');
  assert.equal((await call(keys.send!, 'POST', `/api/v1/messages/${m.id}/retry`)).statusCode, 409);
});

test('the session UI can use the messages API too (with CSRF)', async () => {
  const r = await admin.request('POST', '/api/v1/messages', msg);
  assert.equal(r.status, 202);
  assert.equal((await admin.request('GET', `/api/v1/messages/${r.json.id}`)).json.id, r.json.id);
});

test('more recipients than the server allows per message is 422 naming the limit; up to the limit is accepted', async () => {
  // VALID_SERVER uses the default SMTP Server, smtp.office365.com: Exchange Online's 500 per message.
  const server = (await admin.request('GET', `/api/v1/mail-servers/${serverId}`)).json;
  assert.equal(server.recipientsPerMessage, 500);
  const rcpts = (n: number) => Array.from({ length: n }, (_, i) => `r${i}@example.org`);
  const listed = await call(keys.admin!, 'GET', '/api/v1/messages?limit=200');
  assert.equal(listed.statusCode, 200, listed.body);
  const before = listed.json().items.length;
  const r = await call(keys.send!, 'POST', '/api/v1/messages', { ...msg, to: rcpts(300), cc: rcpts(200).map((a) => `cc.${a}`), bcc: ['hidden@example.org'] });
  assert.equal(r.statusCode, 422, r.body);
  const e = r.json().error;
  assert.equal(e.code, 'MR_UNPROCESSABLE');
  assert.equal(e.field, 'to');
  assert.match(e.message, /501 recipients.*at most 500 per message \(Recipients per message, recipientsPerMessage\)/);
  assert.match(e.fix, /several messages of at most 500/);
  assert.equal((await call(keys.admin!, 'GET', '/api/v1/messages?limit=200')).json().items.length, before, 'nothing queued');
  assert.equal((await call(keys.send!, 'POST', '/api/v1/messages', { ...msg, to: rcpts(500) })).statusCode, 202);
  // The limit is the server's: raised on the server, the same message is accepted.
  assert.equal((await admin.request('PATCH', `/api/v1/mail-servers/${serverId}`, { recipientsPerMessage: 1000 })).status, 200);
  assert.equal((await call(keys.send!, 'POST', '/api/v1/messages', { ...msg, to: rcpts(501) })).statusCode, 202);
  await admin.request('PATCH', `/api/v1/mail-servers/${serverId}`, { recipientsPerMessage: 500 });
});

test('sending limits are server properties: Microsoft defaults, editable, validated naming the field, shown with usage', async () => {
  const defaults = (await admin.request('GET', '/api/v1/mail-servers/defaults')).json;
  assert.deepEqual([defaults.maxConnections, defaults.messagesPerMinute, defaults.recipientsPerDay, defaults.recipientsPerMessage], [3, 30, 10000, 500]);
  const relay = await admin.request('POST', '/api/v1/mail-servers', { ...VALID_SERVER, name: 'Relay', smtpHost: 'relay.contoso.example', fromFilter: 'relay@contoso.example' });
  assert.equal(relay.status, 201);
  assert.deepEqual([relay.json.maxConnections, relay.json.messagesPerMinute, relay.json.recipientsPerDay, relay.json.recipientsPerMessage], [null, null, null, null]);
  const hve = await admin.request('PATCH', `/api/v1/mail-servers/${relay.json.id}`, { maxConnections: 10, messagesPerMinute: '', recipientsPerDay: 100000 });
  assert.equal(hve.status, 200);
  assert.deepEqual([hve.json.maxConnections, hve.json.messagesPerMinute, hve.json.recipientsPerDay], [10, null, 100000]);
  const bad = await admin.request('PATCH', `/api/v1/mail-servers/${relay.json.id}`, { maxConnections: 0, recipientsPerDay: 'many' });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.fields.maxConnections, 'Connections per mailbox must be at least 1, or empty for no limit');
  assert.match(bad.json.error.fields.recipientsPerDay, /^Recipients per day must be a whole number/);
  const s = (await admin.request('GET', `/api/v1/mail-servers/${serverId}`)).json;
  assert.equal(s.sending.recipientsPerDay, 10000);
  assert.equal(typeof s.sending.recipientsToday, 'number');
  const health = (await admin.request('GET', '/api/v1/health/servers')).json.items.find((x: { id: string }) => x.id === serverId);
  assert.deepEqual(health.sending, s.sending);
  assert.equal((await admin.request('DELETE', `/api/v1/mail-servers/${relay.json.id}`)).status, 204);
});

test("one message shows its body and its custom headers as given (names in their own case); the list does not", async () => {
  const r = await call(keys.send!, 'POST', '/api/v1/messages', { ...msg, html: '<p>Please find your invoice.</p>', headers: { 'X-ERP-Document': 'INV-42' } });
  assert.equal(r.statusCode, 202);
  const got = (await call(keys.send!, 'GET', `/api/v1/messages/${r.json().id}`)).json();
  assert.deepEqual(got.content, { text: 'Please find your invoice.', html: '<p>Please find your invoice.</p>', truncated: false, headers: { 'X-ERP-Document': 'INV-42' } });
  const listed = (await call(keys.send!, 'GET', '/api/v1/messages')).json().items.find((m: { id: string }) => m.id === got.id);
  assert.equal(listed.content, undefined);
});

test('the server a message goes through follows each server change at once: added, deactivated, reactivated, its limits saved, deleted', async () => {
  const send = (from: string) => call(keys.send!, 'POST', '/api/v1/messages', { ...msg, from });
  const billing = 'billing@contoso.example';
  // Before the server exists: no server may send as billing@.
  assert.equal((await send(billing)).statusCode, 422);
  const b = await admin.request('POST', '/api/v1/mail-servers', { ...VALID_SERVER, name: 'Billing', username: billing });
  assert.equal(b.status, 201, b.body);
  const added = await send(billing);
  assert.equal(added.statusCode, 202);
  assert.equal(added.json().mailServerId, b.json.id);
  assert.equal((await admin.request('PATCH', `/api/v1/mail-servers/${b.json.id}`, { active: false })).status, 200);
  assert.equal((await send(billing)).statusCode, 422);
  assert.equal((await admin.request('PATCH', `/api/v1/mail-servers/${b.json.id}`, { active: true })).status, 200);
  assert.equal((await send(billing)).statusCode, 202);
  // A saved limit applies to the next message: two recipients where one is allowed.
  assert.equal((await admin.request('PATCH', `/api/v1/mail-servers/${b.json.id}`, { recipientsPerMessage: 1 })).status, 200);
  const two = await call(keys.send!, 'POST', '/api/v1/messages', { ...msg, from: billing, to: ['a@example.org', 'b@example.org'] });
  assert.equal(two.statusCode, 422, two.body);
  assert.equal((await admin.request('DELETE', `/api/v1/mail-servers/${b.json.id}`)).status, 204);
  assert.equal((await send(billing)).statusCode, 422);
});
