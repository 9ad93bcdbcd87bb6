import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pace, quotaResume } from '../../src/outbox/pacing.ts';
import { defaultLimits, isMicrosoftHost, MICROSOFT_LIMITS } from '../../src/servers/send-limits.ts';

const NOW = new Date('2026-11-28T12:00:00.000Z');
const ago = (ms: number) => new Date(NOW.getTime() - ms).toISOString();
const ones = (n: number) => Array.from({ length: n }, () => 1);

test('Microsoft hosts get Exchange Online limits; other hosts none', () => {
  for (const h of ['smtp.office365.com', 'SMTP.Office365.com', 'smtp-mail.outlook.com', 'smtp.office365.us', 'smtp.partner.outlook.cn']) {
    assert.equal(isMicrosoftHost(h), true, h);
    assert.deepEqual(defaultLimits(h), MICROSOFT_LIMITS);
  }
  for (const h of ['127.0.0.1', 'mail.contoso.com', 'office365.com.evil.example', 'smtp.sendgrid.net']) assert.equal(isMicrosoftHost(h), false, h);
  assert.deepEqual(defaultLimits('mail.contoso.com'), { maxConnections: null, messagesPerMinute: null, recipientsPerDay: null, recipientsPerMessage: null });
});

test('without limits every due message may go', () => {
  assert.deepEqual(pace({ messagesPerMinute: null, recipientsPerDay: null }, { lastMinute: [], recipientsLastDay: 1e9 }, ones(50), NOW), { take: 50, nextAt: null, quotaUntil: null });
});

test('30 a minute: a burst takes 30, the next goes when the oldest send turns a minute old', () => {
  const limits = { messagesPerMinute: 30, recipientsPerDay: null };
  const first = pace(limits, { lastMinute: [], recipientsLastDay: 0 }, ones(40), NOW);
  assert.equal(first.take, 30);
  assert.equal(first.nextAt?.toISOString(), new Date(NOW.getTime() + 60_000).toISOString());
  // 30 sent over the last 50 s, the oldest 50 s ago: the next one in 10 s.
  const sent = Array.from({ length: 30 }, (_, i) => ago(50_000 - i * 1000));
  const later = pace(limits, { lastMinute: sent, recipientsLastDay: 30 }, ones(10), NOW);
  assert.equal(later.take, 0);
  assert.equal(later.nextAt?.toISOString(), new Date(NOW.getTime() + 10_000).toISOString());
  // Sends older than a minute do not count.
  assert.equal(pace(limits, { lastMinute: [ago(61_000), ago(70_000)], recipientsLastDay: 2 }, ones(30), NOW).take, 30);
});

test('the daily recipient limit stops the claim and names when enough recipients leave the 24-hour window', () => {
  const limits = { messagesPerMinute: null, recipientsPerDay: 10 };
  const window = [
    { at: ago(23 * 3600_000), recipients: 4 },
    { at: ago(2 * 3600_000), recipients: 4 },
  ];
  // 8 used; messages of 1, 1, 3 recipients: the first two fit, the third needs the first 4 to expire (in 1 h).
  const p = pace(limits, { lastMinute: [], recipientsLastDay: 8 }, [1, 1, 3], NOW, () => window);
  assert.equal(p.take, 2);
  assert.equal(p.quotaUntil?.toISOString(), new Date(NOW.getTime() + 3600_000).toISOString());
  assert.equal(p.nextAt, null);
});

test('a quota resume time is never in the past, and unknown usage is looked at again in an hour', () => {
  assert.equal(quotaResume(10, 1, 10, [{ at: ago(25 * 3600_000), recipients: 10 }], NOW).getTime(), NOW.getTime());
  assert.equal(quotaResume(10, 1, 10, [], NOW).getTime(), NOW.getTime() + 3600_000);
});

test('when one claim both fills the day and hits the limit, the resume time counts the messages it took', () => {
  const p = pace({ messagesPerMinute: null, recipientsPerDay: 5 }, { lastMinute: [], recipientsLastDay: 0 }, [1, 1, 1, 1, 1, 1, 1], NOW, () => []);
  assert.equal(p.take, 5);
  assert.equal(p.quotaUntil?.toISOString(), new Date(NOW.getTime() + 24 * 3600_000).toISOString());
});
