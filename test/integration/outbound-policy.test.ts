import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createSecureContext, createServer as createTlsServer } from 'node:tls';
import { probeSmtp, SmtpError } from '../../src/smtp/smtp-client.ts';
import { startOutboundTargets, type OutboundTargets } from '../peers/outbound-targets.ts';
import { createTestCa } from '../peers/test-ca.ts';
import { importReceivedMessage } from '../helpers/received-message.ts';
import { loginAgent, startTestMailroom, type Agent, type TestMailroom } from '../helpers/test-mailroom.ts';

// The outbound policy against Mailroom's own HTTP API, webhook sender, SMTP and IMAP clients: a
// webhook or mail host that is, or resolves to, a refused address is refused at save or at connect,
// and nothing reaches the address. Names under .rebind.test resolve to 127.0.0.1 (DNS as a
// rebinding attacker's name server would answer), through Node's own dns.lookup (test/peers/rebinding-dns.mjs).

before(async () => {
  process.env.REBIND_HOSTS = 'erp.rebind.test=127.0.0.1,mail.rebind.test=127.0.0.1,imap.rebind.test=127.0.0.1';
  // @ts-expect-error: a plain-JS preload without types
  await import('../peers/rebinding-dns.mjs');
});

let targets: OutboundTargets;
before(async () => (targets = await startOutboundTargets()));
after(() => targets.stop());
const hookPort = () => targets.httpPort;
const tcpPort = () => targets.tcpPort;

async function mailroom(env: Record<string, string> = {}): Promise<{ t: TestMailroom; agent: Agent }> {
  const t = await startTestMailroom({ INBOUND_WORKER: 'off', OUTBOX_WORKER: 'off', WEBHOOK_RETRY_BASE_SECONDS: '3600', ...env });
  return { t, agent: await loginAgent(t) };
}

