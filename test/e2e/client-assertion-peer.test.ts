import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type * as oauth from 'oauth4webapi';
import { assertionAuth, type AssertionAlg } from '../../src/oauth/client-auth.ts';
import { generateCertificate } from '../../src/oauth/client-certificate.ts';
import { type AuthServer, startAuthServer } from '../peers/auth-server.ts';
import { postToken } from '../peers/get-token.ts';
import { createTestCa, type TestCa } from '../peers/test-ca.ts';

// The Microsoft-shaped server's certificate checks, driven by Mailroom's own assertion signer: each
// accepted assertion reaches the grant (a made-up refresh token: invalid_grant), each refused one is
// Microsoft's invalid_client with its AADSTS code.
const CLIENT_ID = '2b3c4d5e-6f70-4819-a2b3-c4d5e6f70819';
let dir: string;
let ca: TestCa;
let server: AuthServer;
const cert = generateCertificate({ name: 'peer check', now: new Date() });
const key = { privateKeyPem: cert.privateKeyPem, thumbprint: cert.thumbprint, thumbprintSha256: cert.thumbprintSha256 };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailroom-assertion-'));
  ca = await createTestCa(dir);
  server = await startAuthServer({ tls: { cert: ca.cert, key: ca.key }, clients: [{ clientId: CLIENT_ID, clientSecret: 'unused-secret-value', redirectUris: ['http://127.0.0.1:9/cb'] }] });
  server.registerCertificate(CLIENT_ID, cert.certificatePem);
});
after(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const tokenEndpoint = () => `${server.authorityHost}/example.test/oauth2/v2.0/token`;

async function assertionParams(opts: { alg?: AssertionAlg; now?: Date; aud?: string; clientId?: string } = {}) {
  const body = new URLSearchParams();
  const as: oauth.AuthorizationServer = { issuer: 'x', token_endpoint: opts.aud ?? tokenEndpoint() };
  await assertionAuth(key, { alg: opts.alg ?? 'PS256', ...(opts.now && { now: () => opts.now! }) })(as, { client_id: opts.clientId ?? CLIENT_ID }, body, new Headers());
  body.set('client_id', CLIENT_ID);
  return Object.fromEntries(body);
}

const refresh = (params: Record<string, string>) =>
  postToken({ authorityHost: server.authorityHost, ca: ca.caPem, tenant: 'example.test' }, { grant_type: 'refresh_token', refresh_token: 'made-up', scope: 'openid offline_access', ...params });

test('PS256 with x5t#S256 and RS256 with x5t are both accepted, each naming the uploaded certificate', async () => {
  for (const alg of ['PS256', 'RS256'] as const) {
    const before = server.acceptedAssertions().length;
    const r = await refresh(await assertionParams({ alg }));
    assert.equal(r.body.error, 'invalid_grant', JSON.stringify(r.body));
    assert.deepEqual(server.acceptedAssertions().slice(before), [{ clientId: CLIENT_ID, thumbprint: cert.thumbprint, alg }]);
  }
});

test('refusals are Microsoft\'s: unknown certificate, wrong audience, another client id, time window, replayed jti', async () => {
  const other = generateCertificate({ name: 'not uploaded', now: new Date() });
  const body = new URLSearchParams();
  await assertionAuth({ privateKeyPem: other.privateKeyPem, thumbprint: other.thumbprint, thumbprintSha256: other.thumbprintSha256 }, { alg: 'RS256' })({ issuer: 'x', token_endpoint: tokenEndpoint() }, { client_id: CLIENT_ID }, body, new Headers());
  const unknown = await refresh(Object.fromEntries(body));
  assert.equal(unknown.status, 401);
  assert.equal(unknown.body.error, 'invalid_client');
  assert.deepEqual(unknown.body.error_codes, [700027]);
  assert.match(String(unknown.body.error_description), new RegExp(`The key was not found\\., Thumbprint of key used by client: '${other.thumbprint}'`));

  // Signed by the uploaded certificate's name but another key: the signature does not verify.
  const forged = await assertionParams();
  const parts = String(forged.client_assertion).split('.');
  const otherSig = new URLSearchParams();
  await assertionAuth({ privateKeyPem: other.privateKeyPem, thumbprint: cert.thumbprint, thumbprintSha256: cert.thumbprintSha256 })({ issuer: 'x', token_endpoint: tokenEndpoint() }, { client_id: CLIENT_ID }, otherSig, new Headers());
  const badSig = await refresh({ ...forged, client_assertion: `${parts[0]}.${parts[1]}.${String(otherSig.get('client_assertion')).split('.')[2]}` });
  assert.deepEqual(badSig.body.error_codes, [700027]);
  assert.match(String(badSig.body.error_description), /signature value did not match/);

  const aud = await refresh(await assertionParams({ aud: `${server.authorityHost}/common/oauth2/v2.0/token` }));
  assert.deepEqual(aud.body.error_codes, [700023]);
  const iss = await refresh(await assertionParams({ clientId: '00000000-0000-4000-8000-000000000000' }));
  assert.deepEqual(iss.body.error_codes, [700021]);
  const late = await refresh(await assertionParams({ now: new Date(Date.now() - 3600_000) }));
  assert.deepEqual(late.body.error_codes, [700024]);
  assert.match(String(late.body.error_description), /Client assertion is not within its valid time range\. Current time: .*, assertion valid from .*, expiry time of assertion/);

  const once = await assertionParams();
  assert.equal((await refresh(once)).body.error, 'invalid_grant');
  const replayed = await refresh(once);
  assert.equal(replayed.body.error, 'invalid_client', 'a jti is good once');

  // Deleted in Azure: refused again.
  assert.equal(server.removeCertificate(CLIENT_ID, cert.thumbprint), true);
  try {
    assert.deepEqual((await refresh(await assertionParams())).body.error_codes, [700027]);
  } finally {
    server.registerCertificate(CLIENT_ID, cert.certificatePem);
  }
});
