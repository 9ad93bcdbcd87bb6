import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import { isMailroomError } from '../errors/errors.ts';

/**
 * How Mailroom proves to the token endpoint that it is the registered app (the form's Client
 * Credential): the client secret, or a certificate whose private key signs a client assertion
 * (RFC 7523 `private_key_jwt`; Microsoft's "certificate credentials").
 */
export type ClientCredential =
  | { kind: 'secret'; secret: string }
  | {
      kind: 'certificate';
      /** The certificate token requests use. */
      current: AssertionKey;
      /** A rolled certificate not yet proven by a token request (the admin may not have uploaded it yet). */
      pending?: AssertionKey | null;
      /** The signature and thumbprint header; PS256 unless configured otherwise. */
      alg?: AssertionAlg;
    };

/** A certificate's private key, opened for one request, with the thumbprints that name it. */
export interface AssertionKey {
  /** PKCS#8 PEM of the RSA private key (opened from its sealed form only for the request). */
  privateKeyPem: string;
  /** SHA-1 of the DER certificate, upper-case hex, as Azure lists it. */
  thumbprint: string;
  /** SHA-256 of the DER certificate, base64url: the `x5t#S256` header. */
  thumbprintSha256: string;
}

/**
 * PS256 with `x5t#S256` (the default; RSA-PSS over SHA-256 names the key by its SHA-256 thumbprint),
 * or RS256 with `x5t` (the SHA-1 thumbprint, base64url): the older form every Entra ID sample shows.
 */
export type AssertionAlg = 'PS256' | 'RS256';
export const ASSERTION_ALGS: readonly AssertionAlg[] = ['PS256', 'RS256'];

/**
 * Microsoft accepts assertions valid up to 10 minutes; a short one limits what a leaked assertion is
 * worth, while nbf = iat = now leaves room for a clock running a little behind the token endpoint's.
 */
export const ASSERTION_LIFETIME_S = 5 * 60;

export interface ClientAuthOptions {
  alg?: AssertionAlg;
  /** The clock for iat/nbf/exp (tests move it to reach AADSTS700024). */
  now?: () => Date;
}

const SUBTLE_ALG = {
  PS256: { name: 'RSA-PSS', hash: 'SHA-256' },
  RS256: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
} as const;

async function signingKey(pem: string, alg: AssertionAlg): Promise<webcrypto.CryptoKey> {
  // Generated and imported keys are stored as PKCS#8 rsaEncryption; WebCrypto takes those for both algorithms.
  const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, SUBTLE_ALG[alg], false, ['sign']);
}

/** The SHA-1 thumbprint as the `x5t` header wants it: base64url of the 20 bytes, not the hex text. */
export const x5tOf = (thumbprintHex: string) => Buffer.from(thumbprintHex, 'hex').toString('base64url');

/**
 * The ClientAuth for one token request with this key: `client_assertion` signed with `alg`, whose
 * `aud` is the token endpoint (Microsoft's rule; oauth4webapi would put the issuer there),
 * `iss` = `sub` = the client id, a unique `jti`, and the key named by its thumbprint header.
 */
export function assertionAuth(key: AssertionKey, opts: ClientAuthOptions = {}): oauth.ClientAuth {
  const alg = opts.alg ?? 'PS256';
  return async (as, client, body, headers) => {
    const now = Math.floor((opts.now?.() ?? new Date()).getTime() / 1000);
    // oauth4webapi takes the global CryptoKey, which node:crypto's webcrypto key is at run time.
    const auth = oauth.PrivateKeyJwt((await signingKey(key.privateKeyPem, alg)) as unknown as Parameters<typeof oauth.PrivateKeyJwt>[0], {
      [oauth.modifyAssertion]: (header, payload) => {
        delete header.kid;
        header.typ = 'JWT';
        if (alg === 'PS256') header['x5t#S256'] = key.thumbprintSha256;
        else header.x5t = x5tOf(key.thumbprint);
        payload.aud = as.token_endpoint ?? as.issuer;
        payload.iss = client.client_id;
        payload.sub = client.client_id;
        payload.jti = randomBytes(16).toString('base64url');
        payload.iat = now;
        payload.nbf = now;
        payload.exp = now + ASSERTION_LIFETIME_S;
      },
    });
    await auth(as, client, body, headers);
  };
}

const withAlg = (c: ClientCredential & { kind: 'certificate' }, opts: ClientAuthOptions): ClientAuthOptions => ({ ...opts, alg: opts.alg ?? c.alg ?? 'PS256' });

/** The ClientAuth of a credential: the secret in the body (client_secret_post), or the current certificate's assertion. */
export function clientAuth(credential: ClientCredential, opts: ClientAuthOptions = {}): oauth.ClientAuth {
  return credential.kind === 'secret' ? oauth.ClientSecretPost(credential.secret) : assertionAuth(credential.current, withAlg(credential, opts));
}

/** What a token request with a credential came to: the value, and the pending certificate if it was the one that worked. */
export interface CredentialOutcome<T> {
  value: T;
  /** Set when the pending certificate authenticated this request: it has been proven and may become current. */
  proven: AssertionKey | null;
  /** The pending certificate was tried and refused; the current one answered instead (the reason, for the admin). */
  pendingFailed?: unknown;
}

/**
 * Runs a token request that may be repeated without harm if the client authentication fails (a
 * refresh or a client-credentials request: the grant is checked after the client): with the pending
 * certificate first, if there is one, and on any failure but an unreachable token endpoint again with
 * the current one, so a certificate not yet uploaded never fails a send. The code redemption is not
 * repeatable (a code is single use) and uses `clientAuth` with the current credential.
 */
export async function withClientCredential<T>(
  credential: ClientCredential,
  request: (auth: oauth.ClientAuth) => Promise<T>,
  opts: ClientAuthOptions = {},
): Promise<CredentialOutcome<T>> {
  if (credential.kind === 'certificate' && credential.pending) {
    try {
      return { value: await request(assertionAuth(credential.pending, withAlg(credential, opts))), proven: credential.pending };
    } catch (e) {
      // The endpoint did not answer: asking again at once with the other key would only wait twice.
      if (isMailroomError(e, 'MR_OAUTH_UNREACHABLE')) throw e;
      return { value: await request(clientAuth(credential, opts)), proven: null, pendingFailed: e };
    }
  }
  return { value: await request(clientAuth(credential, opts)), proven: null };
}

/** The secret of a secret credential (what a provider without certificates sends), else undefined. */
export const secretOf = (credential: ClientCredential): string | undefined => (credential.kind === 'secret' ? credential.secret : undefined);
