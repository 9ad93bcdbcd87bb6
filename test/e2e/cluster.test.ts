import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { clusterEnv, createTestDatabase, storeTokensPg, type TestPostgres } from '../helpers/postgres-db.ts';
import { getToken } from '../peers/get-token.ts';
import { type Peers, startPeers } from '../peers/index.ts';

// Several real Mailroom processes, each with its own DATA_DIR, on one PostgreSQL database: they
// behave as one system (one refresh per token, one fetcher per mailbox, work done once).
const CLIENT_ID = '7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f';
const CLIENT_SECRET = 'Cl9Q~cluster.Test-Secret_Value~0123456789';
const MAILBOX = 'cluster@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const T = { timeout: 240_000 };

const KEY = randomBytes(32);
let peers: Peers;
let pgdb: TestPostgres;
let env: Record<string, string>;
const procs: MailroomProcess[] = [];
let apiKey: string;
let outgoingId: string;
let receiver: Server;
const hooks: Array<{ messageId: string; subject: string }> = [];

const apiOf = (p: () => MailroomProcess) => apiClient(() => p().baseUrl, () => apiKey);
const messageIdOf = (raw: Buffer) => /^Message-ID:\s*(<[^>]+>)/im.exec(raw.toString('latin1'))?.[1];

async function start(extra: Record<string, string> = {}): Promise<MailroomProcess> {
  const p = await startMailroomProcess({ ...env, ...extra });
  procs.push(p);
  return p;
}

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  pgdb = await createTestDatabase();
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const payload = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      hooks.push({ messageId: payload.message.messageId, subject: payload.message.subject });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  env = clusterEnv(pgdb, KEY, peers, {
    // Dovecot resets a connection now and then when a dozen open at once: retry soon, not in 30 s.
    OUTBOX_RETRY_BASE_SECONDS: '1',
    // The lifecycle jobs' lease: 10 s here (25 s by default) keeps the takeover test short.
    LIFECYCLE_LEASE_SECONDS: '10',
  });
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-cluster.log', procs.map((p) => p.output()).join('\n=====\n'));
  await Promise.allSettled(procs.map((p) => p.stop()));
  await new Promise((r) => receiver?.close(r));
  await pgdb?.drop();
  await peers?.stop();
});

test('an instance started with another secret key refuses to start and says why', T, async () => {
  const first = await start();
  const other = randomBytes(32).toString('base64');
  await assert.rejects(
    startMailroomProcess({ ...env, MAILROOM_SECRET_KEY: other }),
    (e: Error) => /mailroom exited with 1/.test(e.message) && /secret key .* cannot open the secrets stored in the database/.test(e.message) && /same MAILROOM_SECRET_KEY/.test(e.message),
  );
  // Without any key, PostgreSQL is refused at once (a key file per DATA_DIR would differ per machine).
  await assert.rejects(startMailroomProcess({ ...env, MAILROOM_SECRET_KEY: '' }), /MAILROOM_SECRET_KEY is required with a PostgreSQL DATABASE_URL/);
  assert.equal((await fetch(`${first.baseUrl}/readyz`)).status, 200, 'the running instance is unaffected');
  const rows = await pgdb.query<{ name: string }>('select name from cluster_settings');
  assert.deepEqual(rows.map((r) => r.name), ['secret_key_check']);
});

