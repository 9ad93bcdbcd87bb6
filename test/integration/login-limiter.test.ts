import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { LOGIN_LIMITS, LoginLimiter } from '../../src/auth/login-limiter.ts';
import { openDatabase, type OpenedDatabase } from '../../src/storage/database.ts';
import { createTestDatabase, type TestPostgres } from '../helpers/postgres-db.ts';

// The same limiter on both engines: the counters live in the database.

interface Engine {
  name: string;
  open(): Promise<OpenedDatabase>;
  drop(): Promise<void>;
}

function sqliteEngine(): Engine {
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-limiter-'));
  return { name: 'sqlite', open: () => openDatabase(`sqlite:${join(dir, 'db.sqlite')}`), drop: async () => rmSync(dir, { recursive: true, force: true }) };
}

function postgresEngine(): Engine {
  let test: TestPostgres | undefined;
  return {
    name: 'postgres',
    async open() {
      test ??= await createTestDatabase('mailroom_limiter');
      return openDatabase(test.url);
    },
    drop: async () => test?.drop(),
  };
}

for (const engine of [sqliteEngine(), postgresEngine()]) {
  describe(`login limits on ${engine.name}`, () => {
    const opened: OpenedDatabase[] = [];
    const open = async () => {
      const o = await engine.open();
      opened.push(o);
      return o;
    };
    after(async () => {
      for (const o of opened) await o.close();
      await engine.drop();
    });
    let clock = new Date('2026-06-01T10:00:00Z');
    const now = () => clock;

    test('twenty parallel attempts for one account from one address: exactly five are let through', async () => {
      const { db } = await open();
      const limiter = new LoginLimiter(db, LOGIN_LIMITS, now);
      const results = await Promise.all(Array.from({ length: 20 }, () => limiter.attempt('203.0.113.9', 'parallel@example.test')));
      assert.equal(results.filter((r) => r.ok).length, 5);
      const refused = results.find((r) => !r.ok);
      assert.ok(refused && !refused.ok && refused.retryAfterMs > 14 * 60_000 && refused.retryAfterMs <= 15 * 60_000);
    });

    test('a stranger locked out of one account does not lock the admin out from their own address', async () => {
      const { db } = await open();
      const limiter = new LoginLimiter(db, LOGIN_LIMITS, now);
      // 60 attempts from one address: 5 are counted, the 55 refused ones use nothing up.
      for (let i = 0; i < 60; i++) await limiter.attempt('198.51.100.7', 'victim@example.test');
      assert.equal((await limiter.attempt('198.51.100.7', 'victim@example.test')).ok, false);
      assert.equal((await limiter.attempt('192.0.2.1', 'victim@example.test')).ok, true);
    });

    test('guesses spread over many addresses stop at the account-wide limit', async () => {
      const { db } = await open();
      const limiter = new LoginLimiter(db, LOGIN_LIMITS, now);
      for (let i = 0; i < LOGIN_LIMITS.perAccount; i++) assert.equal((await limiter.attempt(`10.1.${i}.1`, 'spread@example.test')).ok, true);
      const r = await limiter.attempt('10.2.0.1', 'spread@example.test');
      assert.ok(!r.ok && r.retryAfterMs > 59 * 60_000);
    });

    test('one address may fail for many accounts before it is stopped', async () => {
      const { db } = await open();
      const limiter = new LoginLimiter(db, LOGIN_LIMITS, now);
      for (let i = 0; i < LOGIN_LIMITS.perAddress; i++) assert.equal((await limiter.attempt('office-nat', `user${i}@example.test`)).ok, true);
      assert.equal((await limiter.attempt('office-nat', 'someone@example.test')).ok, false);
    });

    test('a success gives its attempt back and clears the pair', async () => {
      const { db } = await open();
      const limiter = new LoginLimiter(db, LOGIN_LIMITS, now);
      for (let i = 0; i < 4; i++) await limiter.attempt('192.0.2.50', 'ok@example.test');
      const good = await limiter.attempt('192.0.2.50', 'ok@example.test');
      assert.ok(good.ok);
      await good.succeeded();
      for (let i = 0; i < 5; i++) assert.equal((await limiter.attempt('192.0.2.50', 'ok@example.test')).ok, true, `attempt ${i + 1} after the success`);
      assert.equal((await limiter.attempt('192.0.2.50', 'ok@example.test')).ok, false);
    });

    test('counting failures only (SMTP AUTH): parallel checks use nothing up, failures lock the pair, a realm of its own', async () => {
      const { db } = await open();
      const smtp = new LoginLimiter(db, LOGIN_LIMITS, now, 'smtp');
      const logins = new LoginLimiter(db, LOGIN_LIMITS, now);
      const waits = await Promise.all(Array.from({ length: 50 }, () => smtp.limitedFor('192.0.2.90', 'erp')));
      assert.deepEqual(new Set(waits), new Set([0]), 'fifty logins at once are not limited');
      for (let i = 0; i < LOGIN_LIMITS.perPair; i++) assert.equal((await smtp.failed('192.0.2.90', 'erp')).ok, true);
      const wait = await smtp.limitedFor('192.0.2.90', 'erp');
      assert.ok(wait > 14 * 60_000 && wait <= 15 * 60_000, `limited for ${wait} ms`);
      assert.equal((await smtp.failed('192.0.2.90', 'erp')).ok, false, 'one more failure is over the limit');
      assert.equal(await smtp.limitedFor('192.0.2.90', 'printer'), 0, 'another name from the address is not');
      assert.equal((await logins.attempt('192.0.2.90', 'erp')).ok, true, 'admin logins count apart');
      clock = new Date(clock.getTime() + LOGIN_LIMITS.pairWindowMs + 1000);
      assert.equal(await smtp.limitedFor('192.0.2.90', 'erp'), 0, 'the window has passed');
    });

    test('counters survive reopening the database and end with their window', async () => {
      const first = await open();
      const limiter = new LoginLimiter(first.db, LOGIN_LIMITS, now);
      for (let i = 0; i < 5; i++) await limiter.attempt('192.0.2.77', 'restart@example.test');
      await first.close();
      opened.splice(opened.indexOf(first), 1);
      const second = await open();
      const again = new LoginLimiter(second.db, LOGIN_LIMITS, now);
      assert.equal((await again.attempt('192.0.2.77', 'restart@example.test')).ok, false, 'still locked after a restart');
      clock = new Date(clock.getTime() + LOGIN_LIMITS.pairWindowMs + 1000);
      assert.equal((await again.attempt('192.0.2.77', 'restart@example.test')).ok, true, 'the window has passed');
    });
  });
}
