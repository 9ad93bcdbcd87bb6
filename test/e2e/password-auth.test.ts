import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { type Peers, startPeers } from '../peers/index.ts';

// Username/Password and None against real peers: Dovecot checks passwords from its password database
// (submission relays to the sink, IMAP serves the mailbox), and the sink stands for a relay that trusts
// this machine (no AUTH, no TLS, on 127.0.0.1).
const MAILBOX = 'clerk@example.test';
const PASSWORD = 'correct horse battery staple';
const T = { timeout: 120_000 };

let peers: Peers;
let mailroom: MailroomProcess;
let key: string;
const api = apiClient(() => mailroom.baseUrl, () => key);

/** Whether the SQLite file or its WAL holds `text` in clear. */
const databaseHolds = (text: string) =>
  ['mailroom.sqlite', 'mailroom.sqlite-wal'].some((f) => existsSync(join(mailroom.dataDir, f)) && readFileSync(join(mailroom.dataDir, f)).includes(text));

before(async () => {
  peers = await startPeers({ clients: [], passwords: { [MAILBOX]: PASSWORD } });
  mailroom = await startMailroomProcess({ NODE_EXTRA_CA_CERTS: peers.caFile, OUTBOX_RETRY_BASE_SECONDS: '0.3' });
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
});

after(async () => {
  await mailroom?.stop();
  await peers?.stop();
});

const passwordServer = (password: string, name: string) =>
  api('POST', '/api/v1/mail-servers', { name, authType: 'password', username: MAILBOX, password, smtpHost: 'localhost', smtpPort: peers.dovecot.submissionPort, smtpSecurity: 'starttls', fromFilter: MAILBOX });

test('Username/Password: the password is sealed and never returned; Test Connection and a queued message go through SMTP AUTH', T, async () => {
  const s = await passwordServer(PASSWORD, 'Relay with password');
  assert.equal(s.status, 201, JSON.stringify(s.json));
  assert.equal(s.json.passwordSet, true);
  assert.equal(s.json.redirectUri, null);
  assert.ok(!JSON.stringify(s.json).includes(PASSWORD));
  assert.ok(!JSON.stringify((await api('GET', `/api/v1/mail-servers/${s.json.id}`)).json).includes(PASSWORD));

  const t = await api('POST', `/api/v1/mail-servers/${s.json.id}/test`);
  assert.equal(t.json.ok, true, JSON.stringify(t.json));
  assert.equal(t.json.message, 'Connection Test Successful!');

  const m = await api('POST', '/api/v1/messages', { from: MAILBOX, to: ['someone@remote.example'], subject: 'Sent with a password', text: 'Hello' });
  assert.equal(m.status, 202, JSON.stringify(m.json));
  const got = await peers.sink.waitForMessage((x) => x.raw.toString().includes('Subject: Sent with a password'), 30_000);
  assert.equal(got.from, MAILBOX);
  assert.ok(!mailroom.output().includes(PASSWORD), 'the password must never be logged');
  assert.ok(!databaseHolds(PASSWORD), 'the password is sealed in the database');
  await api('DELETE', `/api/v1/mail-servers/${s.json.id}`);
});

test('a wrong password is explained: the catalogue names the refused password and the field to fix', T, async () => {
  const s = await passwordServer('not the password', 'Wrong password');
  assert.equal(s.status, 201, JSON.stringify(s.json));
  const t = await api('POST', `/api/v1/mail-servers/${s.json.id}/test`);
  assert.equal(t.json.ok, false);
  assert.equal(t.json.code, 'SMTP_535_PASSWORD', JSON.stringify(t.json));
  assert.match(t.json.fix, /current password in Password/);
  assert.match(t.json.message, /535/);
  await api('DELETE', `/api/v1/mail-servers/${s.json.id}`);
});

test('bad input names the field: no password, Graph without Outlook OAuth, plain text to a remote host', T, async () => {
  const noPassword = await api('POST', '/api/v1/mail-servers', { name: 'x', authType: 'password', username: MAILBOX, smtpHost: 'localhost' });
  assert.equal(noPassword.status, 400);
  assert.ok(noPassword.json.error.fields.password, JSON.stringify(noPassword.json));
  const graph = await api('POST', '/api/v1/mail-servers', { name: 'x', authType: 'password', username: MAILBOX, password: 'p', smtpHost: 'localhost', sendUsing: 'graph' });
  assert.equal(graph.status, 400);
  assert.ok(graph.json.error.fields.sendUsing, JSON.stringify(graph.json));
  const plain = await api('POST', '/api/v1/mail-servers', { name: 'x', authType: 'none', username: MAILBOX, smtpHost: 'relay.example.com', smtpPort: 25, smtpSecurity: 'none' });
  assert.equal(plain.status, 400);
  assert.ok(plain.json.error.fields.smtpSecurity, JSON.stringify(plain.json));
});

test('None: a relay on this machine without AUTH or TLS takes Test Connection and the mail', T, async () => {
  const s = await api('POST', '/api/v1/mail-servers', { name: 'Local relay', authType: 'none', username: 'erp@example.test', smtpHost: '127.0.0.1', smtpPort: peers.sink.port, smtpSecurity: 'none', fromFilter: 'erp@example.test' });
  assert.equal(s.status, 201, JSON.stringify(s.json));
  const t = await api('POST', `/api/v1/mail-servers/${s.json.id}/test`);
  assert.equal(t.json.ok, true, JSON.stringify(t.json));
  const m = await api('POST', '/api/v1/messages', { from: 'erp@example.test', to: ['someone@remote.example'], subject: 'Through the relay', text: 'Hello' });
  assert.equal(m.status, 202, JSON.stringify(m.json));
  await peers.sink.waitForMessage((x) => x.raw.toString().includes('Subject: Through the relay'), 30_000);
  await api('DELETE', `/api/v1/mail-servers/${s.json.id}`);
});

test('Username/Password incoming: IMAP LOGIN with the sealed password fetches the mailbox', T, async () => {
  await peers.dovecot.deliver(MAILBOX, 'From: a@remote.example\r\nTo: clerk@example.test\r\nSubject: Fetched with a password\r\nMessage-ID: <pw-1@remote.example>\r\n\r\nHi\r\n');
  const s = await api('POST', '/api/v1/incoming-servers', { name: 'Inbox with password', authType: 'password', username: MAILBOX, password: PASSWORD, imapHost: 'localhost', imapPort: peers.dovecot.imapsPort, imapSecurity: 'tls' });
  assert.equal(s.status, 201, JSON.stringify(s.json));
  assert.equal(s.json.passwordSet, true);
  const t = await api('POST', `/api/v1/incoming-servers/${s.json.id}/test`);
  assert.equal(t.json.ok, true, JSON.stringify(t.json));
  await api('POST', `/api/v1/incoming-servers/${s.json.id}/fetch`);
  await waitFor('the fetched message', async () => {
    const r = await api('GET', '/api/v1/inbound-messages');
    return r.json?.items?.find((i: { subject: string }) => i.subject === 'Fetched with a password');
  });
});
