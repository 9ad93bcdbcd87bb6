import assert from 'node:assert/strict';
import { test } from 'node:test';
import { grantIsDead, REFRESH_MARGIN_MS, tokenAction } from '../../src/oauth/token-manager.ts';

const now = new Date('2026-11-28T12:00:00Z');
const at = (ms: number) => new Date(now.getTime() + ms).toISOString();
const token = (over: Partial<Parameters<typeof tokenAction>[0] & object> = {}) => ({
  status: 'valid' as const,
  accessTokenSealed: 'v1:a',
  refreshTokenSealed: 'v1:r',
  accessTokenExpiresAt: at(3600_000),
  ...over,
});

test('a token with more than five minutes left is used as is', () => {
  assert.equal(tokenAction(token(), now), 'use');
  assert.equal(tokenAction(token({ accessTokenExpiresAt: at(REFRESH_MARGIN_MS + 1000) }), now), 'use');
});

test('a token with less than five minutes left, or expired, is refreshed', () => {
  assert.equal(tokenAction(token({ accessTokenExpiresAt: at(REFRESH_MARGIN_MS - 1000) }), now), 'refresh');
  assert.equal(tokenAction(token({ accessTokenExpiresAt: at(-1000) }), now), 'refresh');
});

test('a forced refresh refreshes even a fresh token', () => {
  assert.equal(tokenAction(token(), now, true), 'refresh');
});

test('without a refresh token an expiring token needs a reconnect', () => {
  assert.equal(tokenAction(token({ refreshTokenSealed: null, accessTokenExpiresAt: at(-1) }), now), 'reconnect_needed');
});

test('status wins: not connected and reconnect needed are reported, not refreshed', () => {
  assert.equal(tokenAction(undefined, now), 'not_connected');
  assert.equal(tokenAction(token({ status: 'not_connected' }), now), 'not_connected');
  assert.equal(tokenAction(token({ status: 'reconnect_needed' }), now), 'reconnect_needed');
});

test('only grant errors kill the connection; client and network errors do not', () => {
  const ev = (error: string) => ({ kind: 'oauth' as const, stage: 'refresh' as const, error, errorCodes: [] });
  assert.equal(grantIsDead(ev('invalid_grant')), true);
  assert.equal(grantIsDead(ev('interaction_required')), true);
  assert.equal(grantIsDead(ev('invalid_client')), false);
  assert.equal(grantIsDead(ev('temporarily_unavailable')), false);
});
