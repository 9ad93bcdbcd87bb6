import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { dsn } from '../helpers/dsn.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { clusterEnv, createTestDatabase, storeTokensPg, type TestPostgres } from '../helpers/postgres-db.ts';
import { getToken } from '../peers/get-token.ts';
import { type Peers, startPeers } from '../peers/index.ts';

// Three instances on one PostgreSQL, two mailboxes that both receive the same NDR (the sending
// mailbox and a journal copy), fetched by different instances at once: one report, one event.
const CLIENT_ID = '8e4f0a5b-6c7d-4e8f-9a01-b2c3d4e5f6a7';
const CLIENT_SECRET = 'Te0Q~bounce.Cluster-Secret_Value~0123456';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const BOXES = ['billing@example.test', 'journal@example.test'];
const T = { timeout: 180_000 };
const KEY = randomBytes(32);

let peers: Peers;
let pgdb: TestPostgres;
let receiver: Server;
let apiKey: string;
let messageId: string;
let outboxId: string;
const procs: MailroomProcess[] = [];
const events: string[] = [];

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  pgdb = await createTestDatabase('mailroom_bounce_cluster');
  receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      events.push(String(req.headers['x-mailroom-event']));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const env = clusterEnv(pgdb, KEY, peers, { OUTBOX_WORKER: 'off', WEBHOOK_RETRY_BASE_SECONDS: '0.2' });
  const setup = await startMailroomProcess({ ...env, INBOUND_WORKER: 'off' });
  apiKey = /\n(mr_\S+)/.exec(await setup.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const api = apiClient(() => setup.baseUrl, () => apiKey);
  assert.equal((await api('POST', '/api/v1/webhooks', { url: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook` })).status, 201);
  assert.equal((await api('POST', '/api/v1/mail-servers', { name: 'Billing', username: BOXES[0], clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, smtpHost: '127.0.0.1', smtpPort: peers.dovecot.submissionPort })).status, 201);
  const sent = await api('POST', '/api/v1/messages', { from: BOXES[0], to: ['gone@customer.example'], subject: 'Invoice C-1', text: 'x' });
  assert.equal(sent.status, 202, sent.text);
  outboxId = sent.json.id;
  messageId = sent.json.messageId;
  await pgdb.query(`update outbox_messages set state = 'sent', sent_at = $1 where id = $2`, [new Date().toISOString(), outboxId]);
  for (const box of BOXES) {
    const s = await api('POST', '/api/v1/incoming-servers', { name: box, username: box, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, imapHost: '127.0.0.1', imapPort: peers.dovecot.imapsPort, imapSecurity: 'tls', folder: 'INBOX', afterFetch: 'mark_read', intervalMinutes: 1 });
    assert.equal(s.status, 201, s.text);
    const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: box });
    await storeTokensPg(pgdb, KEY, s.json.id, box, t, peers.authServer.tenantId);
  }
  await setup.stop();
  procs.push(...(await Promise.all([0, 1, 2].map(() => startMailroomProcess(env)))));
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-bounce-cluster.log', procs.map((p) => p.output()).join('\n=====\n'));
  await Promise.allSettled(procs.map((p) => p.stop()));
  await new Promise((r) => receiver?.close(r));
  await pgdb?.drop();
  await peers?.stop();
});

test('three instances, the same NDR in two mailboxes: one report, one message.bounced', T, async () => {
  await waitFor('both mailboxes held by instances', async () => {
    const rows = await pgdb.query<{ holder: string }>(`select holder from leases where name like 'mailbox:%' and expires_at > $1`, [new Date().toISOString()]);
    return rows.length === 2 ? rows : undefined;
  }, 40_000, 250);
  const raw = dsn({ to: BOXES[0]!, recipient: 'gone@customer.example', original: { from: BOXES[0]!, subject: 'Invoice C-1', messageId }, messageId: '<ndr-cluster-1@mx.customer.example>' });
  await Promise.all(BOXES.map((b) => peers.dovecot.deliver(b, raw)));
  await waitFor('the NDR imported from both mailboxes', async () => {
    const rows = await pgdb.query<{ n: string }>(`select count(*) as n from inbound_messages where message_id = '<ndr-cluster-1@mx.customer.example>'`);
    return Number(rows[0]!.n) === 2 ? true : undefined;
  }, 90_000, 250);
  await waitFor('message.bounced', async () => (events.includes('message.bounced') ? true : undefined), 30_000);
  await new Promise((r) => setTimeout(r, 2000));
  assert.deepEqual(events, ['message.bounced']);
  assert.equal((await pgdb.query<{ n: string }>('select count(*) as n from delivery_reports'))[0]!.n, '1');
  assert.equal((await pgdb.query<{ outcome: string }>('select outcome from outbox_messages where id = $1', [outboxId]))[0]!.outcome, 'bounced');
});
