import assert from 'node:assert/strict';
import { test } from 'node:test';
import { diagnose } from '../../src/diagnose/diagnose.ts';
import { imapErrorFrom, isTooLarge } from '../../src/imap/imap-session.ts';

const TARGET = { host: 'imap.example.com', port: 993, security: 'tls' as const };
const from = (message: string, fields: Record<string, unknown>) => imapErrorFrom(Object.assign(new Error(message), fields), TARGET);

test('a literal refused for its size is IMAP_TOO_LARGE with the announced size, never a network error', () => {
  const e = from('Literal size 419430400 exceeds maximum allowed size of 52494336 bytes', { code: 'LiteralTooLarge', literalSize: 419430400, maxSize: 52494336 });
  assert.ok(isTooLarge(e));
  assert.equal(e.literalSize, 419430400);
  assert.equal(diagnose(e.evidence).code, 'IMAP_TOO_LARGE');
  assert.match(e.message, /imap\.example\.com sent an answer past Mailroom's limits/);
});

test("imapflow's socket timeout (ETIMEOUT) is IMAP_TIMEOUT, not NET_ERROR about host and port", () => {
  assert.equal(diagnose(from('Socket timeout', { code: 'ETIMEOUT' }).evidence).code, 'IMAP_TIMEOUT');
});

test("a parser's own E-code (mailparser EMAXLEN) is not taken for a socket error", () => {
  const e = from('Max header size for a MIME node exceeded', { code: 'EMAXLEN' });
  assert.equal(e.evidence.kind, 'imap');
  assert.notEqual(diagnose(e.evidence).code, 'NET_ERROR');
});

test('an answer imapflow cannot parse is IMAP_MALFORMED; a refused connection stays a network error', () => {
  assert.equal(diagnose(from('Unexpected char', { code: 'ParserError3' }).evidence).code, 'IMAP_MALFORMED');
  assert.equal(diagnose(from('connect ECONNREFUSED 127.0.0.1:993', { code: 'ECONNREFUSED' }).evidence).code, 'NET_ECONNREFUSED');
});
