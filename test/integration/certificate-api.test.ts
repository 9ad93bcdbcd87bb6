import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { generateCertificate } from '../../src/oauth/client-certificate.ts';
import { loginAgent, startTestMailroom, type Agent, type TestMailroom } from '../helpers/test-mailroom.ts';

let t: TestMailroom;
let agent: Agent;

before(async () => {
  t = await startTestMailroom({ MICROSOFT_AUTHORITY_HOST: 'https://login.example.test' });
  agent = await loginAgent(t);
});
after(() => t.close());

const SERVER = { name: 'Cert — sales', authType: 'outlook_oauth', username: 'sales@contoso.example', clientId: '3f0c2d1e-5b6a-4c7d-8e9f-0a1b2c3d4e5f', tenant: 'contoso.example' };

async function newServer(body: Record<string, unknown> = {}) {
  const r = await agent.request('POST', '/api/v1/mail-servers', { ...SERVER, clientCredential: 'certificate', ...body });
  assert.equal(r.status, 201, r.body);
  return r.json;
}

function pfxOf(certificatePem: string, privateKeyPem: string, password: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-pfx-'));
  try {
    writeFileSync(join(dir, 'c.pem'), certificatePem);
    writeFileSync(join(dir, 'k.pem'), privateKeyPem);
    execFileSync('openssl', ['pkcs12', '-export', '-in', join(dir, 'c.pem'), '-inkey', join(dir, 'k.pem'), '-out', join(dir, 'x.pfx'), '-passout', `pass:${password}`]);
    return readFileSync(join(dir, 'x.pfx')).toString('base64');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('Client Credential "certificate" needs no client secret; "secret" still does; Gmail cannot take a certificate', async () => {
  const s = await newServer();
  assert.equal(s.clientCredential, 'certificate');
  assert.equal(s.certificate, null);
  assert.equal(s.clientSecretSet, false);
  const missing = await agent.request('POST', '/api/v1/mail-servers', { ...SERVER, clientCredential: 'secret' });
  assert.equal(missing.status, 400);
  assert.ok(missing.json.error.fields.clientSecret);
  const gmail = await agent.request('POST', '/api/v1/mail-servers', { ...SERVER, authType: 'gmail_oauth', clientId: '1234-abc.apps.googleusercontent.com', clientCredential: 'certificate' });
  assert.equal(gmail.status, 400);
  assert.match(gmail.json.error.fields.clientCredential, /client secret only/);
  const bad = await agent.request('POST', '/api/v1/mail-servers', { ...SERVER, clientCredential: 'password' });
  assert.equal(bad.status, 400);
  assert.ok(bad.json.error.fields.clientCredential);
  const plain = await agent.request('POST', '/api/v1/mail-servers', { ...SERVER, clientSecret: 'Xy8Q~s3cr3t.Value-Only_Shown~Once1234567' });
  assert.equal(plain.json.clientCredential, 'secret', 'the default');
});

test('generate answers the read model without key material, seals the key, audits; downloads are PEM and DER', async () => {
  const s = await newServer();
  const r = await agent.request('POST', `/api/v1/mail-servers/${s.id}/certificate`, {});
  assert.equal(r.status, 200, r.body);
  const c = r.json.certificate;
  assert.match(c.thumbprint, /^[0-9A-F]{40}$/);
  assert.match(c.thumbprintSha256, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(c.source, 'generated');
  assert.match(c.subject, /CN=Mailroom Cert/);
  const years = (Date.parse(c.notAfter) - Date.parse(c.notBefore)) / (365 * 86400_000);
  assert.ok(years > 1.99 && years < 2.01, String(years));
  assert.ok(!/PRIVATE KEY|privateKey/.test(r.body));
  assert.equal(r.json.checklist.find((i: { key: string }) => i.key === 'credentials').state, 'done');

  const again = await agent.request('POST', `/api/v1/mail-servers/${s.id}/certificate`, {});
  assert.equal(again.status, 409);
  assert.equal(again.json.error.code, 'MR_CERTIFICATE_EXISTS');

  const pem = await agent.request('GET', `/api/v1/mail-servers/${s.id}/certificate.pem`);
  assert.equal(pem.status, 200);
  assert.equal(pem.headers['content-disposition'], `attachment; filename="Cert-sales-${c.thumbprint}.pem"`);
  assert.equal(new X509Certificate(pem.body).fingerprint.replace(/:/g, ''), c.thumbprint);
  const der = await t.app.inject({ method: 'GET', url: `/api/v1/mail-servers/${s.id}/certificate.cer`, headers: { cookie: agent.cookie } });
  assert.equal(der.headers['content-type'], 'application/pkix-cert');
  assert.equal(new X509Certificate(der.rawPayload).fingerprint.replace(/:/g, ''), c.thumbprint);
  assert.equal((await agent.request('GET', `/api/v1/mail-servers/${s.id}/certificate.cer?which=pending`)).status, 404);
  assert.equal((await agent.request('GET', `/api/v1/mail-servers/${s.id}/certificate.cer?which=other`)).status, 400);

  // The key is sealed: no PEM key in the database file or the logs.
  const files = readdirSync(t.dataDir).filter((f) => f.startsWith('mailroom.sqlite'));
  for (const f of files) assert.ok(!readFileSync(join(t.dataDir, f)).includes('PRIVATE KEY'), f);
  assert.ok(!t.logs.join('').includes('PRIVATE KEY'));
  const audit = await agent.request('GET', `/api/v1/audit-events?targetId=${s.id}`);
  const actions = (audit.json.items as Array<{ action: string }>).map((e) => e.action);
  assert.ok(actions.includes('certificate.generated'), actions.join());
  assert.ok(actions.includes('certificate.downloaded'), actions.join());
});

test('roll makes a pending certificate and keeps the current one; download ?which=pending gives the new one', async () => {
  const s = await newServer();
  const first = (await agent.request('POST', `/api/v1/mail-servers/${s.id}/certificate`, {})).json.certificate;
  const rolled = await agent.request('POST', `/api/v1/mail-servers/${s.id}/certificate/roll`, {});
  assert.equal(rolled.status, 200, rolled.body);
  assert.equal(rolled.json.certificate.thumbprint, first.thumbprint);
  const pending = rolled.json.certificate.pending;
  assert.notEqual(pending.thumbprint, first.thumbprint);
  assert.ok(pending.createdAt);
  const pem = await agent.request('GET', `/api/v1/mail-servers/${s.id}/certificate.pem?which=pending`);
  assert.equal(new X509Certificate(pem.body).fingerprint.replace(/:/g, ''), pending.thumbprint);
  const bare = await newServer();
  const none = await agent.request('POST', `/api/v1/mail-servers/${bare.id}/certificate/roll`, {});
  assert.equal(none.status, 400);
  assert.ok(none.json.error.fields.certificate);
});

test('import takes a PEM pair or a PFX with its password; on a server whose certificate is in use it waits as pending', async () => {
  const s = await newServer();
  const c = generateCertificate({ name: 'imported', now: new Date() });
  const r = await agent.request('POST', `/api/v1/mail-servers/${s.id}/certificate/import`, { certificatePem: c.certificatePem, privateKeyPem: c.privateKeyPem });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.certificate.thumbprint, c.thumbprint);
  assert.equal(r.json.certificate.source, 'imported');
  const d = generateCertificate({ name: 'pfx', now: new Date() });
  const p = await agent.request('POST', `/api/v1/mail-servers/${s.id}/certificate/import`, { pfxBase64: pfxOf(d.certificatePem, d.privateKeyPem, 'pfx pass'), pfxPassword: 'pfx pass' });
  assert.equal(p.status, 200, p.body);
  assert.equal(p.json.certificate.thumbprint, c.thumbprint, 'the certificate in use stays');
  assert.equal(p.json.certificate.pending.thumbprint, d.thumbprint);

  // Incoming servers have the same routes.
  const inc = await agent.request('POST', '/api/v1/incoming-servers', { name: 'Cert inbox', username: 'inbox@contoso.example', clientId: SERVER.clientId, tenant: 'contoso.example', clientCredential: 'certificate' });
  assert.equal(inc.status, 201, inc.body);
  assert.equal(inc.json.clientCredential, 'certificate');
  const gi = await agent.request('POST', `/api/v1/incoming-servers/${inc.json.id}/certificate/import`, { pfxBase64: pfxOf(d.certificatePem, d.privateKeyPem, 'x'), pfxPassword: 'x' });
  assert.equal(gi.status, 200, gi.body);
  assert.equal(gi.json.certificate.thumbprint, d.thumbprint);
  assert.equal((await agent.request('GET', `/api/v1/mail-servers/${inc.json.id}/certificate.pem`)).status, 404, 'an incoming server is not under mail-servers');
});

test('hostile uploads are refused with 400 naming the field, never a 500', async () => {
  const s = await newServer();
  const c = generateCertificate({ name: 'h', now: new Date() });
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const cases: Array<[unknown, string]> = [
    [{ certificatePem: 'garbage', privateKeyPem: c.privateKeyPem }, 'certificatePem'],
    [{ certificatePem: c.certificatePem, privateKeyPem: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----' }, 'privateKeyPem'],
    [{ certificatePem: c.certificatePem, privateKeyPem: small }, 'privateKeyPem'],
    [{ certificatePem: c.certificatePem, privateKeyPem: generateCertificate({ name: 'o', now: new Date() }).privateKeyPem }, 'privateKeyPem'],
    [{ pfxBase64: pfxOf(c.certificatePem, c.privateKeyPem, 'right'), pfxPassword: 'wrong' }, 'pfxPassword'],
    [{ pfxBase64: Buffer.from('junk').toString('base64') }, 'pfxBase64'],
    [{ pfxBase64: 'A'.repeat(257 * 1024) }, 'pfxBase64'],
    [{ certificatePem: 'A'.repeat(70 * 1024), privateKeyPem: 'x' }, 'certificatePem'],
    [{ certificatePem: 42, privateKeyPem: 'x' }, 'certificatePem'],
    [{}, 'certificatePem'],
    [{ pfxBase64: 'AAAA', certificatePem: 'x' }, 'certificatePem'],
  ];
  for (const [body, field] of cases) {
    const r = await agent.request('POST', `/api/v1/mail-servers/${s.id}/certificate/import`, body);
    assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 80)} → ${r.body.slice(0, 300)}`);
    assert.equal(r.json.error.code, 'MR_VALIDATION');
    assert.ok(r.json.error.fields?.[field], `${field}: ${r.body.slice(0, 300)}`);
  }
  const huge = await t.app.inject({ method: 'POST', url: `/api/v1/mail-servers/${s.id}/certificate/import`, headers: { cookie: agent.cookie, 'x-csrf-token': agent.csrfToken, 'content-type': 'application/json' }, payload: JSON.stringify({ pfxBase64: 'A'.repeat(2 * 1024 * 1024) }) });
  assert.equal(huge.statusCode, 413);
  assert.equal((await agent.request('GET', `/api/v1/mail-servers/${s.id}`)).json.certificate, null, 'nothing was stored');
});
