import assert from 'node:assert/strict';
import { test } from 'node:test';
import { diagnose } from '../../src/diagnose/diagnose.ts';
import { aadstsCodes, enhancedStatusOf } from '../../src/diagnose/evidence.ts';
import { oauthEvidence } from '../../src/oauth/outlook.ts';

// Shape of a real token endpoint error from the Microsoft identity platform.
const msError = (code: number, error: string, text: string) => ({
  error,
  error_description: `AADSTS${code}: ${text}\r\nTrace ID: 0b3e1a2c-1111-4d5e-8f90-123456789abc\r\nCorrelation ID: 7c6d5e4f-2222-4a3b-9c8d-abcdef012345\r\nTimestamp: 2026-11-28 10:00:00Z`,
  error_codes: [code],
  timestamp: '2026-11-28 10:00:00Z',
  trace_id: '0b3e1a2c-1111-4d5e-8f90-123456789abc',
  correlation_id: '7c6d5e4f-2222-4a3b-9c8d-abcdef012345',
  error_uri: `https://login.microsoftonline.com/error?code=${code}`,
});

test('Microsoft error JSON keeps error, AADSTS code, trace and correlation ids', () => {
  const ev = oauthEvidence('token', msError(7000215, 'invalid_client', 'Invalid client secret provided.'), 401);
  assert.equal(ev.error, 'invalid_client');
  assert.deepEqual(ev.errorCodes, [7000215]);
  assert.equal(ev.traceId, '0b3e1a2c-1111-4d5e-8f90-123456789abc');
  assert.equal(ev.correlationId, '7c6d5e4f-2222-4a3b-9c8d-abcdef012345');
  assert.equal(ev.httpStatus, 401);
});

test('AADSTS codes are read from the description when error_codes is missing (authorize redirect)', () => {
  assert.deepEqual(aadstsCodes(undefined, 'AADSTS50011: The redirect URI ... does not match'), [50011]);
  assert.deepEqual(aadstsCodes([], 'no code here'), []);
});

const cases: Array<[number, string, RegExp, number]> = [
  [7000215, 'invalid_client', /Secret ID/, 3],
  [7000222, 'invalid_client', /expired/, 3],
  [50011, 'invalid_request', /redirect URL/, 1],
  [50194, 'invalid_request', /single-tenant/, 4],
  [700016, 'unauthorized_client', /Client ID/, 4],
  [65001, 'invalid_grant', /consented/, 5],
  [50173, 'invalid_grant', /revoked/, 5],
  [700082, 'invalid_grant', /90 days/, 5],
  [70008, 'invalid_grant', /expired or was already used/, 5],
];
for (const [code, error, cause, step] of cases) {
  test(`AADSTS${code} is explained with its cause and guide step`, () => {
    const d = diagnose(oauthEvidence('token', msError(code, error, 'text')));
    assert.equal(d.code, `AADSTS${code}`);
    assert.match(d.cause, cause);
    assert.equal(d.guideStep, step);
    assert.ok(d.fix.length > 20);
  });
}

test('an unknown AADSTS code falls back to the OAuth error, then to a generic entry', () => {
  assert.equal(diagnose(oauthEvidence('token', msError(1, 'invalid_client', 'x'))).code, 'OAUTH_invalid_client');
  assert.equal(diagnose(oauthEvidence('token', { error: 'weird_error' })).code, 'OAUTH_UNKNOWN');
});

test('SMTP 535 5.7.139 (SMTP AUTH disabled) names Set-CASMailbox', () => {
  const response = '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.';
  const d = diagnose({ kind: 'smtp', code: 'EAUTH', responseCode: 535, response, enhancedStatus: enhancedStatusOf(response)! });
  assert.equal(d.code, 'SMTP_535_5.7.139');
  assert.match(d.fix, /Set-CASMailbox/);
});

test('a plain 535 and a 4xx are told apart', () => {
  assert.equal(diagnose({ kind: 'smtp', responseCode: 535, response: '535 5.7.8 Authentication failed.' }).code, 'SMTP_535');
  assert.equal(diagnose({ kind: 'smtp', responseCode: 451, response: '451 4.3.0 try later' }).guideStep, 7);
});

test('network and certificate errors point at the host, port and CA', () => {
  assert.equal(diagnose({ kind: 'network', code: 'ECONNREFUSED', message: 'x' }).code, 'NET_ECONNREFUSED');
  const cert = diagnose({ kind: 'network', code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', message: 'x' });
  assert.equal(cert.code, 'NET_CERT');
  assert.match(cert.fix, /NODE_EXTRA_CA_CERTS/);
});

test('the connected account differing from Username is named with both addresses', () => {
  const d = diagnose({ kind: 'account', expected: 'sales@contoso.com', actual: 'bob@contoso.com' });
  assert.match(d.cause, /bob@contoso\.com.*sales@contoso\.com/);
});
