import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig, redirectUri } from '../../src/config/config.ts';

test('defaults match the documented contract', () => {
  const c = loadConfig({});
  assert.equal(c.port, 8080);
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.baseUrl.origin, 'http://localhost:8080');
  assert.match(c.databaseUrl, /^sqlite:.*data\/mailroom\.sqlite$/);
  assert.equal(c.microsoftAuthorityHost, 'https://login.microsoftonline.com');
  assert.equal(c.logLevel, 'info');
  assert.equal(c.secretKey, null);
  assert.ok(Object.isFrozen(c));
});

test('BASE_URL defaults to the configured port and builds the redirect URI without a double slash', () => {
  assert.equal(redirectUri(loadConfig({ PORT: '9090' }), 'outlook'), 'http://localhost:9090/oauth2/outlook/callback');
  assert.equal(redirectUri(loadConfig({ BASE_URL: 'https://mail.example.com/' }), 'outlook'), 'https://mail.example.com/oauth2/outlook/callback');
  assert.equal(redirectUri(loadConfig({ BASE_URL: 'https://erp.example.com/mailroom/' }), 'outlook'), 'https://erp.example.com/mailroom/oauth2/outlook/callback');
});

test('every problem is listed at once', () => {
  let err: unknown;
  try {
    loadConfig({
      PORT: 'eighty',
      BASE_URL: 'not a url',
      DATABASE_URL: 'mysql://x',
      MAILROOM_SECRET_KEY: 'short',
      MICROSOFT_AUTHORITY_HOST: 'http://login.example',
      LOG_LEVEL: 'loud',
    });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError);
  assert.equal(err.problems.length, 6);
  for (const name of ['PORT', 'BASE_URL', 'DATABASE_URL', 'MAILROOM_SECRET_KEY', 'MICROSOFT_AUTHORITY_HOST', 'LOG_LEVEL']) {
    assert.ok(err.problems.some((p) => p.startsWith(name)), `${name} is named`);
  }
});

test('a 32-byte base64 secret key is accepted, anything else is not', () => {
  const key = Buffer.alloc(32, 7).toString('base64');
  assert.deepEqual(loadConfig({ MAILROOM_SECRET_KEY: key }).secretKey, Buffer.alloc(32, 7));
  assert.throws(() => loadConfig({ MAILROOM_SECRET_KEY: Buffer.alloc(31).toString('base64') }), ConfigError);
});

test('national clouds are accepted as authority host, reduced to their origin', () => {
  assert.equal(loadConfig({ MICROSOFT_AUTHORITY_HOST: 'https://login.microsoftonline.us/' }).microsoftAuthorityHost, 'https://login.microsoftonline.us');
});
