import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, verify, constants } from 'node:crypto';
import { test } from 'node:test';
import * as oauth from 'oauth4webapi';
import { ASSERTION_LIFETIME_S, clientAuth, withClientCredential, x5tOf, type AssertionKey, type ClientCredential } from '../../src/oauth/client-auth.ts';
import { MailroomError } from '../../src/errors/errors.ts';

const as: oauth.AuthorizationServer = { issuer: 'https://login.example/{tenantid}/v2.0', token_endpoint: 'https://login.example/contoso.com/oauth2/v2.0/token' };
const client: oauth.Client = { client_id: '1b2c3d4e-0000-1111-2222-333344445555' };

function key(): AssertionKey & { publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
    thumbprint: '0123456789ABCDEF0123456789ABCDEF01234567',
    thumbprintSha256: 'q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k',
  };
}

async function assertionOf(auth: oauth.ClientAuth) {
  const body = new URLSearchParams();
  await auth(as, client, body, new Headers());
  const jwt = body.get('client_assertion')!;
  const [h, p, s] = jwt.split('.') as [string, string, string];
  return { body, jwt, header: JSON.parse(Buffer.from(h, 'base64url').toString()), payload: JSON.parse(Buffer.from(p, 'base64url').toString()), input: `${h}.${p}`, sig: Buffer.from(s, 'base64url') };
}

test('a certificate credential signs a PS256 client assertion for the token endpoint, named by x5t#S256', async () => {
  const k = key();
  const now = new Date('2026-03-01T10:00:00Z');
  const a = await assertionOf(clientAuth({ kind: 'certificate', current: k }, { now: () => now }));
  assert.equal(a.body.get('client_assertion_type'), 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
  assert.equal(a.body.get('client_id'), client.client_id);
  assert.equal(a.body.get('client_secret'), null);
  assert.equal(a.header.alg, 'PS256');
  assert.equal(a.header['x5t#S256'], k.thumbprintSha256);
  assert.equal(a.header.x5t, undefined);
  assert.equal(a.payload.aud, as.token_endpoint);
  assert.equal(a.payload.iss, client.client_id);
  assert.equal(a.payload.sub, client.client_id);
  assert.equal(a.payload.iat, now.getTime() / 1000);
  assert.equal(a.payload.nbf, now.getTime() / 1000);
  assert.equal(a.payload.exp - a.payload.iat, ASSERTION_LIFETIME_S);
  assert.ok(ASSERTION_LIFETIME_S <= 600);
  const ok = verify('sha256', Buffer.from(a.input), { key: createPublicKey(k.publicKeyPem), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, a.sig);
  assert.ok(ok, 'the PS256 signature verifies with the certificate public key');
  const other = await assertionOf(clientAuth({ kind: 'certificate', current: k }));
  assert.notEqual(other.payload.jti, a.payload.jti, 'every assertion has its own jti');
});

test('RS256 names the key by x5t, the SHA-1 thumbprint as base64url bytes', async () => {
  const k = key();
  const a = await assertionOf(clientAuth({ kind: 'certificate', current: k, alg: 'RS256' }));
  assert.equal(a.header.alg, 'RS256');
  assert.equal(a.header.x5t, Buffer.from(k.thumbprint, 'hex').toString('base64url'));
  assert.equal(a.header.x5t, x5tOf(k.thumbprint));
  assert.equal(a.header['x5t#S256'], undefined);
  assert.ok(verify('sha256', Buffer.from(a.input), createPublicKey(k.publicKeyPem), a.sig));
});

test('a secret credential posts client_secret and no assertion', async () => {
  const body = new URLSearchParams();
  await clientAuth({ kind: 'secret', secret: 's3cret' })(as, client, body, new Headers());
  assert.equal(body.get('client_secret'), 's3cret');
  assert.equal(body.get('client_assertion'), null);
});

test('the pending certificate is tried first; refused, the current one answers and nothing is proven', async () => {
  const current = key();
  const pending = key();
  pending.thumbprintSha256 = 'pending-sha256';
  const cred: ClientCredential = { kind: 'certificate', current, pending };
  const seen: string[] = [];
  const refusing = async (auth: oauth.ClientAuth) => {
    const a = await assertionOf(auth);
    seen.push(a.header['x5t#S256']);
    if (a.header['x5t#S256'] === 'pending-sha256') throw new MailroomError('MR_OAUTH_PROVIDER_ERROR', 'AADSTS700027');
    return 'token';
  };
  const out = await withClientCredential(cred, refusing);
  assert.deepEqual(seen, ['pending-sha256', current.thumbprintSha256]);
  assert.equal(out.value, 'token');
  assert.equal(out.proven, null);
  assert.ok(out.pendingFailed instanceof MailroomError);

  const accepting = await withClientCredential(cred, async () => 'token');
  assert.equal(accepting.proven?.thumbprintSha256, 'pending-sha256');

  // An endpoint that does not answer is not asked twice.
  let calls = 0;
  await assert.rejects(
    withClientCredential(cred, async () => {
      calls++;
      throw new MailroomError('MR_OAUTH_UNREACHABLE', 'timeout');
    }),
    (e: any) => e.code === 'MR_OAUTH_UNREACHABLE',
  );
  assert.equal(calls, 1);
});
