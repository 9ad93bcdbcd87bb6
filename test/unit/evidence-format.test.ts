import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatEvidence } from '../../web/src/evidence-details.tsx';
import { exactUtc, relativeTime } from '../../web/src/time-text.tsx';

test('an SMTP reply inside evidence reads with real line breaks, never a literal \\r\\n', () => {
  const text = formatEvidence({ kind: 'smtp', responseCode: 535, response: '535-5.7.3 Authentication unsuccessful\r\n535 5.7.3 Try again' });
  assert.doesNotMatch(text, /\\r|\\n|\r/);
  assert.equal(text, 'kind: smtp\nresponseCode: 535\nresponse: 535-5.7.3 Authentication unsuccessful\n  535 5.7.3 Try again');
});

test('a string already escaped by a JSON layer is unescaped; nested objects are indented', () => {
  assert.equal(formatEvidence('A1 NO [AUTHENTICATIONFAILED]\\r\\nA2 BYE'), 'A1 NO [AUTHENTICATIONFAILED]\nA2 BYE');
  assert.equal(formatEvidence({ token: { error: 'invalid_grant', codes: [70000] } }), 'token:\n  error: invalid_grant\n  codes:\n    70000');
});

test('times: the exact UTC for the tooltip, relative words both ways', () => {
  assert.equal(exactUtc('2026-11-28T04:18:05.123Z'), '2026-11-28 04:18:05 UTC');
  const now = Date.parse('2026-11-28T12:00:00Z');
  assert.equal(relativeTime('2026-11-28T11:59:50Z', now), 'just now');
  assert.match(relativeTime('2026-11-28T09:00:00Z', now), /3 hours ago/);
  assert.match(relativeTime('2026-11-28T12:05:00Z', now), /in 5 minutes/);
});