test('three instances, a stale access token and a burst on each: one refresh at the authorization server, every message delivered once', T, async () => {
  while (procs.length < 3) await start();
  apiKey = /\n(mr_\S+)/.exec(await procs[0]!.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const api = apiOf(() => procs[0]!);
  const server = await api('POST', '/api/v1/mail-servers', { name: 'Cluster', username: MAILBOX, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, smtpHost: '127.0.0.1', smtpPort: peers.dovecot.submissionPort });
  assert.equal(server.status, 201, server.text);
  outgoingId = server.json.id;
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX });
  // Expired an hour ago: the first send on any instance must refresh it.
  await storeTokensPg(pgdb, KEY, server.json.id, MAILBOX, t, peers.authServer.tenantId, { accessExpiresAt: new Date(Date.now() - 3600_000) });
  const tokenRequestsBefore = peers.authServer.tokenRequestCount();
  const sinkBefore = peers.sink.messages.length;

  // Test Connection asks each instance's token manager for a token at the same moment, then the burst.
  const tested = await Promise.all(procs.slice(0, 3).map((p) => apiOf(() => p)('POST', `/api/v1/mail-servers/${server.json.id}/test`)));
  for (const r of tested) assert.equal(r.json.ok, true, r.text);
  const PER = 40;
  const accepted = new Set<string>();
  await Promise.all(
    procs.slice(0, 3).map(async (p, i) => {
      const send = apiOf(() => p);
      const replies = await Promise.all(Array.from({ length: PER }, (_, k) => send('POST', '/api/v1/messages', { from: MAILBOX, to: ['archive@remote.example'], subject: `Burst ${i}-${k}`, text: 'x' })));
      for (const r of replies) {
        assert.equal(r.status, 202, r.text);
        accepted.add(r.json.messageId);
      }
    }),
  );
  assert.equal(accepted.size, 3 * PER);
  await waitFor('every message delivered', async () => (peers.sink.messages.length - sinkBefore >= accepted.size ? true : undefined), 90_000, 200);
  await new Promise((r) => setTimeout(r, 1000)); // a duplicate would arrive now
  const ids = peers.sink.messages.slice(sinkBefore).map((m) => messageIdOf(m.raw));
  assert.equal(ids.length, accepted.size, 'no message delivered twice');
  assert.deepEqual(new Set(ids), accepted);
  assert.equal(peers.authServer.tokenRequestCount() - tokenRequestsBefore, 1, 'one refresh-token request for the whole cluster');
});

