import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { REFRESH_MARGIN_MS, renewalOffset, renewAt, tokenAction } from '../../src/oauth/token-manager.ts';

const issued = Date.parse('2026-11-28T12:00:00Z');
const HOUR = 3600_000;
const MINUTE = 60_000;
const tokenFor = (mailServerId: string) => ({
  mailServerId,
  status: 'valid' as const,
  accessTokenSealed: 'v1:a',
  refreshTokenSealed: 'v1:r',
  refreshedAt: new Date(issued).toISOString(),
  accessTokenExpiresAt: new Date(issued + HOUR).toISOString(),
});

test('a thousand tokens issued together are renewed over the last quarter of their hour, not in one burst', () => {
  const ids = Array.from({ length: 1000 }, () => randomUUID());
  const times = ids.map((id) => renewAt(tokenFor(id)));
  // Inside the window: no earlier than 45 min, no later than 5 min before expiry.
  for (const t of times) {
    assert.ok(t >= issued + 45 * MINUTE, `renewed too early: ${(t - issued) / MINUTE} min`);
    assert.ok(t <= issued + HOUR - REFRESH_MARGIN_MS, `renewed too late: ${(t - issued) / MINUTE} min`);
  }
  // Spread: each of the ten minutes of the window gets about a tenth; none more than a fifth.
  const perMinute = new Map<number, number>();
  for (const t of times) {
    const m = Math.floor((t - issued - 45 * MINUTE) / MINUTE);
    perMinute.set(m, (perMinute.get(m) ?? 0) + 1);
  }
  assert.equal(perMinute.size, 10, `renewals fell into ${perMinute.size} minutes`);
  for (const [m, n] of perMinute) assert.ok(n <= 200, `minute ${m} has ${n} of 1000 renewals`);
  // Per second, at most a handful at once.
  const perSecond = new Map<number, number>();
  for (const t of times) perSecond.set(Math.floor(t / 1000), (perSecond.get(Math.floor(t / 1000)) ?? 0) + 1);
  assert.ok(Math.max(...perSecond.values()) <= 10, `${Math.max(...perSecond.values())} renewals in one second`);
});

test('the renewal time is a pure function of the server and its token: every instance and restart agrees', () => {
  const id = randomUUID();
  assert.equal(renewAt(tokenFor(id)), renewAt(tokenFor(id)));
  assert.equal(renewalOffset(id), renewalOffset(id));
  assert.ok(renewalOffset(id) >= 0 && renewalOffset(id) < 1);
});

test('before its renewal time a token is used, from it on it is refreshed', () => {
  const id = randomUUID();
  const t = tokenFor(id);
  const at = renewAt(t);
  assert.equal(tokenAction(t, new Date(at - 1000)), 'use');
  assert.equal(tokenAction(t, new Date(at + 1)), 'refresh');
  // The five-minute margin still holds whatever the offset.
  assert.equal(tokenAction(t, new Date(issued + HOUR - REFRESH_MARGIN_MS + 1)), 'refresh');
});

test('a token whose issue time is unknown is renewed at the fixed margin', () => {
  const t = { ...tokenFor(randomUUID()), refreshedAt: null };
  assert.equal(renewAt(t), issued + HOUR - REFRESH_MARGIN_MS);
  assert.equal(tokenAction(t, new Date(issued + 50 * MINUTE)), 'use');
});
