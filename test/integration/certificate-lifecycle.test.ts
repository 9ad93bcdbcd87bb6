import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { AuditLog } from '../../src/audit/audit-log.ts';
import { LifecycleService } from '../../src/lifecycle/lifecycle-service.ts';
import { CertificateService } from '../../src/oauth/certificate-service.ts';
import { TokenManager, tokenAad } from '../../src/oauth/token-manager.ts';
import { createSealer, loadOrCreateKey } from '../../src/secrets/sealer.ts';
import { openDatabase, type OpenedDatabase } from '../../src/storage/database.ts';
import { findMailServer, insertMailServer, replaceToken } from '../../src/storage/mail-server-store.ts';
import { listOutboxMessages } from '../../src/storage/outbox-store.ts';
import { createTestDatabase, type TestPostgres } from '../helpers/postgres-db.ts';
import { loginAgent, startTestMailroom, type Agent, type TestMailroom, VALID_SERVER } from '../helpers/test-mailroom.ts';

// Certificates run out like client secrets: warnings at 30/7/1 days and on expiry, on the server, in
// Mail Health and by mail to the admins. And a roll's promotion is one conditional UPDATE.
let clock = new Date('2026-12-07T09:00:00Z');
let t: TestMailroom;
let agent: Agent;
const api: Agent['request'] = async (...args) => (await loginAgent(t)).request(...args);
let certified: string;
let lifecycle: LifecycleService;

before(async () => {
  t = await startTestMailroom({}, { now: () => clock });
  agent = await loginAgent(t);
  const sealer = createSealer(loadOrCreateKey(null, t.dataDir));
  certified = (await agent.request('POST', '/api/v1/mail-servers', { ...VALID_SERVER, clientSecret: undefined, name: 'Certified', clientCredential: 'certificate', clientSecretExpiresAt: '2027-01-01' })).json.id;
  const relay = (await agent.request('POST', '/api/v1/mail-servers', { ...VALID_SERVER, name: 'Relay', username: 'relay@contoso.example' })).json.id;
  assert.equal((await agent.request('POST', `/api/v1/mail-servers/${certified}/certificate`, {})).status, 200);
  for (const id of [certified, relay]) {
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
  const tokens = new TokenManager({ db: t.mr.database.db, sealer, config: t.mr.config, now: () => clock, refresh: async () => ({ accessToken: 'a2', refreshToken: 'r2', expiresAt: new Date(clock.getTime() + 3600_000), scope: undefined }) });
  lifecycle = new LifecycleService({ db: t.mr.database.db, tokens, outbox: t.mr.outbox, audit: new AuditLog(t.mr.database.db, () => clock), logger: t.mr.logger, baseUrl: t.mr.config.baseUrl, now: () => clock });
});
after(() => t.close());

const alerts = async () => (await listOutboxMessages(t.mr.database.db, { limit: 100 })).filter((m) => m.subject.startsWith('Mailroom: the certificate'));

test('a certificate server is warned by its certificate\'s date, not by a client secret date it does not use', async () => {
  const notAfter = (await findMailServer(t.mr.database.db, certified))!.certificate!.notAfter;
  assert.deepEqual((await lifecycle.runChecks()).alerts, [], 'two years left; the secret date (in 25 days) is not the credential');
  const view = (await api('GET', `/api/v1/mail-servers/${certified}`)).json;
  assert.equal(view.certificateExpiry.state, 'ok');

  clock = new Date(Date.parse(notAfter) - 20 * 86400_000);
  assert.deepEqual((await lifecycle.runChecks()).alerts, [`certificate:${certified}:30`]);
  assert.deepEqual((await lifecycle.runChecks()).alerts, [], 'once per threshold');
  const mails = await alerts();
  assert.equal(mails.length, 1);
  assert.deepEqual(mails[0]!.to, ['admin@example.test']);
  assert.match(mails[0]!.subject, /the certificate of "Certified" expires soon/);
  const health = (await api('GET', '/api/v1/health/servers')).json;
  const row = health.items.find((s: { id: string }) => s.id === certified);
  assert.equal(row.certificateExpiry.state, 'expiring');
  assert.equal(row.certificateExpiry.threshold, 30);

  clock = new Date(Date.parse(notAfter) + 3600_000);
  assert.deepEqual((await lifecycle.runChecks()).alerts, [`certificate:${certified}:0`]);
  const expired = (await api('GET', `/api/v1/mail-servers/${certified}`)).json;
  assert.equal(expired.certificateExpiry.state, 'expired');
  const credentials = expired.checklist.find((i: { key: string }) => i.key === 'credentials');
  assert.equal(credentials.state, 'failed');
  assert.match(credentials.detail, /certificate .* expired/);
});

test('on PostgreSQL two instances proving the same rolled certificate promote it once', async () => {
  let pgdb: TestPostgres | undefined;
  const opened: OpenedDatabase[] = [];
  try {
    pgdb = await createTestDatabase('mailroom_certs');
    for (let i = 0; i < 2; i++) opened.push(await openDatabase(pgdb.url));
    const sealer = createSealer(randomBytes(32));
    const now = () => new Date();
    const { db } = opened[0]!;
    await insertMailServer(
      db,
      'rolled',
      {
        name: 'Rolled', authType: 'outlook_oauth', username: 'x@example.test', clientId: '6731de76-14a6-49ae-97bc-6eba6914391e', clientSecretSealed: null, clientCredential: 'certificate',
        clientSecretExpiresAt: null, tenant: 'contoso.example', smtpHost: 'h', smtpPort: 587, smtpSecurity: 'starttls', priority: 10, fromFilter: null, active: true, lastError: null,
      },
      now(),
    );
    const services = opened.map((o) => new CertificateService({ db: o.db, sealer, audit: new AuditLog(o.db, now), now }));
    const first = await services[0]!.generate((await findMailServer(db, 'rolled'))!);
    const pending = await services[0]!.roll((await findMailServer(db, 'rolled'))!);
    const results = await Promise.all([...services, ...services].map((s) => s.promote('rolled', pending.thumbprintSha256)));
    assert.equal(results.filter(Boolean).length, 1, JSON.stringify(results));
    const after = (await findMailServer(db, 'rolled'))!;
    assert.equal(after.certificate?.thumbprint, pending.thumbprint);
    assert.equal(after.pendingCertificate, null);
    assert.match(after.lastError?.fix ?? '', new RegExp(first.thumbprint));
    const events = await pgdb.query<{ action: string }>("select action from audit_events where target_id = 'rolled' and action = 'certificate.promoted'");
    assert.equal(events.length, 1);
    // A stale proof (of a certificate no longer pending) changes nothing.
    assert.equal(await services[1]!.promote('rolled', first.thumbprintSha256), false);
  } finally {
    await Promise.allSettled(opened.map((o) => o.close()));
    await pgdb?.drop();
  }
});
