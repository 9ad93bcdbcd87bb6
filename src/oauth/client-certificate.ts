import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes, X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { MailroomError } from '../errors/errors.ts';

/** Azure accepts RSA keys of 2048 bits and more for certificate credentials. */
export const MIN_RSA_BITS = 2048;
export const GENERATED_RSA_BITS = 2048;
/** A generated certificate is valid two years, as long as Azure lets a client secret live. */
export const GENERATED_VALIDITY_DAYS = 730;
/** Bounds of an upload: a real certificate or key PEM is 1–4 KB, a PFX with a chain well under 64 KB. */
export const MAX_PEM_CHARS = 64 * 1024;
export const MAX_PFX_BASE64_CHARS = 256 * 1024;
export const MAX_PFX_PASSWORD_CHARS = 1024;

/** The public facts of a certificate, as the server form and Azure show them. */
export interface CertificateFacts {
  /** SHA-1 of the DER certificate, upper-case hex without separators (Azure's "Thumbprint"). */
  thumbprint: string;
  /** SHA-256 of the DER certificate, base64url (the x5t#S256 header). */
  thumbprintSha256: string;
  subject: string;
  notBefore: string;
  notAfter: string;
}

/** A certificate with its private key (PKCS#8 PEM): what is sealed and stored. */
export interface CertificateWithKey extends CertificateFacts {
  certificatePem: string;
  privateKeyPem: string;
}

export function certificateFacts(x509: X509Certificate): CertificateFacts {
  return {
    thumbprint: createHash('sha1').update(x509.raw).digest('hex').toUpperCase(),
    thumbprintSha256: createHash('sha256').update(x509.raw).digest('base64url'),
    subject: x509.subject.replace(/\n/g, ', '),
    notBefore: new Date(x509.validFrom).toISOString(),
    notAfter: new Date(x509.validTo).toISOString(),
  };
}

/** The DER (.cer) form of a PEM certificate, for the Download certificate button. */
export const certificateDer = (pem: string): Buffer => new X509Certificate(pem).raw;

/** A Common Name from the server's name: printable, at most 64 characters (X.520 ub-common-name). */
function commonName(name: string): string {
  const cleaned = name.replace(/[^\p{L}\p{N} ._@-]/gu, '').trim().slice(0, 54);
  return `Mailroom ${cleaned || 'mail server'}`.trim();
}

/**
 * A new RSA key (from node:crypto) and a self-signed certificate for it (SHA-256, valid two years
 * from now): what the admin uploads in Azure › Certificates & secrets › Certificates.
 */
export function generateCertificate(p: { name: string; now: Date }): CertificateWithKey {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: GENERATED_RSA_BITS, publicExponent: 0x10001 });
  const forgeKey = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }) as string) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e);
  // A positive 128-bit serial (RFC 5280 4.1.2.2: at most 20 octets, unique per issuer).
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  cert.serialNumber = serial.toString('hex');
  // A minute back, so a token endpoint whose clock runs slightly behind already sees it valid.
  cert.validity.notBefore = new Date(p.now.getTime() - 60_000);
  cert.validity.notAfter = new Date(p.now.getTime() + GENERATED_VALIDITY_DAYS * 86400_000);
  const attrs = [{ name: 'commonName', value: commonName(p.name) }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true },
  ]);
  cert.sign(forgeKey, forge.md.sha256.create());
  const certificatePem = forge.pki.certificateToPem(cert);
  return {
    ...certificateFacts(new X509Certificate(certificatePem)),
    certificatePem,
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

const invalid = (field: string, message: string) => new MailroomError('MR_VALIDATION', message, { field, fields: { [field]: message } });

export type CertificateImport = { certificatePem: string; privateKeyPem: string } | { pfxBase64: string; pfxPassword?: string | undefined };

/**
 * Checks an uploaded certificate and key (PEM pair or PFX) and returns them in the stored form.
 * Refused, naming the field: text that is no certificate or key, a wrong PFX password, a key that is
 * not RSA, shorter than 2048 bits or not the certificate's, a certificate already expired.
 */
export function importCertificate(input: CertificateImport, now: Date): CertificateWithKey {
  const { certificatePem, key, certField, keyField } =
    'pfxBase64' in input ? readPfx(input.pfxBase64, input.pfxPassword ?? '') : readPemPair(input.certificatePem, input.privateKeyPem);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(certificatePem);
  } catch {
    throw invalid(certField, 'This is not an X.509 certificate: paste the PEM text starting with -----BEGIN CERTIFICATE-----.');
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw invalid(keyField, `The private key is ${key.asymmetricKeyType ?? 'of an unknown type'}, not RSA: Microsoft's certificate credentials need an RSA key.`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) throw invalid(keyField, `The RSA key has ${bits} bits; at least ${MIN_RSA_BITS} are needed.`);
  if (x509.publicKey.asymmetricKeyType !== 'rsa' || !x509.checkPrivateKey(key)) {
    throw invalid(keyField, 'The private key does not belong to this certificate (its public key differs).');
  }
  const facts = certificateFacts(x509);
  if (Date.parse(facts.notAfter) <= now.getTime()) throw invalid(certField, `This certificate expired on ${facts.notAfter.slice(0, 10)}; make or import a valid one.`);
  return { ...facts, certificatePem: x509.toString(), privateKeyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string };
}

function readPemPair(certificatePem: string, privateKeyPem: string) {
  if (typeof certificatePem !== 'string' || certificatePem.length === 0 || certificatePem.length > MAX_PEM_CHARS) {
    throw invalid('certificatePem', `Paste the certificate as PEM text (at most ${MAX_PEM_CHARS / 1024} KB).`);
  }
  if (typeof privateKeyPem !== 'string' || privateKeyPem.length === 0 || privateKeyPem.length > MAX_PEM_CHARS) {
    throw invalid('privateKeyPem', `Paste the private key as PEM text (at most ${MAX_PEM_CHARS / 1024} KB).`);
  }
  if (/ENCRYPTED PRIVATE KEY|Proc-Type: 4,ENCRYPTED/.test(privateKeyPem)) {
    throw invalid('privateKeyPem', 'The private key is encrypted: import it as a PFX with its password, or paste the key unencrypted.');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: privateKeyPem, format: 'pem' });
  } catch {
    throw invalid('privateKeyPem', 'This is not a private key: paste the PEM text starting with -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----.');
  }
  return { certificatePem, key, certField: 'certificatePem', keyField: 'privateKeyPem' };
}

