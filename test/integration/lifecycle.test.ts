import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { AuditLog } from '../../src/audit/audit-log.ts';
import { LifecycleService } from '../../src/lifecycle/lifecycle-service.ts';
import { providerError, oauthEvidence } from '../../src/oauth/outlook.ts';
import { TokenManager, tokenAad } from '../../src/oauth/token-manager.ts';
import { createSealer, loadOrCreateKey } from '../../src/secrets/sealer.ts';
import { findMailServer, findToken, replaceToken } from '../../src/storage/mail-server-store.ts';
import { listOutboxMessages } from '../../src/storage/outbox-store.ts';
import { loginAgent, startTestMailroom, type Agent, type TestMailroom, VALID_SERVER } from '../helpers/test-mailroom.ts';

// The slow clock with a fake one: expiry warnings once per threshold, a keep-alive refresh, one
// reconnect alert, all e-mailed to the admins through another working server.
let clock = new Date('2026-11-01T09:00:00Z');
let t: TestMailroom;
let agent: Agent;
// The fake clock jumps weeks ahead: log in again each time, as a person would.
const api: Agent['request'] = async (...args) => (await loginAgent(t)).request(...args);
let expiring: string;
let relay: string;
let refreshes = 0;
let grantDead = false;
let lifecycle: LifecycleService;

before(async () => {
  t = await startTestMailroom({}, { now: () => clock });
  agent = await loginAgent(t);
  const sealer = createSealer(loadOrCreateKey(null, t.dataDir));
  expiring = (await agent.request('POST', '/api/v1/mail-servers', { ...VALID_SERVER, name: 'Expiring', clientSecretExpiresAt: '2026-12-31' })).json.id;
  relay = (await agent.request('POST', '/api/v1/mail-servers', { ...VALID_SERVER, name: 'Relay', username: 'relay@contoso.example', fromFilter: 'relay@contoso.example' })).json.id;
  for (const id of [expiring, relay]) {
    await replaceToken(
      t.mr.database.db,
      id,
      {
        status: 'valid',
        statusReason: null,
        account: 'x@contoso.example',
        accessTokenSealed: sealer.seal('a', tokenAad(id, 'access_token')),
        accessTokenExpiresAt: new Date(clock.getTime() + 3600_000).toISOString(),
        refreshTokenSealed: sealer.seal('r', tokenAad(id, 'refresh_token')),
        connectedAt: clock.toISOString(),
        refreshedAt: clock.toISOString(),
      },
      clock,
    );
  }
  const tokens = new TokenManager({
    db: t.mr.database.db,
    sealer,
    config: t.mr.config,
    now: () => clock,
    refresh: async () => {
      refreshes++;
      if (grantDead) {
        throw providerError(oauthEvidence('refresh', { error: 'invalid_grant', error_description: 'AADSTS700082: The refresh token has expired due to inactivity.', error_codes: [700082] }, 400));
      }
      return { accessToken: `a${refreshes}`, refreshToken: `r${refreshes}`, expiresAt: new Date(clock.getTime() + 3600_000), scope: undefined };
    },
  });
  lifecycle = new LifecycleService({ db: t.mr.database.db, tokens, outbox: t.mr.outbox, audit: new AuditLog(t.mr.database.db, () => clock), logger: t.mr.logger, baseUrl: t.mr.config.baseUrl, now: () => clock });
});
after(() => t.close());

const alertsMailed = async () => (await listOutboxMessages(t.mr.database.db, { limit: 100 })).filter((m) => m.subject.startsWith('Mailroom:'));

test('no warning while the secret has more than 30 days', async () => {
  const r = await lifecycle.runChecks();
  assert.deepEqual(r.alerts, []);
  assert.equal((await api('GET', `/api/v1/mail-servers/${expiring}`)).json.clientSecretExpiry.state, 'ok');
});

test('the 30-day warning goes out once, by e-mail to the admins through the other working server', async () => {
  clock = new Date('2026-12-02T09:00:00Z');
  assert.deepEqual((await lifecycle.runChecks()).alerts, [`secret:${expiring}:30`]);
  assert.deepEqual((await lifecycle.runChecks()).alerts, [], 'not again an hour later');
  const mails = await alertsMailed();
  assert.equal(mails.length, 1);
  assert.equal(mails[0]!.mailServerId, relay);
  assert.deepEqual(mails[0]!.to, ['admin@example.test']);
  assert.match(mails[0]!.subject, /client secret of "Expiring" expires soon/);
  assert.ok(t.logs.join('').includes('lifecycle.secret_expiry'), 'and a log line');
  const view = (await api('GET', `/api/v1/mail-servers/${expiring}`)).json;
  assert.deepEqual(view.clientSecretExpiry, { state: 'expiring', daysLeft: 29, threshold: 30 });
});

