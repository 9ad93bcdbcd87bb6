import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestMailroom, type TestMailroom } from '../helpers/test-mailroom.ts';

let t: TestMailroom;
before(async () => {
  t = await startTestMailroom();
});
after(() => t.close());

const setup = (payload: object) => t.app.inject({ method: 'POST', url: '/api/v1/setup', payload });

test('the one-time setup link creates the first admin, logs in, and works only once', async () => {
  const token = await t.mr.admins.issueSetupToken();
  const weak = await setup({ token, email: 'owner@example.test', password: 'short' });
  assert.equal(weak.statusCode, 400);
  assert.equal(weak.json().error.field, 'password');

  const ok = await setup({ token, email: 'Owner@Example.test', password: 'a good long password' });
  assert.equal(ok.statusCode, 200);
  assert.equal(ok.json().admin.email, 'owner@example.test');
  const cookie = ok.cookies.find((c) => c.name === 'mailroom_session')!;
  const me = await t.app.inject({ method: 'GET', url: '/api/v1/session', headers: { cookie: `${cookie.name}=${cookie.value}` } });
  assert.equal(me.json().admin.email, 'owner@example.test');

  const again = await setup({ token, email: 'intruder@example.test', password: 'another long password' });
  assert.equal(again.statusCode, 409, 'no second first-admin');
});

test('a forged setup token is refused while no admin exists', async () => {
  const fresh = await startTestMailroom();
  try {
    await fresh.mr.admins.issueSetupToken();
    const r = await fresh.app.inject({ method: 'POST', url: '/api/v1/setup', payload: { token: 'guessed', email: 'x@example.test', password: 'a good long password' } });
    assert.equal(r.statusCode, 400);
    assert.equal(r.json().error.code, 'MR_SETUP_TOKEN_INVALID');
    assert.equal(await fresh.mr.admins.hasAdmin(), false);
  } finally {
    await fresh.close();
  }
});
