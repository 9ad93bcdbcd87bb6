// Microsoft's certificate credentials, as the Microsoft-shaped authorization server checks them: a client
// authenticates with an RFC 7523 client assertion signed by the private key of a certificate the admin
// uploaded for the app (Azure › Certificates & secrets › Certificates), named by its thumbprint header.
//
// Checked: the JWT's form, the certificate chosen by `x5t#S256` (SHA-256 of the DER, base64url) or `x5t`
// (SHA-1, base64url) among the app's registered ones, the signature (PS256 or RS256), the certificate's own
// validity, `aud` = this token endpoint, `iss` = `sub` = client_id, `nbf`/`exp` against the server's clock
// (which tests may move), and `jti` single use. Refusals are Microsoft's `invalid_client` answers.
import { constants, createHash, verify, X509Certificate } from 'node:crypto';

export interface RegisteredCertificate {
  x509: X509Certificate;
  /** SHA-1 thumbprint, upper-case hex, as Azure lists it. */
  thumbprint: string;
  sha1: string;
  sha256: string;
}

export interface AssertionRefusal {
  status: number;
  error: string;
  code: number;
  text: string;
}

export interface AssertionAccepted {
  ok: true;
  /** The certificate that authenticated the request. */
  thumbprint: string;
  alg: string;
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
}

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export function registeredCertificate(pemOrDer: string | Buffer): RegisteredCertificate {
  const x509 = new X509Certificate(pemOrDer);
  return {
    x509,
    thumbprint: createHash('sha1').update(x509.raw).digest('hex').toUpperCase(),
    sha1: createHash('sha1').update(x509.raw).digest('base64url'),
    sha256: createHash('sha256').update(x509.raw).digest('base64url'),
  };
}

const iso7 = (seconds: number) => new Date(seconds * 1000).toISOString().replace(/\.\d+Z$/, '.0000000Z');

function keyNotFound(clientId: string, thumbprint: string, reason = 'The key was not found.'): AssertionRefusal {
  return {
    status: 401,
    error: 'invalid_client',
    code: 700027,
    text: `Client assertion contains an invalid signature. [Reason - ${reason}, Thumbprint of key used by client: '${thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${clientId}'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments to determine the corresponding service endpoint and https://docs.microsoft.com/en-us/graph/api/application-get?view=graph-rest-1.0&tabs=http to build a query request URL, such as 'https://graph.microsoft.com/beta/applications/${clientId}']`,
  };
}

function decodePart(part: string | undefined): Record<string, unknown> | undefined {
  if (!part) return undefined;
  try {
    const v = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export class ClientAssertionVerifier {
  /** Registered certificates per client id. */
  readonly certificates = new Map<string, RegisteredCertificate[]>();
  /** jti values seen, until their assertion expires. */
  private readonly seen = new Map<string, number>();
  /** Every accepted assertion, in order (which certificate and algorithm authenticated each request). */
  readonly accepted: Array<{ clientId: string; thumbprint: string; alg: string }> = [];
  /** Seconds added to the real clock (tests move it to reach AADSTS700024). */
  clockOffsetSeconds = 0;

  register(clientId: string, cert: string | Buffer): RegisteredCertificate {
    const c = registeredCertificate(cert);
    const list = (this.certificates.get(clientId) ?? []).filter((x) => x.thumbprint !== c.thumbprint);
    this.certificates.set(clientId, [...list, c]);
    return c;
  }

  remove(clientId: string, thumbprint: string): boolean {
    const list = this.certificates.get(clientId) ?? [];
    const rest = list.filter((x) => x.thumbprint !== thumbprint.toUpperCase());
    this.certificates.set(clientId, rest);
    return rest.length !== list.length;
  }

  thumbprints(clientId: string): string[] {
    return (this.certificates.get(clientId) ?? []).map((c) => c.thumbprint);
  }

  /** Checks a token request's client assertion for `clientId` at `tokenEndpoint` (the URL the client posted to). */
  verify(params: Record<string, unknown>, tokenEndpoint: string): AssertionAccepted | AssertionRefusal {
    const clientId = typeof params.client_id === 'string' ? params.client_id : '';
    const jwt = typeof params.client_assertion === 'string' ? params.client_assertion : '';
    if (params.client_assertion_type !== CLIENT_ASSERTION_TYPE) {
      return { status: 400, error: 'invalid_request', code: 7000216, text: "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type." };
    }
    const [h, p, s, extra] = jwt.split('.');
    const header = decodePart(h);
    const payload = decodePart(p);
    if (!header || !payload || !s || extra !== undefined) return { status: 401, error: 'invalid_client', code: 50027, text: 'JWT token is invalid or malformed.' };
    const alg = String(header.alg ?? '');
    const list = this.certificates.get(clientId) ?? [];
    const bySha256 = typeof header['x5t#S256'] === 'string' ? list.find((c) => c.sha256 === header['x5t#S256']) : undefined;
    const bySha1 = typeof header.x5t === 'string' ? list.find((c) => c.sha1 === header.x5t) : undefined;
    const cert = bySha256 ?? bySha1;
    const named = typeof header.x5t === 'string' ? Buffer.from(header.x5t, 'base64url').toString('hex').toUpperCase() : typeof header['x5t#S256'] === 'string' ? Buffer.from(header['x5t#S256'], 'base64url').toString('hex').toUpperCase() : '';
    if (!cert) return keyNotFound(clientId, named);
    const now = Math.floor(Date.now() / 1000) + this.clockOffsetSeconds;
    if (Date.parse(cert.x509.validTo) / 1000 <= now) return keyNotFound(clientId, cert.thumbprint, 'The key used is expired.');
    const input = Buffer.from(`${h}.${p}`);
    const signature = Buffer.from(s, 'base64url');
    const good =
      alg === 'PS256'
        ? verify('sha256', input, { key: cert.x509.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, signature)
        : alg === 'RS256'
          ? verify('sha256', input, cert.x509.publicKey, signature)
          : false;
    if (!good) return keyNotFound(clientId, cert.thumbprint, 'The provided signature value did not match the expected signature value.');
    if (payload.aud !== tokenEndpoint) {
      return { status: 401, error: 'invalid_client', code: 700023, text: `Client assertion audience claim does not match Realm issuer. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .` };
    }
    if (payload.iss !== clientId || payload.sub !== clientId) {
      return { status: 401, error: 'invalid_client', code: 700021, text: `Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .` };
    }
    const nbf = typeof payload.nbf === 'number' ? payload.nbf : 0;
    const exp = typeof payload.exp === 'number' ? payload.exp : 0;
    if (now < nbf || now >= exp) {
      return {
        status: 401,
        error: 'invalid_client',
        code: 700024,
        text: `Client assertion is not within its valid time range. Current time: ${iso7(now)}, assertion valid from ${iso7(nbf)}, expiry time of assertion ${iso7(exp)}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .`,
      };
    }
    const jti = typeof payload.jti === 'string' ? payload.jti : '';
    for (const [k, until] of this.seen) if (until <= now) this.seen.delete(k);
    if (!jti || this.seen.has(`${clientId}:${jti}`)) {
      return { status: 401, error: 'invalid_client', code: 9002313, text: 'Invalid request. Request is malformed or invalid. (the client assertion\'s jti was already used, or it has none)' };
    }
    this.seen.set(`${clientId}:${jti}`, exp);
    this.accepted.push({ clientId, thumbprint: cert.thumbprint, alg });
    return { ok: true, thumbprint: cert.thumbprint, alg, header, payload };
  }
}