function readPfx(pfxBase64: string, password: string) {
  if (typeof pfxBase64 !== 'string' || pfxBase64.length === 0 || pfxBase64.length > MAX_PFX_BASE64_CHARS) {
    throw invalid('pfxBase64', `Upload the PFX (.pfx/.p12) file as base64 (at most ${(MAX_PFX_BASE64_CHARS * 3) / 4 / 1024} KB).`);
  }
  if (typeof password !== 'string' || password.length > MAX_PFX_PASSWORD_CHARS) throw invalid('pfxPassword', 'The PFX password is too long.');
  const clean = pfxBase64.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) throw invalid('pfxBase64', 'The PFX is not base64.');
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    const asn1 = forge.asn1.fromDer(forge.util.createBuffer(Buffer.from(clean, 'base64').toString('binary')));
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, false, password);
  } catch (e) {
    const message = String((e as Error)?.message ?? '');
    if (/MAC could not be verified|Invalid password|decrypt/i.test(message)) throw invalid('pfxPassword', 'The PFX password is wrong.');
    throw invalid('pfxBase64', 'This is not a PFX (PKCS#12) file, or one Mailroom cannot read.');
  }
  const keyBags = [
    ...(p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag! })[forge.pki.oids.pkcs8ShroudedKeyBag!] ?? []),
    ...(p12.getBags({ bagType: forge.pki.oids.keyBag! })[forge.pki.oids.keyBag!] ?? []),
  ];
  const certBags = p12.getBags({ bagType: forge.pki.oids.certBag! })[forge.pki.oids.certBag!] ?? [];
  const forgeKey = keyBags.find((b) => b.key)?.key;
  if (!forgeKey) throw invalid('pfxBase64', 'The PFX holds no private key (or an unsupported, non-RSA one): export it with its private key.');
  let key: KeyObject;
  try {
    key = createPrivateKey(forge.pki.privateKeyToPem(forgeKey));
  } catch {
    throw invalid('pfxBase64', 'The private key in the PFX could not be read.');
  }
  // A PFX may carry the chain too: the certificate is the one whose public key is the key's.
  const pems = certBags.flatMap((b) => (b.cert ? [forge.pki.certificateToPem(b.cert)] : []));
  if (pems.length === 0) throw invalid('pfxBase64', 'The PFX holds no certificate.');
  const certificatePem = pems.find((pem) => {
    try {
      return new X509Certificate(pem).checkPrivateKey(key);
    } catch {
      return false;
    }
  }) ?? pems[0]!;
  return { certificatePem, key, certField: 'pfxBase64', keyField: 'pfxBase64' };
}
