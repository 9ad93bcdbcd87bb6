import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AuditLog } from '../../src/audit/audit-log.ts';
import { loadConfig } from '../../src/config/config.ts';
import { ApplicationTokens } from '../../src/oauth/application-tokens.ts';
import { CertificateService } from '../../src/oauth/certificate-service.ts';
import { secretAad, TokenManager } from '../../src/oauth/token-manager.ts';
import { createSealer } from '../../src/secrets/sealer.ts';
import { openDatabase, type OpenedDatabase } from '../../src/storage/database.ts';
import { findMailServer, insertMailServer, setLastFetch, setMailServerError, type StoredError } from '../../src/storage/mail-server-store.ts';

// What a success clears on a server: the error it began with, never a notice, and never an error or
// notice written while it ran. A rolled certificate's notice ("delete the old one in Azure") stays
// through every later token request until the admin takes it down.
const CLIENT_ID = '6731de76-14a6-49ae-97bc-6eba6914391e';
const TENANT = '9188040d-6c67-4c5b-b112-36a304b66dad';
const jwt = (payload: Record<string, unknown>) => `e30.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.c2ln`;
const sealer = createSealer(randomBytes(32));
const now = () => new Date();
let dir: string;
let opened: OpenedDatabase;
let tokens: TokenManager;
let certificates: CertificateService;
let requests = 0;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailroom-notice-'));
  opened = await openDatabase(`sqlite:${join(dir, 'mailroom.db')}`);
  const config = loadConfig({ DATABASE_URL: `sqlite:${join(dir, 'mailroom.db')}`, MAILROOM_SECRET_KEY: randomBytes(32).toString('base64'), LOG_LEVEL: 'silent' });
  const clientCredentials = async (_app: unknown, at: Date) => {
    requests++;
    return { accessToken: jwt({ roles: ['SMTP.SendAsApp'], n: requests }), expiresAt: new Date(at.getTime() + 3600_000), roles: ['SMTP.SendAsApp'], tenantId: TENANT, appId: CLIENT_ID, objectId: 'sp' };
  };
  tokens = new TokenManager({ db: opened.db, dialect: opened.dialect, sealer, config, now, clientCredentials });
  certificates = new CertificateService({ db: opened.db, sealer, audit: new AuditLog(opened.db, now), now });
  for (const id of ['app', 'imap']) {
    await insertMailServer(
      opened.db,
      id,
      {
        name: id, authType: 'outlook_oauth', username: `${id}@contoso.com`, clientId: CLIENT_ID, clientSecretSealed: sealer.seal('kX38Q~secret', secretAad(id)), clientSecretExpiresAt: null,
        tenant: TENANT, smtpHost: 'smtp.office365.com', smtpPort: 587, smtpSecurity: 'starttls', priority: 10, fromFilter: null, active: true, lastError: null, access: 'application',
      },
      now(),
    );
  }
});
after(async () => {
  await opened?.close();
  rmSync(dir, { recursive: true, force: true });
});

const lastError = async (id: string) => (await findMailServer(opened.db, id))!.lastError;

/** The server rolls its certificate and a token request proves the new one: the notice is written. */
async function rollAndPromote(id: string): Promise<StoredError> {
  await certificates.generate((await findMailServer(opened.db, id))!);
  const pending = await certificates.roll((await findMailServer(opened.db, id))!);
  assert.equal(await certificates.promote(id, pending.thumbprintSha256), true);
  const notice = (await lastError(id))!;
  assert.equal(notice.code, 'CERTIFICATE_ROLLED');
  assert.equal(notice.severity, 'notice');
  return notice;
}

test('a rolled certificate\'s notice stays through the token requests after it, until the admin takes it down', async () => {
  const notice = await rollAndPromote('app');
  const before = requests;
  await tokens.getApplicationAccess('app', { forceRefresh: true });
  await tokens.getApplicationAccess('app', { forceRefresh: true });
  assert.equal(requests, before + 2, 'two token requests succeeded');
  assert.deepEqual(await lastError('app'), notice);

  assert.equal(await certificates.dismissRolled((await findMailServer(opened.db, 'app'))!), true);
  assert.equal(await lastError('app'), null);
  assert.equal(await certificates.dismissRolled((await findMailServer(opened.db, 'app'))!), false, 'nothing left to take down');
});

test('a success clears the error it began with, but not a notice written while it ran', async () => {
  // The error seen when the token request began.
  const failure: StoredError = { code: 'AADSTS7000215', message: 'Invalid client secret', at: now().toISOString() };
  await setMailServerError(opened.db, 'app', failure);
  const seen = (await findMailServer(opened.db, 'app'))!;
  // Meanwhile another instance proves a rolled certificate and writes its notice.
  const notice = await rollAndPromote('app');
  // The request that began with the old error succeeds now: it was the error to clear, not the notice.
  const app = new ApplicationTokens({
    db: opened.db,
    dialect: opened.dialect,
    sealer,
    config: loadConfig({ DATABASE_URL: 'sqlite:x', MAILROOM_SECRET_KEY: randomBytes(32).toString('base64'), LOG_LEVEL: 'silent' }),
    now,
    app: (s) => ({ authorityHost: 'https://login.microsoftonline.com', tenant: s.tenant, clientId: s.clientId, credential: { kind: 'secret', secret: 'kX38Q~secret' }, redirectUri: '', scopes: [] }),
    clientCredentials: async (_a, at) => ({ accessToken: jwt({ roles: ['SMTP.SendAsApp'] }), expiresAt: new Date(at.getTime() + 3600_000), roles: ['SMTP.SendAsApp'], tenantId: TENANT, appId: CLIENT_ID, objectId: 'sp' }),
  });
  await app.get(seen, seen, true);
  assert.deepEqual(await lastError('app'), notice);
  await certificates.dismissRolled((await findMailServer(opened.db, 'app'))!);

  // The same for the error a good fetch clears: only if it is still the one stored.
  const imapError: StoredError = { code: 'IMAP_CONNECTION', message: 'The connection was reset', at: now().toISOString() };
  await setMailServerError(opened.db, 'imap', imapError);
  const newer: StoredError = { code: 'IMAP_AUTH', message: 'AUTHENTICATE failed', at: now().toISOString() };
  await setMailServerError(opened.db, 'imap', newer);
  await setLastFetch(opened.db, [{ id: 'imap', at: now().toISOString(), clearError: imapError }]);
  assert.deepEqual(await lastError('imap'), newer, 'the newer error stays');
  await setLastFetch(opened.db, [{ id: 'imap', at: now().toISOString(), clearError: newer }]);
  assert.equal(await lastError('imap'), null, 'the error the fetch began with is cleared');
  const fetched = (await findMailServer(opened.db, 'imap'))!;
  assert.ok(fetched.lastFetchAt);
});
