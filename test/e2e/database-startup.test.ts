import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { MIGRATION_NAMES } from '../../src/storage/migrations.ts';
import { waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { createTestDatabase, type TestPostgres } from '../helpers/postgres-db.ts';
import { startTcpProxy, type TcpProxy } from '../peers/tcp-proxy.ts';

// Starting while PostgreSQL cannot be reached (a machine that boots before its database, a rolling
// restart during a failover): `serve` waits with backoff, answers /healthz "starting" and 503 meanwhile,
// and is ready by itself once the database is. What waiting cannot fix ends the start at once.
const T = { timeout: 90_000 };
const KEY = randomBytes(32).toString('base64');
// Trust auth accepts any password: it is there to prove that none reaches the log.
const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;

let pgdb: TestPostgres;
let proxy: TcpProxy;

before(async () => {
  pgdb = await createTestDatabase('mailroom_startup');
  proxy = await startTcpProxy(5432);
});

after(async () => {
  await proxy?.close();
  await pgdb?.drop();
});

function throughProxy(): string {
  const u = new URL(pgdb.url);
  u.port = String(proxy.port);
  u.password = PASSWORD;
  return u.href;
}

const env = (extra: Record<string, string>) => ({
  DATABASE_URL: throughProxy(),
  MAILROOM_SECRET_KEY: KEY,
  LOG_LEVEL: 'info',
  INBOUND_WORKER: 'off',
  DATABASE_CONNECT_TIMEOUT_SECONDS: '1',
  ...extra,
});

const outputMatches = (mr: MailroomProcess, re: RegExp) => async () => (re.test(mr.output()) ? true : undefined);
const STACK_TRACE = /\n\s+at \S/;

test('started while PostgreSQL is refused, then black-holed: it waits and says so, answers "starting", and is ready by itself once the database is reachable', T, async () => {
  await proxy.down();
  const mr = await startMailroomProcess(env({ DATABASE_STARTUP_TIMEOUT_SECONDS: '60' }));
  try {
    const target = `127\\.0\\.0\\.1:${proxy.port}`;
    await waitFor('a waiting line naming host, port and cause', outputMatches(mr, new RegExp(`waiting for PostgreSQL at ${target}: connection refused \\(attempt 2, next in [\\d.]+ s\\)`)), 20_000, 100);

    const health = await fetch(`${mr.baseUrl}/healthz`);
    assert.equal(health.status, 200, 'alive: an orchestrator does not restart it');
    assert.deepEqual(await health.json(), { status: 'starting' });
    const ready = await fetch(`${mr.baseUrl}/readyz`);
    assert.equal(ready.status, 503);
    const readyBody = (await ready.json()) as { status: string; error: { code: string; message: string } };
    assert.equal(readyBody.status, 'starting');
    assert.equal(readyBody.error.code, 'MR_DATABASE_UNAVAILABLE');
    assert.match(readyBody.error.message, /waiting for PostgreSQL at 127\.0\.0\.1:\d+ \(connection refused/);
    const api = await fetch(`${mr.baseUrl}/api/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(api.status, 503);
    assert.equal(api.headers.get('retry-after'), '5');
    assert.equal(((await api.json()) as { error: { code: string } }).error.code, 'MR_DATABASE_UNAVAILABLE');

    // A path that accepts and never answers: each attempt ends at the connect timeout.
    await proxy.blackhole();
    await waitFor('a line for the black hole', outputMatches(mr, new RegExp(`waiting for PostgreSQL at ${target}: no answer within 1 s`)), 30_000, 100);

    await proxy.up();
    // The placeholder closes a few milliseconds before the application listens: a refused probe is "not yet", as for a load balancer.
    await waitFor('ready by itself', async () => ((await fetch(`${mr.baseUrl}/readyz`).catch(() => undefined))?.status === 200 ? true : undefined), 30_000, 200);
    assert.match(mr.output(), /PostgreSQL reached after \d+ attempts/);
    assert.match(mr.output(), /Mailroom is running at/);
    assert.ok(!mr.output().includes(PASSWORD), 'the password is never logged');

    // And it serves the API.
    const key = /\n(mr_\S+)/.exec(await mr.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
    const servers = await fetch(`${mr.baseUrl}/api/v1/mail-servers`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(servers.status, 200, await servers.text());
    assert.equal((await fetch(`${mr.baseUrl}/healthz`)).status, 200);
  } finally {
    await mr.stop();
  }
});

test('past DATABASE_STARTUP_TIMEOUT_SECONDS it gives up: exit 1 with what it waited for, without a stack trace', T, async () => {
  await proxy.down();
  const mr = await startMailroomProcess(env({ DATABASE_STARTUP_TIMEOUT_SECONDS: '3' }));
  try {
    assert.equal(await mr.exited, 1);
    const out = mr.output();
    assert.match(out, /PostgreSQL at 127\.0\.0\.1:\d+ could not be reached within 3 s \(\d+ attempts; last: connection refused\)/);
    assert.match(out, /DATABASE_STARTUP_TIMEOUT_SECONDS/);
    assert.doesNotMatch(out, STACK_TRACE);
    assert.ok(!out.includes(PASSWORD));
  } finally {
    await mr.stop();
    await proxy.up();
  }
});

test('SIGTERM while waiting for the database exits 0 at once, without a stack trace', T, async () => {
  await proxy.blackhole();
  const mr = await startMailroomProcess(env({ DATABASE_STARTUP_TIMEOUT_SECONDS: '0', DATABASE_CONNECT_TIMEOUT_SECONDS: '5' }));
  try {
    await waitFor('waiting', outputMatches(mr, /waiting for PostgreSQL/), 20_000, 100);
    // In the middle of a connection attempt that would take 5 s.
    const t0 = Date.now();
    await mr.stop();
    assert.equal(await mr.exited, 0);
    assert.ok(Date.now() - t0 < 2000, `stopped in ${Date.now() - t0} ms`);
    assert.match(mr.output(), /shutting down before the database was reached/);
    assert.doesNotMatch(mr.output(), STACK_TRACE);
  } finally {
    await mr.stop();
    await proxy.up();
  }
});

test('what waiting cannot fix ends the start at once: an unknown user, a missing database, another secret key', T, async () => {
  const direct = new URL(pgdb.url);
  const unknownUser = new URL(direct);
  unknownUser.username = 'no_such_role';
  const missingDb = new URL(direct);
  missingDb.pathname = '/no_such_database_here';
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['unknown user', { DATABASE_URL: unknownUser.href }, /^(?=[\s\S]*PostgreSQL at 127\.0\.0\.1:5432 refused Mailroom: role \\"no_such_role\\" does not exist \(28000\)\.)(?=[\s\S]*"fix":"Check the user name and password in DATABASE_URL)/],
    ['missing database', { DATABASE_URL: missingDb.href }, /^(?=[\s\S]*PostgreSQL at 127\.0\.0\.1:5432 refused Mailroom: database \\"no_such_database_here\\" does not exist \(3D000\)\.)(?=[\s\S]*"fix":"Create the database)/],
    ['another secret key', { DATABASE_URL: direct.href, MAILROOM_SECRET_KEY: randomBytes(32).toString('base64') }, /^(?=[\s\S]*secret key \(key id \S+\) cannot open the secrets stored in the database)(?=[\s\S]*"fix":"Start every instance with the same MAILROOM_SECRET_KEY)/],
  ];
  for (const [name, extra, expected] of cases) {
    const dataDir = mkdtempSync(join(tmpdir(), 'mailroom-e2e-'));
    const t0 = Date.now();
    try {
      await assert.rejects(startMailroomProcess(env({ DATABASE_STARTUP_TIMEOUT_SECONDS: '60', ...extra }), undefined, dataDir), (e: Error) => {
        assert.match(e.message, /mailroom exited with 1/, name);
        assert.match(e.message, expected, name);
        assert.doesNotMatch(e.message, /waiting for PostgreSQL/, `${name}: not retried`);
        return true;
      });
      assert.ok(Date.now() - t0 < 20_000, `${name}: at once (${Date.now() - t0} ms, the wait would be 60 s)`);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }
});

test('two instances started at the same moment on an empty database both come up; the migrations ran once', T, async () => {
  const fresh = await createTestDatabase('mailroom_startup_fresh');
  let instances: MailroomProcess[] = [];
  try {
    const started = await Promise.allSettled([0, 1].map(() => startMailroomProcess(env({ DATABASE_URL: fresh.url }))));
    instances = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    for (const mr of instances) {
      await waitFor('ready', async () => ((await fetch(`${mr.baseUrl}/readyz`)).status === 200 ? true : undefined), 30_000, 200);
    }
    // kysely's Migrator holds a PostgreSQL advisory lock around reading and applying the migrations:
    // the second instance finds them applied. Without it, one of the two would have failed on a
    // table the other had just created.
    const applied = await fresh.query<{ name: string }>('select name from kysely_migration order by name');
    assert.deepEqual(applied.map((r) => r.name), [...MIGRATION_NAMES]);
    const [{ n }] = (await fresh.query<{ n: string }>(`select count(*) as n from cluster_settings where name = 'secret_key_check'`)) as [{ n: string }];
    assert.equal(Number(n), 1);
  } finally {
    await Promise.all(instances.map((mr) => mr.stop()));
    await fresh.drop();
  }
});
