import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ADMIN, type Agent, loginAgent, startTestMailroom, type TestMailroom } from '../helpers/test-mailroom.ts';

// The Audit Log names who did what as people know them (the admin's email, the API key's name, the
// command line's user) and keeps the stored actor id beside it.
let t: TestMailroom;
let agent: Agent;

before(async () => {
  t = await startTestMailroom();
  agent = await loginAgent(t);
});

after(async () => {
  await t.close();
});

interface Event {
  actor: string;
  actorDisplay: string;
  action: string;
  targetId: string | null;
}

test('audit events carry the actor id and, in actorDisplay, the admin email, API key name, command line user or System', async () => {
  const admin = (await agent.request('GET', '/api/v1/session')).json.admin as { id: string; email: string };
  const created = await agent.request('POST', '/api/v1/api-keys', { name: 'ERP billing', scope: 'admin' });
  assert.equal(created.status, 201, created.body);
  // The key itself makes an audited change: its events are by "API key ERP billing".
  const byKey = await t.app.inject({ method: 'POST', url: '/api/v1/api-keys', headers: { authorization: `Bearer ${created.json.key}` }, payload: { name: 'Reports', scope: 'outbox:read' } });
  assert.equal(byKey.statusCode, 201, byKey.body);
  const revoked = await agent.request('DELETE', `/api/v1/api-keys/${created.json.id}`);
  assert.equal(revoked.status, 204);
  await t.mr.audit.record('command line (erp-ops)', 'apikey.created', { type: 'api_key', id: 'k' });
  await t.mr.audit.record('system', 'alert.mailed', { type: 'mail_server', id: 's' });
  await t.mr.audit.record('admin:00000000-0000-4000-8000-000000000000', 'mail_server.deleted', { type: 'mail_server', id: 'gone' });

  const r = await agent.request('GET', '/api/v1/audit-events?limit=50');
  assert.equal(r.status, 200, r.body);
  const events = r.json.items as Event[];
  const find = (action: string, targetId: string) => events.find((e) => e.action === action && e.targetId === targetId);

  const login = events.find((e) => e.action === 'auth.login')!;
  assert.equal(login.actor, `admin:${admin.id}`);
  assert.equal(login.actorDisplay, ADMIN.email);
  assert.equal(find('apikey.created', created.json.id)?.actorDisplay, ADMIN.email);
  // A revoked key is still named.
  const keyEvent = find('apikey.created', byKey.json().id)!;
  assert.equal(keyEvent.actor, `apikey:${created.json.id}`);
  assert.equal(keyEvent.actorDisplay, 'API key ERP billing');
  assert.equal(find('apikey.created', 'k')?.actorDisplay, 'command line (erp-ops)');
  assert.equal(find('alert.mailed', 's')?.actorDisplay, 'System');
  const unknown = find('mail_server.deleted', 'gone')!;
  assert.equal(unknown.actor, 'admin:00000000-0000-4000-8000-000000000000');
  assert.equal(unknown.actorDisplay, 'deleted admin 00000000-0000-4000-8000-000000000000');
  for (const e of events) assert.doesNotMatch(e.actorDisplay, /^(admin|apikey):/, JSON.stringify(e));
});
