import assert from 'node:assert/strict';
import { test } from 'node:test';
import { authXoauth2TwoStep, SmtpStepError, xoauth2String } from '../../src/smtp/xoauth2.ts';

test('the XOAUTH2 string follows Microsoft\'s format', () => {
  const s = xoauth2String('sales@contoso.com', 'EwBgA8l6BAAU');
  assert.equal(Buffer.from(s, 'base64').toString(), 'user=sales@contoso.com\x01auth=Bearer EwBgA8l6BAAU\x01\x01');
});

test('AUTH is sent in two steps, the token never on the AUTH line', async () => {
  const sent: string[] = [];
  const replies = [{ status: 334, response: '334 ' }, { status: 235, response: '235 2.7.0 Authentication successful' }];
  const token = 'x'.repeat(2500);
  const r = await authXoauth2TwoStep(async (c) => (sent.push(c), replies.shift()!), 'a@b.c', token);
  assert.equal(r.status, 235);
  assert.equal(sent[0], 'AUTH XOAUTH2');
  assert.equal(sent[1], xoauth2String('a@b.c', token));
});

test('a rejected token answers the 334 error challenge and keeps the server\'s JSON', async () => {
  const sent: string[] = [];
  const challenge = Buffer.from('{"status":"401","schemes":"bearer","scope":"mail"}').toString('base64');
  const replies = [
    { status: 334, response: '334 ' },
    { status: 334, response: `334 ${challenge}` },
    { status: 535, response: '535 5.7.8 Authentication failed.' },
  ];
  await assert.rejects(
    authXoauth2TwoStep(async (c) => (sent.push(c), replies.shift()!), 'a@b.c', 't'),
    (e) => e instanceof SmtpStepError && e.reply.status === 535 && /"status":"401"/.test(e.reply.response),
  );
  assert.equal(sent[2], '', 'an empty line ends the SASL exchange');
});

test('a server without XOAUTH2 is reported with its reply', async () => {
  await assert.rejects(
    authXoauth2TwoStep(async () => ({ status: 504, response: '504 5.5.4 Unrecognized authentication type' }), 'a@b.c', 't'),
    (e) => e instanceof SmtpStepError && e.command === 'AUTH XOAUTH2' && e.reply.status === 504,
  );
});
