import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checklist } from '../../src/lifecycle/checklist.ts';
import { errorAndNotice, type MailServerRecord, type StoredError, type TokenRecord } from '../../src/storage/mail-server-store.ts';

const NOW = new Date('2026-12-07T10:00:00.000Z');

const server = (lastError: StoredError | null, more: Partial<MailServerRecord> = {}): MailServerRecord => ({
  id: 's1',
  name: 'Sales',
  authType: 'outlook_oauth',
  username: 'sales@contoso.com',
  clientId: '1b2c3d4e-0000-1111-2222-333344445555',
  clientSecretSealed: 'sealed',
  clientSecretExpiresAt: null,
  passwordSealed: null,
  tenant: 'common',
  smtpHost: 'smtp.office365.com',
  smtpPort: 587,
  smtpSecurity: 'starttls',
  priority: 10,
  fromFilter: null,
  active: true,
  lastError,
  createdAt: '2026-12-01T00:00:00.000Z',
  updatedAt: '2026-12-01T00:00:00.000Z',
  direction: 'outgoing',
  imap: null,
  tokenSourceId: null,
  appSourceId: null,
  lastFetchAt: null,
  secretAlertLevel: null,
  reconnectAlertedAt: null,
  allowAccountMismatch: false,
  loginOkAt: null,
  limits: { maxConnections: 3, messagesPerMinute: 30, recipientsPerDay: 10000, recipientsPerMessage: 500 },
  transport: 'smtp',
  clientCredential: 'secret',
  certificate: null,
  pendingCertificate: null,
  certificateAlertLevel: null,
  owner: null,
  access: 'delegated',
  ...more,
});

const token = (connectedAt: string): TokenRecord => ({
  mailServerId: 's1',
  status: 'valid',
  statusReason: null,
  account: 'sales@contoso.com',
  tenantId: null,
  scope: null,
  accessTokenSealed: 'x',
  accessTokenExpiresAt: '2026-12-07T11:00:00.000Z',
  refreshTokenSealed: 'y',
  version: 1,
  connectedAt,
  refreshedAt: connectedAt,
});

const item = (items: { key: string; state: string; detail: string | null }[], key: string) => items.find((i) => i.key === key)!;

test('a connect refused for the client secret fails "Credentials saved" with the reason, not ✓', () => {
  const refused: StoredError = { code: 'AADSTS7000215', message: 'Microsoft rejected the client secret.', evidence: { guideStep: 4 }, at: '2026-12-07T09:00:00.000Z' };
  const { items } = checklist(server(refused), undefined, NOW);
  assert.equal(item(items, 'credentials').state, 'failed');
  assert.equal(item(items, 'credentials').detail, 'Microsoft rejected the client secret.');
  assert.equal(item(items, 'consent').state, 'todo');
});

test('a declined consent fails "Consent given"; the credentials stay done', () => {
  const declined: StoredError = { code: 'AADSTS65004', message: 'The user declined to consent.', evidence: { guideStep: 5 }, at: '2026-12-07T09:00:00.000Z' };
  const { items } = checklist(server(declined), undefined, NOW);
  assert.equal(item(items, 'credentials').state, 'done');
  assert.equal(item(items, 'consent').state, 'failed');
  assert.equal(item(items, 'consent').detail, 'The user declined to consent.');
});

test('a failure older than the last good connect, a mail server refusal or a notice leaves the steps as they are', () => {
  const old: StoredError = { code: 'AADSTS65004', message: 'declined', evidence: { guideStep: 5 }, at: '2026-12-07T08:00:00.000Z' };
  assert.equal(item(checklist(server(old), token('2026-12-07T09:00:00.000Z'), NOW).items, 'consent').state, 'done');
  const smtp: StoredError = { code: 'SMTP_535_5.7.3', message: 'refused', at: '2026-12-07T09:30:00.000Z' };
  const s = checklist(server(smtp), token('2026-12-07T09:00:00.000Z'), NOW).items;
  assert.equal(item(s, 'credentials').state, 'done');
  assert.equal(item(s, 'login').state, 'failed');
  const notice: StoredError = { code: 'GMAIL_testing_publishing_status', message: '7 days', severity: 'notice', at: '2026-12-07T09:30:00.000Z' };
  const n = checklist(server(notice, { authType: 'gmail_oauth' }), token('2026-12-07T09:00:00.000Z'), NOW).items;
  assert.deepEqual(n.map((i) => i.state), ['done', 'done', 'done', 'todo']);
});

test('a notice about a working connection is not the Last error', () => {
  const notice: StoredError = { code: 'GMAIL_testing_publishing_status', message: '7 days', severity: 'notice', at: '2026-12-07T09:30:00.000Z' };
  assert.deepEqual(errorAndNotice(notice), { lastError: null, notice });
  const error: StoredError = { code: 'AADSTS65004', message: 'declined', at: '2026-12-07T09:30:00.000Z' };
  assert.deepEqual(errorAndNotice(error), { lastError: error, notice: null });
});

test('a personal mailbox signs in with its template\'s credentials: their expiry and absence fail its step, naming the template', () => {
  // The personal mailbox holds no client secret of its own; the template's is what runs out.
  const personal = server(null, { id: 'p1', name: 'Ana', username: 'ana@contoso.com', clientSecretSealed: null, clientId: '', appSourceId: 's1', owner: 'ana' });
  const credentials = (template: MailServerRecord | null | undefined) => item(checklist(personal, token('2026-12-07T09:00:00.000Z'), NOW, template).items, 'credentials');

  const fine = credentials(server(null, { clientSecretExpiresAt: '2027-06-01' }));
  assert.equal(fine.state, 'done');
  assert.match(fine.detail ?? '', /app registration of "Sales"/);

  const expired = credentials(server(null, { clientSecretExpiresAt: '2026-12-01' }));
  assert.equal(expired.state, 'failed');
  assert.match(expired.detail ?? '', /client secret of "Sales".*expired on 2026-12-01/);
  assert.equal(checklist(personal, undefined, NOW, server(null, { clientSecretExpiresAt: '2026-12-01' })).secret.state, 'expired', 'the secret shown is the template\'s');

  const certificateRanOut = credentials(server(null, { clientCredential: 'certificate', clientSecretSealed: null, certificate: { thumbprint: 'AB12', notAfter: '2026-12-06T00:00:00.000Z' } as never }));
  assert.equal(certificateRanOut.state, 'failed');
  assert.match(certificateRanOut.detail ?? '', /certificate of "Sales".*AB12.*expired on 2026-12-06/);

  const nothingSaved = credentials(server(null, { clientSecretSealed: null }));
  assert.equal(nothingSaved.state, 'todo');
  assert.match(nothingSaved.detail ?? '', /"Sales".*has no client secret saved/);

  const deleted = credentials(null);
  assert.equal(deleted.state, 'todo');
  assert.match(deleted.detail ?? '', /was deleted/);
});
