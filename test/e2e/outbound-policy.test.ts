import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { join } from 'node:path';
import { openDatabase, type OpenedDatabase } from '../../src/storage/database.ts';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess, unhandledLines } from '../helpers/mailroom-process.ts';
import { assertResponsive, watchRss } from '../helpers/process-health.ts';
import { importReceivedMessage } from '../helpers/received-message.ts';
import { startOutboundTargets, type OutboundTargets } from '../peers/outbound-targets.ts';

// The audit's reproductions against a real Mailroom process with OUTBOUND_BLOCK_PRIVATE=true: names
// that a rebinding name server answers with 127.0.0.1 (test/peers/rebinding-dns.mjs, preloaded)
// reach nothing, Test Connection explains without connecting, and the process stays healthy; the
// same address under a name listed in OUTBOUND_ALLOW still gets its webhook and its connection.

const T = { timeout: 120_000 };
const DNS = fileURLToPath(new URL('../peers/rebinding-dns.mjs', import.meta.url));
let targets: OutboundTargets;
let mailroom: MailroomProcess;
let db: OpenedDatabase;
let key: string;
const api = apiClient(() => mailroom.baseUrl, () => key);

before(async () => {
  targets = await startOutboundTargets();
  mailroom = await startMailroomProcess({
    NODE_OPTIONS: `--import ${DNS}`,
    REBIND_HOSTS: ['erp.rebind.test', 'erp-allowed.rebind.test', 'mail.rebind.test', 'mail-allowed.rebind.test'].map((h) => `${h}=127.0.0.1`).join(','),
    OUTBOUND_BLOCK_PRIVATE: 'true',
    OUTBOUND_ALLOW: 'erp-allowed.rebind.test,mail-allowed.rebind.test',
    WEBHOOK_RETRY_BASE_SECONDS: '3600',
  });
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  db = await openDatabase(`sqlite:${join(mailroom.dataDir, 'mailroom.sqlite')}`);
});

after(async () => {
  await db?.close();
  await mailroom?.stop();
  await targets?.stop();
});

const delivery = (hookId: string, messageId: string) =>
  waitFor(`the delivery of ${messageId} to ${hookId}`, async () => {
    const r = await api('GET', `/api/v1/webhooks/${hookId}/deliveries`);
    const d = r.json.items.find((x: { inboundMessageId: string }) => x.inboundMessageId === messageId);
    return d && (d.state !== 'pending' || d.lastError) ? (d as { state: string; lastError: string | null }) : undefined;
  });

test('a webhook whose name resolves to 127.0.0.1 gets nothing; the next delivery, to an allowed name, arrives; the process stays healthy', T, async () => {
  const rss = watchRss(mailroom.pid);
  const literal = await api('POST', '/api/v1/webhooks', { url: `http://127.0.0.1:${targets.httpPort}/latest/meta-data/` });
  assert.equal(literal.status, 400);
  assert.match(literal.json.error.fields.url, /127\.0\.0\.1 is a loopback address \(this machine\): refused because OUTBOUND_BLOCK_PRIVATE=true/);
  const credentials = await api('POST', '/api/v1/webhooks', { url: `http://erp:pw-S3cret@erp-allowed.rebind.test:${targets.httpPort}/hook` });
  assert.equal(credentials.status, 400);
  assert.ok(credentials.json.error.fields.url);

  const rebound = await api('POST', '/api/v1/webhooks', { url: `http://erp.rebind.test:${targets.httpPort}/latest/meta-data/iam` });
  assert.equal(rebound.status, 201, rebound.text);
  const allowed = await api('POST', '/api/v1/webhooks', { url: `http://erp-allowed.rebind.test:${targets.httpPort}/hook` });
  assert.equal(allowed.status, 201, allowed.text);

  const first = await importReceivedMessage(db.db, 1, [rebound.json.id]);
  const refused = await delivery(rebound.json.id, first);
  assert.equal(refused.state, 'pending');
  assert.match(refused.lastError!, /^Refused by Mailroom's outbound policy, nothing was sent: erp\.rebind\.test resolves to 127\.0\.0\.1, which is a loopback address \(this machine\): refused because OUTBOUND_BLOCK_PRIVATE=true\. .*OUTBOUND_ALLOW/);
  await assertResponsive(mailroom.baseUrl, 1000);

  const next = await importReceivedMessage(db.db, 2, [allowed.json.id]);
  assert.equal((await delivery(allowed.json.id, next)).state, 'delivered');
  assert.deepEqual(targets.requests.map((r) => r.url), ['/hook'], 'only the allowed name was reached');
  assert.match(targets.requests[0]!.body, /Confidential payroll Q4 #2/);
  assert.ok(rss.stop() < 400, `RSS stayed bounded (peak ${rss.peak()} MB)`);
  assert.ok(!mailroom.output().includes('pw-S3cret'), 'the password is never logged');
  assert.deepEqual(unhandledLines(mailroom.output()), []);
});

test('Test Connection to mail hosts that resolve to 127.0.0.1 explains the refusal without a connection; an allowed name still connects', T, async () => {
  const before = targets.connections();
  const smtp = await api('POST', '/api/v1/mail-servers', { name: 'Relay', authType: 'password', username: 'erp@example.test', password: 'relay-password', smtpHost: 'mail.rebind.test', smtpPort: targets.tcpPort, smtpSecurity: 'starttls' });
  assert.equal(smtp.status, 201, smtp.text);
  const imap = await api('POST', '/api/v1/incoming-servers', { name: 'Inbox', authType: 'password', username: 'erp@example.test', password: 'imap-password', imapHost: 'mail.rebind.test', imapPort: targets.tcpPort, imapSecurity: 'tls' });
  assert.equal(imap.status, 201, imap.text);
  for (const path of [`/api/v1/mail-servers/${smtp.json.id}/test`, `/api/v1/incoming-servers/${imap.json.id}/test`]) {
    const r = await api('POST', path);
    assert.equal(r.json.ok, false);
    assert.equal(r.json.code, 'NET_OUTBOUND_REFUSED', r.text);
    assert.match(r.json.message, /mail\.rebind\.test resolves to 127\.0\.0\.1, which is a loopback address \(this machine\): refused because OUTBOUND_BLOCK_PRIVATE=true/);
    assert.match(r.json.fix, /real host name.*OUTBOUND_ALLOW/s);
  }
  const metadata = await api('POST', '/api/v1/mail-servers', { name: 'Meta', authType: 'password', username: 'erp@example.test', password: 'p', smtpHost: 'metadata.google.internal', smtpPort: 25 });
  assert.equal(metadata.status, 400);
  assert.match(metadata.json.error.fields.smtpHost, /metadata\.google\.internal is the name of a cloud metadata service: refused by Mailroom's outbound policy/);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(targets.connections(), before, 'no connection was attempted');

  // The same address under a name in OUTBOUND_ALLOW: the listener is reached (and hangs up).
  const ok = await api('PATCH', `/api/v1/mail-servers/${smtp.json.id}`, { smtpHost: 'mail-allowed.rebind.test' });
  assert.equal(ok.status, 200, ok.text);
  const reached = await api('POST', `/api/v1/mail-servers/${smtp.json.id}/test`);
  assert.notEqual(reached.json.code, 'NET_OUTBOUND_REFUSED');
  assert.equal(targets.connections(), before + 1);
  await assertResponsive(mailroom.baseUrl, 1000);
});
