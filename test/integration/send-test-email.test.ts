import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { type Agent, loginAgent, startTestMailroom, type TestMailroom } from '../helpers/test-mailroom.ts';

// Send test email goes out at once, outside the queue; it is listed under Emails all the same, sent
// with the server's reply or failed with the explained error, and identified as outbox mail is.
let t: TestMailroom;
let agent: Agent;
let relay: SMTPServer;
let port: number;
const received: string[] = [];

before(async () => {
  relay = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onRcptTo(address, _session, cb) {
      if (address.address.startsWith('nobody@')) {
        const e = Object.assign(new Error('5.1.1 <nobody@example.org>: Recipient address rejected: User unknown'), { responseCode: 550 });
        return cb(e);
      }
      cb();
    },
    onData(stream, _session, cb) {
      let raw = '';
      stream.on('data', (c) => (raw += c));
      stream.on('end', () => {
        received.push(raw);
        cb(null, 'Queued as 4XyZ');
      });
    },
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', () => resolve()));
  port = (relay.server.address() as { port: number }).port;
  t = await startTestMailroom({ OUTBOX_WORKER: 'off' });
  agent = await loginAgent(t);
});

after(async () => {
  await t.close();
  await new Promise<void>((resolve) => relay.close(() => resolve()));
});

test('a test email is listed under Emails: sent with the server reply, or failed with the error', async () => {
  const s = await agent.request('POST', '/api/v1/mail-servers', { name: 'Local relay', authType: 'none', username: 'erp@example.test', smtpHost: '127.0.0.1', smtpPort: port, smtpSecurity: 'none' });
  assert.equal(s.status, 201, s.body);

  const ok = await agent.request('POST', `/api/v1/mail-servers/${s.json.id}/send-test`, { to: 'someone@example.org' });
  assert.equal(ok.json.ok, true, ok.body);
  const failed = await agent.request('POST', `/api/v1/mail-servers/${s.json.id}/send-test`, { to: 'nobody@example.org' });
  assert.equal(failed.json.ok, false, failed.body);

  const list = await agent.request('GET', `/api/v1/messages?mailServerId=${s.json.id}`);
  assert.equal(list.status, 200, list.body);
  const items = list.json.items as Array<{ id: string; state: string; subject: string; from: string; to: string[]; messageId: string; attempts: number; smtpResponse: string | null; lastError: { code: string; message: string } | null }>;
  assert.equal(items.length, 2, list.body);
  const sent = items.find((m) => m.to[0] === 'someone@example.org')!;
  assert.equal(sent.state, 'sent');
  assert.equal(sent.subject, 'Mailroom test email');
  assert.equal(sent.from, 'erp@example.test');
  assert.equal(sent.attempts, 1);
  assert.match(sent.smtpResponse ?? '', /250.*Queued as 4XyZ/);
  // The row is the message that went out: its Message-ID and X-Mailroom-Id name the row.
  assert.equal(sent.messageId, ok.json.messageId);
  assert.equal(sent.messageId, `<${sent.id}@example.test>`);
  assert.equal(received.length, 1);
  assert.match(received[0]!, new RegExp(`^X-Mailroom-Id: ${sent.id}\\r?$`, 'mi'));

  const refused = items.find((m) => m.to[0] === 'nobody@example.org')!;
  assert.equal(refused.state, 'failed');
  assert.equal(refused.attempts, 1);
  assert.equal(refused.lastError?.message, failed.json.message);
  assert.match(JSON.stringify(refused.lastError), /550/);

  // Listed, never claimed: the worker has nothing to send.
  const one = await agent.request('GET', `/api/v1/messages/${sent.id}`);
  assert.equal(one.json.state, 'sent');
});
