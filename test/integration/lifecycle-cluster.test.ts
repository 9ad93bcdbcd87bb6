import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { AuditLog } from '../../src/audit/audit-log.ts';
import { loadConfig } from '../../src/config/config.ts';
import { LifecycleService } from '../../src/lifecycle/lifecycle-service.ts';
import { createLogger } from '../../src/logger.ts';
import { TokenManager } from '../../src/oauth/token-manager.ts';
import { OutboxService } from '../../src/outbox/outbox-service.ts';
import { createSealer } from '../../src/secrets/sealer.ts';
import { listLeases } from '../../src/storage/cluster-store.ts';
import { openDatabase, type OpenedDatabase } from '../../src/storage/database.ts';
import { findMailServer, insertMailServer, replaceToken } from '../../src/storage/mail-server-store.ts';
import { createTestDatabase, type TestPostgres } from '../helpers/postgres-db.ts';

// Several instances' lifecycle services on one PostgreSQL, each with its own connection pool: the
// warnings are claimed by a conditional update, so however they interleave each goes out once.
let pgdb: TestPostgres;
const opened: OpenedDatabase[] = [];
let clock = new Date('2026-12-01T09:00:00Z');

before(async () => {
  pgdb = await createTestDatabase('mailroom_lifecycle');
  for (let i = 0; i < 4; i++) opened.push(await openDatabase(pgdb.url));
});
after(async () => {
  await Promise.allSettled(opened.map((o) => o.close()));
  await pgdb?.drop();
});

function instance(i: number, leaseMs = 3000, now: () => Date = () => clock): LifecycleService {
  const { db, dialect } = opened[i]!;
  const config = loadConfig({ DATABASE_URL: pgdb.url, MAILROOM_SECRET_KEY: randomBytes(32).toString('base64'), LOG_LEVEL: 'silent' });
  const sealer = createSealer(randomBytes(32));
  const logger = createLogger('silent');
  const tokens = new TokenManager({ db, dialect, sealer, config, now: () => clock });
  const outbox = new OutboxService({ db, config: config.outbox, now: () => clock });
  return new LifecycleService({ db, tokens, outbox, audit: new AuditLog(db, () => clock), logger, baseUrl: config.baseUrl, now, instance: `i${i}`, leaseMs });
}

test('four instances run the checks at the same moment: each secret-expiry level and the reconnect alert are sent once', async () => {
  const { db } = opened[0]!;
  await insertMailServer(
    db,
    'expiring',
    {
      name: 'Expiring', authType: 'outlook_oauth', username: 'x@example.test', clientId: 'c', clientSecretSealed: 'v1:x', clientSecretExpiresAt: '2026-12-20', tenant: 'common',
      smtpHost: 'h', smtpPort: 587, smtpSecurity: 'starttls', priority: 10, fromFilter: null, active: true, lastError: null,
    },
    clock,
  );
  await replaceToken(db, 'expiring', { status: 'reconnect_needed', statusReason: 'revoked' }, clock);
  const services = [0, 1, 2, 3].map((i) => instance(i));
  const sent = async () => (await Promise.all(services.map((s) => s.runChecks()))).flatMap((r) => r.alerts).sort();

  assert.deepEqual(await sent(), ['reconnect:expiring', 'secret:expiring:30']);
  assert.deepEqual(await sent(), [], 'nothing twice');
  clock = new Date('2026-12-15T09:00:00Z');
  for (let round = 0; round < 3; round++) {
    const alerts = await sent();
    assert.deepEqual(alerts, round === 0 ? ['secret:expiring:7'] : []);
  }
  assert.equal((await findMailServer(db, 'expiring'))!.secretAlertLevel, 7);
  assert.ok((await findMailServer(db, 'expiring'))!.reconnectAlertedAt);
});

test('the lifecycle lease is short and renewed by a heartbeat; a clean stop hands it to another instance at once', async () => {
  const a = instance(0, 3000, () => new Date());
  const b = instance(1, 3000, () => new Date());
  a.start();
  await new Promise((r) => setTimeout(r, 300));
  b.start();
  try {
    await new Promise((r) => setTimeout(r, 2500));
    const [held] = await listLeases(opened[2]!.db, 'lifecycle');
    assert.equal(held!.holder, 'i0', 'the first one holds it, the second does not take it');
    assert.ok(Date.parse(held!.expiresAt) - Date.parse(held!.renewedAt) <= 3000, 'a short lease, not hours');
    assert.ok(Date.parse(held!.renewedAt) > Date.parse(held!.acquiredAt), 'renewed by the heartbeat');
    await a.stop();
    const stoppedAt = Date.now();
    let holder = '';
    while (holder !== 'i1' && Date.now() - stoppedAt < 5000) {
      await new Promise((r) => setTimeout(r, 100));
      holder = (await listLeases(opened[2]!.db, 'lifecycle'))[0]?.holder ?? '';
    }
    assert.equal(holder, 'i1', 'taken over within one heartbeat');
  } finally {
    await a.stop();
    await b.stop();
  }
  assert.deepEqual(await listLeases(opened[2]!.db, 'lifecycle'), [], 'a clean stop gives the lease up');
});