let uid = 0;
/** One received message, imported with a delivery to each webhook given; the sender runs once. */
async function receiveFor(t: TestMailroom, webhookIds: string[]): Promise<Array<{ state: string; attempts: number; lastError: string | null; webhookUrl: string }>> {
  uid++;
  await importReceivedMessage(t.mr.database.db, uid, webhookIds);
  t.mr.webhooks.kick();
  const out = [];
  for (const id of webhookIds) {
    for (let i = 0; ; i++) {
      const [d] = (await t.mr.webhooks.deliveries(id, {})).items as Array<{ state: string; attempts: number; lastError: string | null; webhookUrl: string; inboundMessageId: string }>;
      if (d && d.inboundMessageId === `msg-${uid}` && (d.state !== 'pending' || d.lastError)) {
        out.push(d);
        break;
      }
      if (i > 200) throw new Error(`no delivery outcome for webhook ${id}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  return out;
}

test('by default a webhook to 127.0.0.1 is delivered (Mailroom beside the ERP); with OUTBOUND_BLOCK_PRIVATE=true it is refused at save naming the field and the switch', async () => {
  const open = await mailroom();
  try {
    const hook = await open.agent.request('POST', '/api/v1/webhooks', { url: `http://127.0.0.1:${hookPort()}/erp/hook` });
    assert.equal(hook.status, 201, hook.body);
    const [d] = await receiveFor(open.t, [hook.json.id]);
    assert.equal(d!.state, 'delivered');
    assert.ok(targets.requests.some((r) => r.url === '/erp/hook' && r.body.includes('Confidential payroll Q4')));
  } finally {
    await open.t.close();
  }
  const closed = await mailroom({ OUTBOUND_BLOCK_PRIVATE: 'true' });
  try {
    for (const url of [`http://127.0.0.1:${hookPort()}/latest/meta-data/`, `http://2130706433:${hookPort()}/`, `http://localhost:${hookPort()}/`, 'http://[::1]/', 'http://10.0.0.5/hook']) {
      const r = await closed.agent.request('POST', '/api/v1/webhooks', { url });
      assert.equal(r.status, 400, url);
      assert.match(r.json.error.fields.url, /OUTBOUND_BLOCK_PRIVATE=true.*OUTBOUND_ALLOW/, url);
    }
    assert.equal((await closed.agent.request('POST', '/api/v1/webhooks', { url: 'https://erp.example.com/hook' })).status, 201);
  } finally {
    await closed.t.close();
  }
});

test('webhooks to metadata and link-local targets are refused at save under the default policy, in every spelling', async () => {
  const { t, agent } = await mailroom();
  try {
    for (const url of [
      'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
      'http://2852039166/latest/meta-data/',
      'http://0xa9fea9fe/',
      'http://[::ffff:169.254.169.254]/',
      'http://[fd00:ec2::254]/',
      'http://metadata.google.internal/computeMetadata/v1/',
      'http://100.100.100.200/latest/meta-data/',
      'http://[fe80::1]/',
      'http://0.0.0.0:8080/',
      'http://224.0.0.1/',
    ]) {
      const r = await agent.request('POST', '/api/v1/webhooks', { url });
      assert.equal(r.status, 400, url);
      assert.equal(r.json.error.code, 'MR_VALIDATION');
      assert.match(r.json.error.fields.url, /refused by Mailroom's outbound policy/, url);
    }
    const hook = await agent.request('POST', '/api/v1/webhooks', { url: 'https://erp.example.com/hook' });
    const patched = await agent.request('PATCH', `/api/v1/webhooks/${hook.json.id}`, { url: 'http://169.254.169.254/' });
    assert.equal(patched.status, 400);
    assert.ok(patched.json.error.fields.url);
  } finally {
    await t.close();
  }
});

test('a webhook host that resolves to a refused address is refused when connecting: nothing reaches the listener', async () => {
  for (const [env, delivered] of [[{ OUTBOUND_BLOCK_PRIVATE: 'true' }, false], [{}, true]] as const) {
    const { t, agent } = await mailroom(env);
    try {
      const before = targets.requests.length;
      const hook = await agent.request('POST', '/api/v1/webhooks', { url: `http://erp.rebind.test:${hookPort()}/hook?token=s3cr3t-query` });
      assert.equal(hook.status, 201, hook.body);
      const [d] = await receiveFor(t, [hook.json.id]);
      if (delivered) {
        // The same name without the switch reaches the listener: the refusal above is the policy's doing.
        assert.equal(d!.state, 'delivered');
        assert.equal(targets.requests.length, before + 1);
        continue;
      }
      assert.equal(d!.state, 'pending');
      assert.equal(d!.lastError, "Refused by Mailroom's outbound policy, nothing was sent: erp.rebind.test resolves to 127.0.0.1, which is a loopback address (this machine): refused because OUTBOUND_BLOCK_PRIVATE=true. Point the webhook at the receiver's own host name, or set OUTBOUND_ALLOW.");
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(targets.requests.length, before, 'the listener received nothing');
      // The audit line of the creation records the URL as the admin entered it; delivery never logs it.
      assert.deepEqual(t.logs.filter((l) => l.includes('s3cr3t-query') && !l.includes('"event":"webhook.created"')), [], "the delivery does not log the URL's query");
    } finally {
      await t.close();
    }
  }
});

test('a user name and password in a webhook URL are refused; a row saved with them earlier is never sent to, and they are never shown or logged', async () => {
  const { t, agent } = await mailroom();
  try {
    const r = await agent.request('POST', '/api/v1/webhooks', { url: `http://erp-user:pw-S3cret@127.0.0.1:${hookPort()}/hook` });
    assert.equal(r.status, 400);
    assert.match(r.json.error.fields.url, /must not contain a user name or password/);
    assert.ok(!r.body.includes('pw-S3cret'), 'the answer does not echo the password');

    // A row from before the rule.
    const created = await agent.request('POST', '/api/v1/webhooks', { url: `http://127.0.0.1:${hookPort()}/legacy` });
    const legacy = created.json.id as string;
    await t.mr.database.db.updateTable('webhooks').set({ url: `http://erp-user:pw-S3cret@127.0.0.1:${hookPort()}/legacy` }).where('id', '=', legacy).execute();
    const before = targets.requests.length;
    const [d] = await receiveFor(t, [legacy]);
    assert.match(d!.lastError!, /contains a user name or password, which Mailroom does not send/);
    assert.equal(targets.requests.length, before);
    const list = await agent.request('GET', '/api/v1/webhooks');
    assert.equal(list.json.items.find((w: { id: string }) => w.id === legacy).url, `http://***@127.0.0.1:${hookPort()}/legacy`);
    const deliveries = await agent.request('GET', `/api/v1/webhooks/${legacy}/deliveries`);
    assert.ok(!deliveries.body.includes('pw-S3cret') && !deliveries.body.includes('erp-user'), deliveries.body);
    assert.ok(!t.logs.join('').includes('pw-S3cret'), 'the password is never logged');
  } finally {
    await t.close();
  }
});

const PASSWORD_SERVER = { name: 'Relay', authType: 'password', username: 'erp@example.test', password: 'relay-password', smtpSecurity: 'starttls' };
const IMAP_SERVER = { name: 'Inbox', authType: 'password', username: 'erp@example.test', password: 'imap-password', imapSecurity: 'tls' };

test('metadata and link-local mail hosts are refused at save with the field and the policy named; a numeric form is refused for hiding the address', async () => {
  const { t, agent } = await mailroom();
  try {
    for (const host of ['169.254.169.254', 'metadata.google.internal', '2130706433', '0x7f000001', '0177.0.0.1', '127.1', '100.100.100.200', '0.0.0.0', '255.255.255.255']) {
      const smtp = await agent.request('POST', '/api/v1/mail-servers', { ...PASSWORD_SERVER, smtpHost: host, smtpPort: 587 });
      assert.equal(smtp.status, 400, `${host}: ${smtp.body}`);
      assert.deepEqual(Object.keys(smtp.json.error.fields), ['smtpHost'], host);
      assert.match(smtp.json.error.fields.smtpHost, /outbound policy|written as a number/, host);
      const imap = await agent.request('POST', '/api/v1/incoming-servers', { ...IMAP_SERVER, imapHost: host, imapPort: 993 });
      assert.equal(imap.status, 400, `${host}: ${imap.body}`);
      assert.deepEqual(Object.keys(imap.json.error.fields), ['imapHost'], host);
    }
    const numeric = await agent.request('POST', '/api/v1/mail-servers', { ...PASSWORD_SERVER, smtpHost: '2130706433' });
    assert.match(numeric.json.error.fields.smtpHost, /^2130706433 is the address 127\.0\.0\.1 written as a number/);
    const metadata = await agent.request('POST', '/api/v1/mail-servers', { ...PASSWORD_SERVER, smtpHost: '169.254.169.254' });
    assert.match(metadata.json.error.fields.smtpHost, /^169\.254\.169\.254 is a cloud metadata service address: refused by Mailroom's outbound policy\. Enter the mail server's real host name/);
    // Loopback is allowed by default: Mailroom beside a local relay.
    assert.equal((await agent.request('POST', '/api/v1/mail-servers', { ...PASSWORD_SERVER, smtpHost: '127.0.0.1', smtpPort: 2525 })).status, 201);
  } finally {
    await t.close();
  }
});

test('Test Connection to a mail host that resolves to a refused address explains the refusal without opening a connection', async () => {
  for (const [env, refused] of [[{ OUTBOUND_BLOCK_PRIVATE: 'true' }, true], [{}, false]] as const) {
    const { t, agent } = await mailroom(env);
    try {
      const before = targets.connections();
      const smtp = await agent.request('POST', '/api/v1/mail-servers', { ...PASSWORD_SERVER, smtpHost: 'mail.rebind.test', smtpPort: tcpPort() });
      assert.equal(smtp.status, 201, smtp.body);
      const smtpTest = await agent.request('POST', `/api/v1/mail-servers/${smtp.json.id}/test`);
      const imap = await agent.request('POST', '/api/v1/incoming-servers', { ...IMAP_SERVER, imapHost: 'imap.rebind.test', imapPort: tcpPort() });
      assert.equal(imap.status, 201, imap.body);
      const imapTest = await agent.request('POST', `/api/v1/incoming-servers/${imap.json.id}/test`);
      await new Promise((r) => setTimeout(r, 100));
      if (!refused) {
        // Without the switch the same names are reached: the listener counts both tests.
        assert.notEqual(smtpTest.json.code, 'NET_OUTBOUND_REFUSED');
        assert.equal(targets.connections(), before + 2);
        continue;
      }
      for (const [r, host] of [[smtpTest, 'mail.rebind.test'], [imapTest, 'imap.rebind.test']] as const) {
        assert.equal(r.json.ok, false);
        assert.equal(r.json.code, 'NET_OUTBOUND_REFUSED', r.body);
        assert.match(r.json.message, new RegExp(`${host.replace(/\./g, '\\.')} resolves to 127\\.0\\.0\\.1, which is a loopback address \\(this machine\\): refused because OUTBOUND_BLOCK_PRIVATE=true`));
        assert.match(r.json.fix, /OUTBOUND_ALLOW/);
        assert.equal(r.json.evidence.code, 'EOUTBOUND_REFUSED');
      }
      assert.equal(targets.connections(), before, 'no connection was attempted');
    } finally {
      await t.close();
    }
  }
});

test('SMTP over SSL/TLS (port 465 style) runs its handshake on the checked socket, with the host name for SNI and the certificate check on', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-outbound-tls-'));
  const ca = await createTestCa(dir);
  const names: string[] = [];
  const server = createTlsServer({ cert: ca.cert, key: ca.key, SNICallback: (name, cb) => {
    names.push(name);
    cb(null, createSecureContext({ cert: ca.cert, key: ca.key }));
  } }, (s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as { port: number }).port;
    // This process does not trust the test CA: the handshake must fail on the certificate, which
    // proves TLS ran (no plain-text session) with the certificate check on.
    await assert.rejects(probeSmtp({ host: 'localhost', port, security: 'tls' }, { kind: 'none' }, 'erp@example.test'), (e: unknown) => {
      assert.ok(e instanceof SmtpError);
      assert.equal(e.evidence.kind, 'network');
      assert.match((e.evidence as { code: string }).code, /CERT|SELF_SIGNED|UNABLE_TO/);
      return true;
    });
    assert.deepEqual(names, ['localhost']);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
