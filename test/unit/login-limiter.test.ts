import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LoginLimiter } from '../../src/auth/login-limiter.ts';

test('five failures lock out further attempts until the window passes', () => {
  let now = 0;
  const l = new LoginLimiter(5, 60_000, 20, () => now);
  for (let i = 0; i < 5; i++) {
    assert.equal(l.retryAfterMs('1.2.3.4', 'a@x'), 0);
    l.recordFailure('1.2.3.4', 'a@x');
  }
  assert.equal(l.retryAfterMs('1.2.3.4', 'a@x'), 60_000);
  assert.ok(l.retryAfterMs('5.6.7.8', 'a@x') > 0, 'the account is protected from other addresses too');
  now = 60_001;
  assert.equal(l.retryAfterMs('1.2.3.4', 'a@x'), 0);
});

test('a success clears the counters', () => {
  const l = new LoginLimiter(2, 60_000, 8, () => 0);
  l.recordFailure('ip', 'a');
  l.recordSuccess('ip', 'a');
  l.recordFailure('ip', 'a');
  assert.equal(l.retryAfterMs('ip', 'a'), 0);
});

test('one address may fail more often than one account before it is stopped', () => {
  const l = new LoginLimiter(5, 60_000, 20, () => 0);
  for (let i = 0; i < 19; i++) l.recordFailure('office-nat', `user${i}@x`);
  assert.equal(l.retryAfterMs('office-nat', 'someone@x'), 0);
  l.recordFailure('office-nat', 'user19@x');
  assert.ok(l.retryAfterMs('office-nat', 'someone@x') > 0);
});
