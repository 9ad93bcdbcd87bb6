import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { STATE_TTL_MS } from '../../src/oauth/connect-flow.ts';
import { outlookProvider } from '../../src/oauth/outlook.ts';
import { startTestMailroom, type TestMailroom, VALID_SERVER } from '../helpers/test-mailroom.ts';

let clock = new Date('2026-11-28T10:00:00Z');
let t: TestMailroom;
let adminA: string;
let adminB: string;
let serverId: string;

before(async () => {
  t = await startTestMailroom({ MICROSOFT_AUTHORITY_HOST: 'https://login.example.test' }, { now: () => clock });
  adminA = (await t.mr.admins.createAdmin('a@example.test', 'password-of-a-1')).id;
  adminB = (await t.mr.admins.createAdmin('b@example.test', 'password-of-b-1')).id;
  serverId = (await t.mr.servers.create(VALID_SERVER)).id;
});
after(() => t.close());

async function startState(admin = adminA, server = serverId): Promise<string> {
  const { authorizeUrl } = await t.mr.connect.start(server, admin);
  return new URL(authorizeUrl).searchParams.get('state')!;
}

// Consent declined: the callback carries only error parameters, so no token request is made and the
// state check is all that runs before the error is recorded.
const declined = (state: string) =>
  new URLSearchParams({ state, error: 'access_denied', error_description: 'AADSTS65004: User declined to consent to access the app.' });

test('a forged state is rejected without touching any server', async () => {
  const r = await t.mr.connect.callback(declined('forged-state-value'), adminA, outlookProvider);
  assert.equal(r.kind, 'rejected');
});

test('a missing state is rejected', async () => {
  const r = await t.mr.connect.callback(new URLSearchParams({ code: 'abc' }), adminA, outlookProvider);
  assert.equal(r.kind, 'rejected');
});

test('a valid state is accepted once; the replay is reported as already used', async () => {
  const state = await startState();
  const first = await t.mr.connect.callback(declined(state), adminA, outlookProvider);
  assert.equal(first.kind, 'failed');
  assert.equal(first.kind === 'failed' && first.error.code, 'AADSTS65004');
  const replay = await t.mr.connect.callback(declined(state), adminA, outlookProvider);
  assert.equal(replay.kind, 'failed');
  assert.equal(replay.kind === 'failed' && replay.error.code, 'OAUTH_STATE_USED');
});

test('a state older than 10 minutes is expired', async () => {
  const state = await startState();
  clock = new Date(clock.getTime() + STATE_TTL_MS + 1000);
  const r = await t.mr.connect.callback(declined(state), adminA, outlookProvider);
  assert.equal(r.kind === 'failed' && r.error.code, 'OAUTH_STATE_EXPIRED');
  assert.match(r.kind === 'failed' ? r.error.message : '', /10 minutes/);
});

test('a state started by one admin cannot be completed by another', async () => {
  const state = await startState(adminA);
  const r = await t.mr.connect.callback(declined(state), adminB, outlookProvider);
  assert.equal(r.kind, 'rejected');
  // ...and it is spent: the rightful admin must start again.
  const again = await t.mr.connect.callback(declined(state), adminA, outlookProvider);
  assert.notEqual(again.kind, 'connected');
});

test('a state is bound to its server: the error lands on that server only', async () => {
  const other = (await t.mr.servers.create({ ...VALID_SERVER, name: 'Other' })).id;
  const state = await startState(adminA, other);
  const r = await t.mr.connect.callback(declined(state), adminA, outlookProvider);
  assert.equal(r.kind === 'failed' && r.mailServerId, other);
  assert.equal((await t.mr.servers.get(other)).lastError?.code, 'AADSTS65004');
});

test('only the hash of the state is stored', async () => {
  const state = await startState();
  const rows = await t.mr.database.db.selectFrom('oauth_states').selectAll().execute();
  assert.ok(rows.length > 0);
  assert.ok(rows.every((r) => r.state_hash !== state && !JSON.stringify(r).includes(state)));
});

test('connect without a client secret names the field', async () => {
  const s = await t.mr.servers.create(VALID_SERVER);
  await t.mr.database.db.updateTable('mail_servers').set({ client_secret_sealed: null }).where('id', '=', s.id).execute();
  await assert.rejects(t.mr.connect.start(s.id, adminA), (e: any) => e.code === 'MR_OAUTH_NOT_CONFIGURED' && e.field === 'clientSecret');
});
