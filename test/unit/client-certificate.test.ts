import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { certificateDer, generateCertificate, importCertificate, MAX_PEM_CHARS, MAX_PFX_BASE64_CHARS } from '../../src/oauth/client-certificate.ts';

const NOW = new Date('2026-12-07T06:00:00Z');

/** openssl makes the PFX as an admin would (pkcs12 -export), modern (AES, SHA-256 MAC) or legacy (3DES, SHA-1). */
function pfxOf(certificatePem: string, privateKeyPem: string, password: string, legacy = false): string {
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-pfx-'));
  try {
    writeFileSync(join(dir, 'c.pem'), certificatePem);
    writeFileSync(join(dir, 'k.pem'), privateKeyPem);
    const args = ['pkcs12', '-export', '-in', join(dir, 'c.pem'), '-inkey', join(dir, 'k.pem'), '-out', join(dir, 'x.pfx'), '-passout', `pass:${password}`];
    if (legacy) args.push('-certpbe', 'PBE-SHA1-3DES', '-keypbe', 'PBE-SHA1-3DES', '-macalg', 'sha1');
    execFileSync('openssl', args);
    return readFileSync(join(dir, 'x.pfx')).toString('base64');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const fieldOf = (e: any) => Object.keys(e.fields ?? {})[0];

test('a generated certificate is RSA 2048, self-signed, valid two years, and its thumbprints are those Azure shows', () => {
  const c = generateCertificate({ name: 'Sales <outbound>', now: NOW });
  const x = new X509Certificate(c.certificatePem);
  assert.equal(x.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
  assert.ok(x.verify(x.publicKey), 'self-signed');
  assert.ok(x.checkPrivateKey(createPrivateKey(c.privateKeyPem)));
  assert.equal(c.thumbprint, x.fingerprint.replace(/:/g, ''));
  assert.match(c.thumbprint, /^[0-9A-F]{40}$/);
  assert.equal(c.thumbprintSha256, createHash('sha256').update(x.raw).digest('base64url'));
  const days = (Date.parse(c.notAfter) - NOW.getTime()) / 86400_000;
  assert.ok(days > 729 && days <= 731, `valid about two years (${days})`);
  assert.match(c.subject, /CN=Mailroom Sales outbound/);
  assert.match(c.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/);
  assert.deepEqual(certificateDer(c.certificatePem), x.raw);
  assert.notEqual(generateCertificate({ name: 'x', now: NOW }).thumbprint, c.thumbprint);
});

test('a PEM pair and a PFX (modern and legacy encryption) import to the same certificate', () => {
  const c = generateCertificate({ name: 'import', now: NOW });
  const fromPem = importCertificate({ certificatePem: c.certificatePem, privateKeyPem: c.privateKeyPem }, NOW);
  assert.equal(fromPem.thumbprint, c.thumbprint);
  for (const legacy of [false, true]) {
    const fromPfx = importCertificate({ pfxBase64: pfxOf(c.certificatePem, c.privateKeyPem, 'pfx-pass', legacy), pfxPassword: 'pfx-pass' }, NOW);
    assert.equal(fromPfx.thumbprint, c.thumbprint, legacy ? 'legacy' : 'modern');
    assert.equal(fromPfx.thumbprintSha256, c.thumbprintSha256);
  }
});

test('hostile or wrong uploads are refused naming the field', () => {
  const c = generateCertificate({ name: 'a', now: NOW });
  const other = generateCertificate({ name: 'b', now: NOW });
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const cases: [string, Parameters<typeof importCertificate>[0], string, RegExp][] = [
    ['garbage certificate', { certificatePem: '-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----', privateKeyPem: c.privateKeyPem }, 'certificatePem', /not an X\.509/],
    ['garbage key', { certificatePem: c.certificatePem, privateKeyPem: 'hello' }, 'privateKeyPem', /not a private key/],
    ['key of another certificate', { certificatePem: c.certificatePem, privateKeyPem: other.privateKeyPem }, 'privateKeyPem', /does not belong/],
    ['1024-bit key', { certificatePem: c.certificatePem, privateKeyPem: small }, 'privateKeyPem', /1024 bits/],
    ['EC key', { certificatePem: c.certificatePem, privateKeyPem: ec }, 'privateKeyPem', /not RSA/],
    ['huge PEM', { certificatePem: 'A'.repeat(MAX_PEM_CHARS + 1), privateKeyPem: c.privateKeyPem }, 'certificatePem', /at most/],
    ['huge PFX', { pfxBase64: 'A'.repeat(MAX_PFX_BASE64_CHARS + 4) }, 'pfxBase64', /at most/],
    ['PFX not base64', { pfxBase64: '!!!!' }, 'pfxBase64', /base64/],
    ['PFX garbage', { pfxBase64: Buffer.from('not a pfx at all').toString('base64') }, 'pfxBase64', /not a PFX/],
    ['PFX wrong password', { pfxBase64: pfxOf(c.certificatePem, c.privateKeyPem, 'right'), pfxPassword: 'wrong' }, 'pfxPassword', /password is wrong/],
  ];
  for (const [name, input, field, message] of cases) {
    assert.throws(() => importCertificate(input, NOW), (e: any) => e.code === 'MR_VALIDATION' && fieldOf(e) === field && message.test(e.fields[field]), name);
  }
  // Expired: the same certificate, two years and a day later.
  assert.throws(
    () => importCertificate({ certificatePem: c.certificatePem, privateKeyPem: c.privateKeyPem }, new Date(NOW.getTime() + 732 * 86400_000)),
    (e: any) => fieldOf(e) === 'certificatePem' && /expired/.test(e.message),
  );
});

test('the log redacts certificate key material and PFX passwords wherever they appear', async () => {
  const { Writable } = await import('node:stream');
  const { createLogger } = await import('../../src/logger.ts');
  const lines: string[] = [];
  const log = createLogger('info', new Writable({ write(c, _e, cb) { lines.push(String(c)); cb(); } }));
  log.info({ privateKeyPem: 'KEY-1', body: { pfxBase64: 'PFX-2', pfxPassword: 'PW-3', privateKeyPem: 'KEY-4', client_assertion: 'JWT-5' } }, 'x');
  await new Promise((r) => setImmediate(r));
  const out = lines.join('');
  assert.match(out, /"msg":"x"/);
  for (const secret of ['KEY-1', 'PFX-2', 'PW-3', 'KEY-4', 'JWT-5']) assert.ok(!out.includes(secret), secret);
});