test('then the 7-day, 1-day and expired warnings, each once', async () => {
  for (const [day, threshold] of [['2026-12-25', 7], ['2026-12-30', 1], ['2027-01-02', 0]] as const) {
    clock = new Date(`${day}T09:00:00Z`);
    const r = await lifecycle.runChecks();
    assert.ok(r.alerts.includes(`secret:${expiring}:${threshold}`), `${day}: ${r.alerts}`);
  }
  assert.equal((await alertsMailed()).filter((m) => m.subject.includes('"Expiring"')).length, 4);
  assert.match((await alertsMailed())[0]!.subject, /has expired/);
});

test('a new secret with a new date re-arms the warnings', async () => {
  await api('PATCH', `/api/v1/mail-servers/${expiring}`, { clientSecret: 'New~Secret.Value_0123456789', clientSecretExpiresAt: '2028-12-31' });
  assert.equal((await findMailServer(t.mr.database.db, expiring))!.secretAlertLevel, null);
  assert.deepEqual((await lifecycle.runChecks()).alerts.filter((a) => a.startsWith('secret:')), []);
});

test('an idle connection gets a daily keep-alive refresh', async () => {
  const before = refreshes;
  clock = new Date(clock.getTime() + 25 * 3600_000);
  const r = await lifecycle.runChecks();
  assert.ok(r.refreshed.includes(expiring) && r.refreshed.includes(relay));
  assert.equal(refreshes, before + 2);
  assert.deepEqual((await lifecycle.runChecks()).refreshed, [], 'not again the same day');
});

test('a keep-alive that finds the grant dead sets Reconnect needed and alerts the admins once', async () => {
  grantDead = true;
  clock = new Date(clock.getTime() + 25 * 3600_000);
  const r = await lifecycle.runChecks();
  assert.ok(r.alerts.includes(`reconnect:${expiring}`));
  assert.equal((await findToken(t.mr.database.db, expiring))!.status, 'reconnect_needed');
  clock = new Date(clock.getTime() + 3600_000);
  assert.deepEqual((await lifecycle.runChecks()).alerts.filter((a) => a === `reconnect:${expiring}`), [], 'alerted once');
  const audit = (await api('GET', '/api/v1/audit-events?limit=200')).json.items;
  assert.ok(audit.some((e: { action: string }) => e.action === 'alert.mailed'));
  assert.ok(audit.some((e: { action: string }) => e.action === 'mail_server.created'));
});

test('the health API lists every server with its checklist', async () => {
  const h = (await api('GET', '/api/v1/health/servers')).json.items;
  const s = h.find((x: { id: string }) => x.id === expiring);
  assert.equal(s.tokenStatus, 'reconnect_needed');
  assert.deepEqual(s.checklist.map((c: { key: string; state: string }) => `${c.key}:${c.state}`), ['credentials:done', 'consent:done', 'token:failed', 'login:todo']);
});

test('password and None servers get a checklist without consent or token steps, and no guide step', async () => {
  const base = { username: 'clerk@example.test', smtpHost: 'localhost', smtpPort: 2525, smtpSecurity: 'none' };
  const pw = await api('POST', '/api/v1/mail-servers', { ...base, name: 'Relay with password', authType: 'password', password: 'pw' });
  assert.equal(pw.status, 201, JSON.stringify(pw.json));
  assert.deepEqual(pw.json.checklist.map((c: { key: string; state: string }) => `${c.key}:${c.state}`), ['credentials:done', 'login:todo']);
  assert.equal(pw.json.checklist[0].label, 'Password saved');
  const none = await api('POST', '/api/v1/mail-servers', { ...base, name: 'Open relay', authType: 'none' });
  assert.equal(none.status, 201, JSON.stringify(none.json));
  assert.deepEqual(none.json.checklist.map((c: { key: string; state: string }) => `${c.key}:${c.state}`), ['login:todo']);
  for (const c of [...pw.json.checklist, ...none.json.checklist]) assert.equal(c.guideStep, null);
  for (const s of [pw, none]) await api('DELETE', `/api/v1/mail-servers/${s.json.id}`);
});

test('disconnect forgets the tokens and is audited', async () => {
  const r = await api('POST', `/api/v1/mail-servers/${expiring}/disconnect`);
  assert.equal(r.json.tokenStatus, 'not_connected');
  assert.equal(await findToken(t.mr.database.db, expiring), undefined);
  const audit = (await api('GET', `/api/v1/audit-events?targetId=${expiring}`)).json.items;
  assert.equal(audit[0].action, 'oauth.disconnected');
  assert.match(audit[0].actor, /^admin:/);
});

test('the admin consent link targets the tenant\'s adminconsent endpoint with the mail scopes', async () => {
  const v = (await api('GET', `/api/v1/mail-servers/${relay}`)).json;
  const u = new URL(v.adminConsentUrl);
  assert.equal(u.pathname, '/organizations/v2.0/adminconsent');
  assert.equal(u.searchParams.get('client_id'), VALID_SERVER.clientId);
  assert.equal(u.searchParams.get('scope'), 'https://outlook.office.com/SMTP.Send https://outlook.office.com/IMAP.AccessAsUser.All');
  assert.equal(u.searchParams.get('state'), `admin-consent.${relay}`);
});
