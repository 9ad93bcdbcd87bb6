import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffMs, decide, QUOTA_RECHECK_MS } from '../../src/outbox/retry-policy.ts';

const policy = { maxAttempts: 5, maxAgeMs: 24 * 3600_000, retryBaseMs: 30_000 };
const smtp = (responseCode: number, response: string) => ({ kind: 'delivery' as const, evidence: { kind: 'smtp' as const, code: 'EENVELOPE', responseCode, response } });
const half = () => 0;
const full = () => 1;

test('backoff doubles per attempt with 50–100 % jitter and is capped at an hour', () => {
  assert.equal(backoffMs(1, policy, full), 30_000);
  assert.equal(backoffMs(2, policy, full), 60_000);
  assert.equal(backoffMs(3, policy, half), 60_000);
  assert.equal(backoffMs(20, policy, full), 3600_000);
  for (let i = 0; i < 100; i++) {
    const d = backoffMs(4, policy);
    assert.ok(d >= 120_000 && d <= 240_000);
  }
});

test('network errors, SMTP 4xx and Microsoft throttling are retried', () => {
  assert.equal(decide({ kind: 'delivery', evidence: { kind: 'network', code: 'ECONNREFUSED', message: '' } }, 1, 0, policy).action, 'retry');
  assert.equal(decide(smtp(451, '451 4.3.0 try later'), 1, 0, policy).action, 'retry');
  assert.equal(decide(smtp(432, '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded'), 1, 0, policy).action, 'retry');
  assert.equal(decide({ kind: 'token_unavailable' }, 1, 0, policy).action, 'retry');
});

test('an SMTP 5xx fails at once', () => {
  assert.deepEqual(decide(smtp(550, '550 5.1.1 no such user'), 1, 0, policy), { action: 'fail' });
  assert.deepEqual(decide(smtp(554, '554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException'), 1, 0, policy), { action: 'fail' });
});

test('missing credentials and refused logins hold the message instead of failing it', () => {
  assert.deepEqual(decide({ kind: 'credentials' }, 1, 0, policy), { action: 'hold' });
  assert.deepEqual(decide({ kind: 'delivery', evidence: { kind: 'smtp', code: 'EAUTH', responseCode: 535, response: '535 5.7.139 Authentication unsuccessful' } }, 1, 0, policy), { action: 'hold' });
});

test('a certificate problem holds the message: waiting will not fix it', () => {
  assert.deepEqual(decide({ kind: 'delivery', evidence: { kind: 'network', code: 'CERT_HAS_EXPIRED', message: 'certificate has expired' } }, 1, 0, policy), { action: 'hold' });
});

test('retries stop at the attempt limit and at the age limit', () => {
  assert.equal(decide(smtp(451, '451'), 5, 0, policy).action, 'fail');
  assert.equal(decide(smtp(451, '451'), 4, 0, policy).action, 'retry');
  assert.equal(decide(smtp(451, '451'), 1, policy.maxAgeMs - 1000, policy, full).action, 'fail');
});

test('a used-up sending quota holds the message until its window frees, never fails it', () => {
  const quota = smtp(554, '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception');
  assert.deepEqual(decide(quota, 1, 0, policy), { action: 'hold', resumeInMs: QUOTA_RECHECK_MS });
  // Even past the attempt and age limits: waiting is the fix, not giving up.
  assert.deepEqual(decide(quota, 99, policy.maxAgeMs * 2, policy), { action: 'hold', resumeInMs: QUOTA_RECHECK_MS });
  const tenant = smtp(550, "550 5.7.233 Your message can't be sent because your organization has exceeded its limit of external recipients.");
  assert.equal(decide(tenant, 1, 0, policy).action, 'hold');
});

test('432 4.3.2 (too many connections) is retried with backoff, and a full mailbox fails', () => {
  const busy = decide(smtp(432, '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded'), 2, 0, policy, full);
  assert.deepEqual(busy, { action: 'retry', delayMs: 60_000 });
  assert.deepEqual(decide(smtp(554, '554 5.2.2 mailbox full'), 1, 0, policy), { action: 'fail' });
});

const graph = (status: number, code: string, retryAfterSeconds?: number) => ({
  kind: 'delivery' as const,
  evidence: { kind: 'graph' as const, status, code, message: code, ...(retryAfterSeconds !== undefined && { retryAfterSeconds }) },
});

test('Graph throttling is retried no sooner than Retry-After', () => {
  const d = decide(graph(429, 'ApplicationThrottled', 600), 1, 0, policy, full);
  assert.deepEqual(d, { action: 'retry', delayMs: 600_000 });
  assert.deepEqual(decide(graph(429, 'ApplicationThrottled', 1), 1, 0, policy, full), { action: 'retry', delayMs: 30_000 }, 'backoff when it asks for more');
  assert.equal(decide(graph(503, 'ServiceUnavailable'), 1, 0, policy).action, 'retry');
});

test('Graph setup problems hold the mail, Send As denied fails it', () => {
  for (const [status, code] of [[403, 'ErrorAccessDenied'], [403, 'Authorization_RequestDenied'], [404, 'MailboxNotEnabledForRESTAPI'], [401, 'InvalidAuthenticationToken'], [403, 'ErrorQuotaExceeded']] as const) {
    assert.deepEqual(decide(graph(status, code), 1, 0, policy), { action: 'hold' }, code);
  }
  assert.deepEqual(decide(graph(403, 'ErrorSendAsDenied'), 1, 0, policy), { action: 'fail' });
  assert.deepEqual(decide(graph(400, 'ErrorInvalidRecipients'), 1, 0, policy), { action: 'fail' });
});
