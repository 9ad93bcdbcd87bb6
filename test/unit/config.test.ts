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

test('PostgreSQL needs MAILROOM_SECRET_KEY: one key for every instance, not a key file per DATA_DIR', () => {
  let err: unknown;
  try {
    loadConfig({ DATABASE_URL: 'postgres://db.internal/mailroom' });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError);
  assert.ok(err.problems.some((p) => p.startsWith('MAILROOM_SECRET_KEY is required with a PostgreSQL DATABASE_URL')));
  const key = Buffer.alloc(32, 7).toString('base64');
  assert.equal(loadConfig({ DATABASE_URL: 'postgres://db.internal/mailroom', MAILROOM_SECRET_KEY: key }).databaseUrl, 'postgres://db.internal/mailroom');
  assert.equal(loadConfig({}).secretKey, null, 'SQLite keeps its key file');
});

test('DATABASE_STARTUP_TIMEOUT_SECONDS bounds the wait for PostgreSQL at start: 300 s by default, 0 waits as long as it takes', () => {
  assert.equal(loadConfig({}).databaseTimeouts.startupMs, 300_000);
  assert.equal(loadConfig({ DATABASE_STARTUP_TIMEOUT_SECONDS: '0' }).databaseTimeouts.startupMs, 0);
  assert.equal(loadConfig({ DATABASE_STARTUP_TIMEOUT_SECONDS: '2.5' }).databaseTimeouts.startupMs, 2500);
  for (const bad of ['-1', 'soon', '100000']) {
    let err: unknown;
    try {
      loadConfig({ DATABASE_STARTUP_TIMEOUT_SECONDS: bad });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError, bad);
    assert.deepEqual(err.problems, [`DATABASE_STARTUP_TIMEOUT_SECONDS must be a number from 0 to 86400 (got "${bad}")`]);
  }
});

test('national clouds are accepted as authority host, reduced to their origin', () => {
  assert.equal(loadConfig({ MICROSOFT_AUTHORITY_HOST: 'https://login.microsoftonline.us/' }).microsoftAuthorityHost, 'https://login.microsoftonline.us');
});

test('the SMTP listener is off unless a port is set', () => {
  assert.equal(loadConfig({}).submission, null);
});

test('SMTP ports without a certificate are refused, except plaintext AUTH allowed on loopback only', () => {
  let err: unknown;
  try {
    loadConfig({ SMTP_SUBMISSION_PORT: '2587', SMTP_SUBMISSIONS_PORT: '2465' });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError);
  assert.equal(err.problems.length, 2);
  assert.ok(err.problems.some((p) => p.startsWith('SMTP_SUBMISSIONS_PORT') && p.includes('SMTP_TLS_CERT')));
  assert.ok(err.problems.some((p) => p.startsWith('SMTP_SUBMISSION_PORT') && p.includes('SMTP_ALLOW_INSECURE_AUTH_ON_LOOPBACK=true')));
  const c = loadConfig({ SMTP_SUBMISSION_PORT: '2587', SMTP_ALLOW_INSECURE_AUTH_ON_LOOPBACK: 'true' });
  assert.deepEqual({ ...c.submission }, { starttlsPort: 2587, tlsPort: null, tls: null, allowInsecureAuthOnLoopback: true, maxClients: 1000, maxConnectionsPerAddress: 50, reverseLookup: false, idleTimeoutMs: 60_000 });
});

test('SMTP listener limits: client caps, idle timeout and reverse lookups from the environment, bad values listed', () => {
  const base = { SMTP_SUBMISSION_PORT: '2587', SMTP_ALLOW_INSECURE_AUTH_ON_LOOPBACK: 'true' };
  const c = loadConfig({ ...base, SMTP_MAX_CLIENTS: '200', SMTP_MAX_CONNECTIONS_PER_ADDRESS: '5', SMTP_IDLE_TIMEOUT_SECONDS: '30', SMTP_REVERSE_LOOKUP: 'TRUE' });
  assert.deepEqual([c.submission?.maxClients, c.submission?.maxConnectionsPerAddress, c.submission?.idleTimeoutMs, c.submission?.reverseLookup], [200, 5, 30_000, true]);
  let err: unknown;
  try {
    loadConfig({ ...base, SMTP_MAX_CLIENTS: '0', SMTP_MAX_CONNECTIONS_PER_ADDRESS: '2.5', SMTP_IDLE_TIMEOUT_SECONDS: '1', SMTP_REVERSE_LOOKUP: 'yes' });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError);
  assert.deepEqual(err.problems, [
    'SMTP_MAX_CLIENTS must be a whole number from 1 to 100000 (got "0")',
    'SMTP_MAX_CONNECTIONS_PER_ADDRESS must be a whole number from 1 to 100000 (got "2.5")',
    'SMTP_IDLE_TIMEOUT_SECONDS must be a whole number from 5 to 3600 (got "1")',
    'SMTP_REVERSE_LOOKUP must be true or false (got "yes")',
  ]);
});

