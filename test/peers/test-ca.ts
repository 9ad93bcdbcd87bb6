import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestCa {
  caPem: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** Server certificate (PEM) for localhost / 127.0.0.1, signed by the CA. */
  cert: string;
  key: string;
  /**
   * base64 SHA-256 of the server certificate's public key, for Chromium's
   * `--ignore-certificate-errors-spki-list`: trusts exactly this key rather than ignoring certificate errors.
   */
  serverSpkiSha256: string;
}

/**
 * Creates a throw-away CA and a server certificate for `localhost` and `127.0.0.1` in `dir`.
 * Clients trust `caFile` explicitly; nothing in the tests disables certificate verification.
 */
export async function createTestCa(dir: string): Promise<TestCa> {
  const caKey = join(dir, 'ca.key');
  const caFile = join(dir, 'ca.pem');
  const keyFile = join(dir, 'server.key');
  const csrFile = join(dir, 'server.csr');
  const certFile = join(dir, 'server.pem');
  const extFile = join(dir, 'server.ext');

  await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=Mailroom Test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout', caKey, '-out', caFile,
  ]);
  await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', keyFile, '-out', csrFile]);
  await writeFile(extFile, [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '',
  ].join('\n'));
  await run('openssl', [
    'x509', '-req', '-in', csrFile, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial',
    '-days', '2', '-sha256', '-extfile', extFile, '-out', certFile,
  ]);

  const [caPem, cert, key] = await Promise.all([readFile(caFile, 'utf8'), readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
  const spki = new X509Certificate(cert).publicKey.export({ type: 'spki', format: 'der' });
  const serverSpkiSha256 = createHash('sha256').update(spki).digest('base64');
  return { caPem, caFile, certFile, keyFile, cert, key, serverSpkiSha256 };
}