let n = 0;
function rawMessage(subject: string, body = 'Hello from the test.'): { raw: string; messageId: string } {
  const messageId = `<cluster-${Date.now()}-${++n}@sender.example>`;
  const raw = ['From: Customer <customer@sender.example>', `To: ${MAILBOX}`, `Subject: ${subject}`, `Message-ID: ${messageId}`, 'Date: Sat, 28 Nov 2026 09:00:00 +0000', 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', body, ''].join('\r\n');
  return { raw, messageId };
}

const importedIds = async () => (await pgdb.query<{ message_id: string }>('select message_id from inbound_messages')).map((r) => r.message_id);

test('one mailbox, three instances: one holds the fetch lease, each message is imported and sent to the webhook once; when the holder dies another takes over', T, async () => {
  const api = apiOf(() => procs[0]!);
  const hook = await api('POST', '/api/v1/webhooks', { url: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/erp`, description: 'ERP' });
  assert.equal(hook.status, 201, hook.text);
  const created = await api('POST', '/api/v1/incoming-servers', {
    name: 'Cluster inbox',
    imapHost: '127.0.0.1',
    imapPort: peers.dovecot.imapsPort,
    imapSecurity: 'tls',
    username: MAILBOX,
    folder: 'INBOX',
    afterFetch: 'mark_read',
    intervalMinutes: 1,
    tokenSourceId: outgoingId,
  });
  assert.equal(created.status, 201, created.text);
  const incomingId = created.json.id;
  const sent: string[] = [];
  for (let i = 0; i < 6; i++) {
    const m = rawMessage(`Cluster inbound ${i}`);
    sent.push(m.messageId);
    await peers.dovecot.deliver(MAILBOX, m.raw);
  }
  // 2 MB: above the 512 KB kept whole, so on PostgreSQL it is written to the database in chunks.
  const big = rawMessage('Cluster inbound large', `${'0123456789abcdef'.repeat(4).concat('\r\n').repeat(Math.ceil((2 * 1024 * 1024) / 66))}`);
  sent.push(big.messageId);
  await peers.dovecot.deliver(MAILBOX, big.raw);
  await waitFor('seven messages imported', async () => ((await importedIds()).length >= 7 ? true : undefined), 60_000, 250);
  const [bigRow] = await pgdb.query<{ id: string; raw_path: string }>('select id, raw_path from inbound_messages where message_id = $1', [big.messageId]);
  assert.equal(bigRow!.raw_path, '', 'not a file in one instance\'s DATA_DIR');
  const [chunks] = await pgdb.query<{ n: string }>('select count(*) as n from inbound_raw_chunks where inbound_message_id = $1', [bigRow!.id]);
  assert.ok(Number(chunks!.n) >= 8, `stored in chunks (${chunks!.n})`);
  const raws = await Promise.all(procs.map(async (p) => Buffer.from(await (await fetch(`${p.baseUrl}/api/v1/inbound-messages/${bigRow!.id}/raw`, { headers: { authorization: `Bearer ${apiKey}` } })).arrayBuffer())));
  assert.ok(raws[0]!.length > 2 * 1024 * 1024);
  assert.ok(raws[0]!.includes(Buffer.from(big.raw)), 'the message as delivered');
  for (const r of raws) assert.ok(r.equals(raws[0]!), 'identical raw MIME from every instance');

  // The claim is in the data: one lease row, and every instance names the same holder.
  const leases = await pgdb.query<{ holder: string }>(`select holder from leases where name = 'mailbox:${incomingId}'`);
  assert.equal(leases.length, 1);
  const holder = leases[0]!.holder;
  const views = await Promise.all(procs.map((p) => apiOf(() => p)('GET', '/api/v1/health/servers')));
  const instances = views.map((v) => v.json.instance as string);
  assert.equal(new Set(instances).size, 3, 'three instances answered');
  for (const v of views) assert.equal(v.json.items.find((s: { id: string }) => s.id === incomingId).fetchedBy, holder);
  const holderIndex = instances.indexOf(holder);
  assert.ok(holderIndex >= 0, `the holder ${holder} is one of ${instances.join(', ')}`);

  await new Promise((r) => setTimeout(r, 2000)); // a second fetcher would import again or post again by now
  const ids = await importedIds();
  assert.deepEqual(ids.filter((id) => sent.includes(id)).sort(), [...sent].sort(), 'each message imported exactly once');
  await waitFor('seven webhook deliveries', async () => (hooks.filter((h) => sent.includes(h.messageId)).length >= 7 ? true : undefined), 30_000);
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(hooks.filter((h) => sent.includes(h.messageId)).length, 7, 'each message posted to the webhook once, not once per instance');

  // kill -9 the fetcher: its lease runs out (25 s by default) and another instance takes the mailbox.
  const killedAt = Date.now();
  await procs[holderIndex]!.crash();
  const late = rawMessage('After the holder died');
  await peers.dovecot.deliver(MAILBOX, late.raw);
  await waitFor('the new message imported by another instance', async () => ((await importedIds()).includes(late.messageId) ? true : undefined), 60_000, 250);
  const tookOver = (Date.now() - killedAt) / 1000;
  const [after] = await pgdb.query<{ holder: string }>(`select holder from leases where name = 'mailbox:${incomingId}'`);
  assert.notEqual(after!.holder, holder);
  assert.ok(instances.includes(after!.holder));
  assert.equal((await importedIds()).filter((id) => id === late.messageId).length, 1);
  console.log(`# mailbox taken over and new mail imported ${tookOver.toFixed(1)} s after kill -9 of its fetcher`);
});

test('the lifecycle jobs: one instance holds a short lease; kill -9 it and another takes the jobs over and sends a due warning once', T, async () => {
  const up = await Promise.all(procs.map((p) => fetch(`${p.baseUrl}/healthz`).then((r) => r.ok, () => false)));
  const alive = procs.filter((_, i) => up[i]);
  assert.ok(alive.length >= 2, 'two instances left');
  const views = await Promise.all(alive.map((p) => apiOf(() => p)('GET', '/api/v1/health/servers')));
  const instances = views.map((v) => v.json.instance as string);
  const [lease] = await pgdb.query<{ holder: string; renewed_at: string; expires_at: string }>(`select holder, renewed_at, expires_at from leases where name = 'lifecycle'`);
  assert.ok(lease, 'a lifecycle lease row');
  assert.ok(Date.parse(lease.expires_at) - Date.parse(lease.renewed_at) <= 10_000, 'a short lease renewed by a heartbeat, not one of hours');
  const holderIndex = instances.indexOf(lease.holder);
  assert.ok(holderIndex >= 0, `held by a live instance (${lease.holder})`);
  // A secret that expires in five days, added after the holder's last run: only a run after the takeover sees it.
  const expiresOn = new Date(Date.now() + 5 * 86400_000).toISOString().slice(0, 10);
  const created = await apiOf(() => alive[0]!)('POST', '/api/v1/mail-servers', { name: 'Expiring', username: 'expiring@example.test', clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, clientSecretExpiresAt: expiresOn, smtpHost: '127.0.0.1', smtpPort: peers.dovecot.submissionPort });
  assert.equal(created.status, 201, created.text);
  const killedAt = Date.now();
  await alive[holderIndex]!.crash();
  await waitFor('another instance holds the lifecycle lease', async () => {
    const [l] = await pgdb.query<{ holder: string }>(`select holder from leases where name = 'lifecycle'`);
    return l && l.holder !== lease.holder && instances.includes(l.holder) ? true : undefined;
  }, 30_000, 200);
  const tookOver = (Date.now() - killedAt) / 1000;
  assert.ok(tookOver < 10 + 4 + 3, `taken over within the lease and a heartbeat (${tookOver.toFixed(1)} s)`);
  await waitFor('the 7-day warning recorded', async () => {
    const [r] = await pgdb.query<{ secret_alert_level: number | null }>('select secret_alert_level from mail_servers where id = $1', [created.json.id]);
    return r?.secret_alert_level !== null && Number(r?.secret_alert_level) === 7 ? true : undefined;
  }, 15_000, 200);
  await new Promise((r) => setTimeout(r, 1000));
  const warnings = procs.map((p) => p.output().split('\n').filter((l) => l.includes('lifecycle.secret_expiry') && l.includes(created.json.id)).length).reduce((a, b) => a + b, 0);
  assert.equal(warnings, 1, 'the warning sent once in the cluster');
  console.log(`# lifecycle jobs taken over ${tookOver.toFixed(1)} s after kill -9 of their holder`);
});

test('wake-ups across instances: a message accepted by an instance without a worker is sent by another at once (LISTEN/NOTIFY), not at its next poll', T, async () => {
  // Only these two run now: A takes requests without sending, B sends and polls once a minute.
  await Promise.all(procs.map((p) => p.stop()));
  const a = await start({ OUTBOX_WORKER: 'off', INBOUND_WORKER: 'off' });
  const b = await start({ OUTBOX_POLL_SECONDS: '60', INBOUND_WORKER: 'off' });
  await new Promise((r) => setTimeout(r, 1500)); // B's worker has looked once and waits for its minute
  const send = apiOf(() => a);
  const latencies: number[] = [];
  for (let i = 0; i < 5; i++) {
    const before = peers.sink.messages.length;
    const t0 = Date.now();
    const r = await send('POST', '/api/v1/messages', { from: MAILBOX, to: ['archive@remote.example'], subject: `Wake ${i}`, text: 'x' });
    assert.equal(r.status, 202, r.text);
    await waitFor('sent by the other instance', async () => (peers.sink.messages.slice(before).some((m) => messageIdOf(m.raw) === r.json.messageId) ? true : undefined), 20_000, 20);
    latencies.push(Date.now() - t0);
    await new Promise((res) => setTimeout(res, 300));
  }
  const [row] = await pgdb.query<{ n: string }>(`select count(*) as n from outbox_messages where subject like 'Wake %' and state = 'sent'`);
  assert.equal(Number(row!.n), 5);
  assert.ok(Math.max(...latencies) < 5000, `each sent within 5 s of acceptance, the poll being 60 s (${latencies.join(', ')} ms)`);
  console.log(`# accepted by A, sent by B: ${latencies.join(', ')} ms (B polls every 60 s)`);
});

test('sessions and login limits are the cluster\'s: a session made on one instance works on another, and failed logins count across instances', T, async () => {
  const live = await Promise.all(procs.map((p) => fetch(`${p.baseUrl}/healthz`).then((r) => r.ok, () => false)));
  const [a, b] = procs.filter((_, i) => live[i]);
  assert.ok(a && b, 'two instances are running');
  const admin = { email: 'cluster-admin@example.test', password: 'a long cluster passphrase' };
  await a.cli('admin', 'create', '--email', admin.email, '--password', admin.password);
  const login = (p: MailroomProcess, password: string) =>
    fetch(`${p.baseUrl}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: admin.email, password }) });
  const ok = await login(a, admin.password);
  assert.equal(ok.status, 200);
  const cookie = (ok.headers.get('set-cookie') ?? '').split(';')[0]!;
  const onB = await fetch(`${b.baseUrl}/api/v1/session`, { headers: { cookie } });
  assert.equal(onB.status, 200, 'the session made on A is valid on B');
  assert.equal((await onB.json()).admin.email, admin.email);
  // Five wrong passwords from this address, spread over both instances, use up the pair's allowance.
  for (let i = 0; i < 5; i++) assert.equal((await login(i % 2 ? a : b, 'wrong guess')).status, 401);
  const sixthOnA = await login(a, 'wrong guess');
  const sixthOnB = await login(b, 'wrong guess');
  assert.equal(sixthOnA.status, 429, 'counted across instances');
  assert.equal(sixthOnB.status, 429);
});
