import assert from 'node:assert/strict';
import { test } from 'node:test';
import { alertDue, secretExpiry } from '../../src/lifecycle/secret-expiry.ts';

const at = (iso: string) => new Date(iso);

test('warnings start at 30, 7 and 1 days before the last valid day, and after expiry', () => {
  const expires = '2026-12-31';
  assert.deepEqual(secretExpiry(expires, at('2026-11-20T12:00:00Z')), { state: 'ok', daysLeft: 41, threshold: null });
  assert.equal(secretExpiry(expires, at('2026-12-01T12:00:00Z')).threshold, 30);
  assert.equal(secretExpiry(expires, at('2026-12-24T12:00:00Z')).threshold, 7);
  assert.equal(secretExpiry(expires, at('2026-12-30T12:00:00Z')).threshold, 1);
  assert.equal(secretExpiry(expires, at('2026-12-31T23:00:00Z')).state, 'expiring', 'valid through its last day');
  assert.deepEqual(secretExpiry(expires, at('2027-01-02T12:00:00Z')), { state: 'expired', daysLeft: -2, threshold: 0 });
  assert.equal(secretExpiry(null, at('2026-12-01T00:00:00Z')).state, 'unknown');
});

test('each warning is due once: only a tighter threshold than the last one sent', () => {
  const e30 = secretExpiry('2026-12-31', at('2026-12-05T00:00:00Z'));
  assert.equal(alertDue(e30, null), true);
  assert.equal(alertDue(e30, 30), false);
  const e7 = secretExpiry('2026-12-31', at('2026-12-26T00:00:00Z'));
  assert.equal(alertDue(e7, 30), true);
  assert.equal(alertDue(e7, 7), false);
  const gone = secretExpiry('2026-12-31', at('2027-01-05T00:00:00Z'));
  assert.equal(alertDue(gone, 1), true);
  assert.equal(alertDue(gone, 0), false);
  assert.equal(alertDue(secretExpiry('2027-06-30', at('2026-12-01T00:00:00Z')), null), false);
});