test('SMTP settings problems are listed with the rest: bad ports, a missing key, unreadable files, a bad flag', () => {
  let err: unknown;
  try {
    loadConfig({
      PORT: '8080',
      SMTP_SUBMISSION_PORT: '8080',
      SMTP_SUBMISSIONS_PORT: 'smtps',
      SMTP_TLS_CERT: '/nonexistent/cert.pem',
      SMTP_ALLOW_INSECURE_AUTH_ON_LOOPBACK: 'yes',
    });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError);
  const has = (start: string, part: string) => assert.ok(err instanceof ConfigError && err.problems.some((p) => p.startsWith(start) && p.includes(part)), `${start} … ${part}: ${err}`);
  has('SMTP_SUBMISSION_PORT', 'differ from PORT');
  has('SMTP_SUBMISSIONS_PORT', '1 to 65535');
  has('SMTP_TLS_CERT is set but SMTP_TLS_KEY', 'both');
  has('SMTP_TLS_CERT cannot be read', 'ENOENT');
  has('SMTP_ALLOW_INSECURE_AUTH_ON_LOOPBACK', 'true or false');
});

test('the SMTP certificate and key are read at start and must belong together', async () => {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { createTestCa } = await import('../peers/test-ca.ts');
  const dir = await mkdtemp(join(tmpdir(), 'mailroom-config-'));
  try {
    const ca = await createTestCa(dir);
    const c = loadConfig({ SMTP_SUBMISSIONS_PORT: '2465', SMTP_TLS_CERT: ca.certFile, SMTP_TLS_KEY: ca.keyFile });
    assert.equal(c.submission?.tlsPort, 2465);
    assert.equal(c.submission?.tls?.cert.toString(), ca.cert);
    // The CA's key does not match the server certificate.
    assert.throws(
      () => loadConfig({ SMTP_SUBMISSIONS_PORT: '2465', SMTP_TLS_CERT: ca.certFile, SMTP_TLS_KEY: join(dir, 'ca.key') }),
      (e: unknown) => e instanceof ConfigError && e.problems.some((p) => p.startsWith('SMTP_TLS_CERT and SMTP_TLS_KEY are not a usable')),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the limits for many mailboxes: defaults, values, and bad values named', () => {
  const d = loadConfig({});
  assert.equal(d.inboundMaxIdle, 1000);
  assert.equal(d.inboundMaxFetches, 16);
  assert.equal(d.outbox.maxOpenConnections, 500);
  assert.equal(d.outbox.idleCloseMs, 30_000);
  assert.equal(d.outbox.thread, true, 'serve delivers on its own thread by default');
  assert.equal(loadConfig({ OUTBOX_THREAD: 'off' }).outbox.thread, false);
  const c = loadConfig({ INBOUND_MAX_IDLE_CONNECTIONS: '0', INBOUND_MAX_CONCURRENT_FETCHES: '4', SMTP_MAX_OPEN_CONNECTIONS: '50', SMTP_IDLE_CLOSE_SECONDS: '5' });
  assert.equal(c.inboundMaxIdle, 0);
  assert.equal(c.inboundMaxFetches, 4);
  assert.equal(c.outbox.maxOpenConnections, 50);
  assert.equal(c.outbox.idleCloseMs, 5000);
  assert.throws(
    () => loadConfig({ INBOUND_MAX_IDLE_CONNECTIONS: '-1', INBOUND_MAX_CONCURRENT_FETCHES: '0', SMTP_MAX_OPEN_CONNECTIONS: 'many', SMTP_IDLE_CLOSE_SECONDS: '0' }),
    (e: unknown) =>
      e instanceof ConfigError && ['INBOUND_MAX_IDLE_CONNECTIONS', 'INBOUND_MAX_CONCURRENT_FETCHES', 'SMTP_MAX_OPEN_CONNECTIONS', 'SMTP_IDLE_CLOSE_SECONDS'].every((name) => e.message.includes(name)),
  );
});
