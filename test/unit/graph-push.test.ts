import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { GRAPH_MESSAGE_SUBSCRIPTION_MAX_MINUTES, loadConfig } from '../../src/config/config.ts';
import { SourceRateLimit } from '../../src/http/routes/graph-notification-routes.ts';
import { clientStateMatches, subscriptionFailure } from '../../src/inbound/graph-subscriptions.ts';
import { GraphError } from '../../src/graph/graph-client.ts';

test('push is on for an https BASE_URL or NOTIFICATION_BASE_URL, on loopback http for tests, and off with the reason otherwise', () => {
  assert.equal(loadConfig({ BASE_URL: 'https://mail.example.com' }).graphPush.notificationBase, 'https://mail.example.com');
  assert.equal(loadConfig({ BASE_URL: 'http://mail.internal', NOTIFICATION_BASE_URL: 'https://hooks.example.com/mailroom/' }).graphPush.notificationBase, 'https://hooks.example.com/mailroom');
  assert.equal(loadConfig({ NOTIFICATION_BASE_URL: 'http://127.0.0.1:8080' }).graphPush.notificationBase, 'http://127.0.0.1:8080', 'loopback http only when named on purpose (the test stand-in)');
  assert.equal(loadConfig({ BASE_URL: 'http://localhost:3000' }).graphPush.notificationBase, null, 'a BASE_URL on localhost behind a proxy is not reachable by Microsoft');
  const off = loadConfig({ BASE_URL: 'http://mail.internal' }).graphPush;
  assert.equal(off.notificationBase, null);
  assert.match(off.offReason!, /BASE_URL \(http:\/\/mail\.internal\) is not https.*NOTIFICATION_BASE_URL/);
  assert.match(loadConfig({ BASE_URL: 'https://mail.example.com', GRAPH_PUSH: 'off' }).graphPush.offReason!, /GRAPH_PUSH is off/);
  const d = loadConfig({}).graphPush;
  assert.equal(d.pollMs, 15 * 60_000, 'the safety net runs every 15 minutes by default');
  assert.equal(d.subscriptionMinutes, GRAPH_MESSAGE_SUBSCRIPTION_MAX_MINUTES);
  assert.throws(() => loadConfig({ NOTIFICATION_BASE_URL: 'ftp://x' }), /NOTIFICATION_BASE_URL must start with https/);
});

test('clientState is compared by its hash in constant time; anything but the exact string is refused', () => {
  const stored = createHash('sha256').update('s3cret-state').digest('hex');
  assert.equal(clientStateMatches('s3cret-state', stored), true);
  for (const bad of ['s3cret-statE', '', undefined, null, 42, 's3cret-state ', 'x'.repeat(129)]) assert.equal(clientStateMatches(bad, stored), false, String(bad));
  assert.equal(clientStateMatches('s3cret-state', null), false, 'no subscription: nothing matches');
});

test('the per-source limit allows a burst, refills over time, and forgets sources past its size', () => {
  const l = new SourceRateLimit(3, 1);
  const t = 1_000_000;
  assert.deepEqual([1, 2, 3, 4].map(() => l.take('a', t)), [true, true, true, false]);
  assert.equal(l.take('b', t), true, 'another source has its own bucket');
  assert.equal(l.take('a', t + 1000), true, 'one more a second later');
  for (let i = 0; i < 20_000; i++) l.take(`spoofed-${i}`, t);
});

test('a refused subscription says why and what to fix', () => {
  const v = subscriptionFailure(new GraphError({ kind: 'graph', status: 400, code: 'ValidationError', message: 'Subscription validation request failed.' }), 300_000);
  assert.match(v, /could not reach the notification endpoint.*NOTIFICATION_BASE_URL.*tries again in 300 s/);
  assert.match(subscriptionFailure(new GraphError({ kind: 'graph', status: 403, code: 'ErrorAccessDenied', message: 'Access is denied.' }), 60_000), /permission/);
});
