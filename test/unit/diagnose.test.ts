import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CATALOGUE, diagnose, isTemporary } from '../../src/diagnose/diagnose.ts';
import { aadstsCodes, enhancedStatusOf, looksLikeGuid } from '../../src/diagnose/evidence.ts';
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

test('the enhanced status is read from Exchange and Dovecot replies', () => {
  assert.equal(enhancedStatusOf('535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. [SN4PR0501CA0054.namprd05.prod.outlook.com]'), '5.7.139');
  assert.equal(enhancedStatusOf('432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded'), '4.3.2');
  assert.equal(enhancedStatusOf('535 5.7.8 Authentication failed.'), '5.7.8');
  assert.equal(enhancedStatusOf('535 Authentication credentials invalid'), undefined);
});

test('the first AADSTS code Mailroom knows wins; an unknown one falls back to the OAuth error, then to a generic entry', () => {
  assert.equal(diagnose(oauthEvidence('token', { ...msError(50011, 'invalid_request', 'x'), error_codes: [1, 50011, 50194] })).code, 'AADSTS50011');
  assert.equal(diagnose(oauthEvidence('token', msError(1, 'invalid_client', 'x'))).code, 'OAUTH_invalid_client');
  const unknown = diagnose(oauthEvidence('token', { error: 'weird_error' }));
  assert.equal(unknown.code, 'OAUTH_UNKNOWN');
  assert.match(unknown.cause, /"weird_error"/);
});

test('a GUID-shaped client secret turns AADSTS7000215 into the Secret ID diagnosis, and only that code', () => {
  assert.equal(looksLikeGuid('3f2a9c4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b'), true);
  assert.equal(looksLikeGuid(' 3F2A9C4E-5B6D-4E7F-8A9B-0C1D2E3F4A5B '), true);
  assert.equal(looksLikeGuid('kX38Q~abcdefghijklmnopqrstuvwxyz0123456789'), false);
  const ev = { ...oauthEvidence('token', msError(7000215, 'invalid_client', 'Invalid client secret provided.')), secretLooksLikeGuid: true };
  assert.equal(diagnose(ev).code, 'AADSTS7000215_SECRET_ID');
  assert.equal(diagnose({ ...ev, secretLooksLikeGuid: false }).code, 'AADSTS7000215');
  assert.equal(diagnose({ ...oauthEvidence('token', msError(7000222, 'invalid_client', 'expired')), secretLooksLikeGuid: true }).code, 'AADSTS7000222');
});

test('SMTP evidence built by hand is read like parsed evidence (status and reply code from the reply text)', () => {
  assert.equal(diagnose({ kind: 'smtp', response: '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.' }).code, 'SMTP_535_5.7.139_TENANT');
  assert.equal(diagnose({ kind: 'smtp', response: '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded' }).code, 'SMTP_432_4.3.2');
  assert.equal(diagnose({ kind: 'smtp', responseCode: 535, response: '535 5.7.8 Authentication failed.' }).code, 'SMTP_535');
  // A temporary reply to AUTH stays temporary although nodemailer calls it EAUTH.
  assert.equal(diagnose({ kind: 'smtp', code: 'EAUTH', responseCode: 454, response: '454 4.7.0 Temporary authentication failure' }).temporary, true);
});

test('isTemporary reads a Diagnosis as well as Evidence', () => {
  const d = diagnose({ kind: 'network', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:587' });
  assert.equal(isTemporary(d), true);
  assert.equal(isTemporary({ ...d, temporary: false }), false);
  assert.equal(isTemporary({ kind: 'smtp', responseCode: 550, response: '550 5.7.60 SMTP; Client does not have permissions to send as this sender' }), false);
});

test('catalogue entries are complete and their codes name their area', () => {
  const prefix = { oauth: /^(AADSTS\d+|OAUTH_|GMAIL_)/, smtp: /^SMTP_/, imap: /^IMAP_/, network: /^NET_/, account: /^ACCOUNT_/, graph: /^GRAPH_/ };
  for (const [code, e] of Object.entries(CATALOGUE)) {
    assert.match(code, prefix[e.area], code);
    for (const text of [e.title, e.symptom, e.cause, e.fix]) assert.ok(text.trim().length > 0 && !/undefined|\$\{/.test(text), code);
    assert.ok([1, 2, 3, 4, 5, 6, 7].includes(e.guideStep), code);
    assert.equal(typeof e.temporary, 'boolean', code);
    assert.notEqual(e.cause, e.fix, code);
  }
});
