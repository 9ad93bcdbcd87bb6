import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { apiClient } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { clusterEnv, createTestDatabase, storeTokensPg, type TestPostgres } from '../helpers/postgres-db.ts';
import { getToken } from '../peers/get-token.ts';
import { type Peers, startPeers } from '../peers/index.ts';

// Three Mailroom processes on one PostgreSQL drain 2,000 messages; one is killed with SIGKILL in the
// middle. The other two deliver everything (the dead one's claims come back when their lease runs
// out), and the only duplicates are messages the dead one had in flight.
const CLIENT_ID = '9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
const CLIENT_SECRET = 'Kx5Q~clustercrash.Test-Secret_Value~01234';
const MAILBOX = 'clustercrash@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const TOTAL = 2000;
const CONCURRENCY = 8;

const KEY = randomBytes(32);
let peers: Peers;
let pgdb: TestPostgres;
const procs: MailroomProcess[] = [];

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  pgdb = await createTestDatabase('mailroom_cluster_crash');
  const env = clusterEnv(pgdb, KEY, peers, {
    INBOUND_WORKER: 'off',
    OUTBOX_CONCURRENCY: String(CONCURRENCY),
    // Dovecot takes 10 connections per user: 3 processes × 3.
    OUTBOX_POOL_SIZE: '3',
    OUTBOX_RETRY_BASE_SECONDS: '1',
  });
  for (let i = 0; i < 3; i++) procs.push(await startMailroomProcess(env));
});

after(async () => {
  await Promise.allSettled(procs.map((p) => p.stop()));
  await pgdb?.drop();
  await peers?.stop();
});

const messageIdOf = (raw: Buffer) => /^Message-ID:\s*(<[^>]+>)/im.exec(raw.toString('latin1'))?.[1];

test('three processes, kill -9 one in the middle of a 2,000-message drain: the others deliver everything, duplicates no more than it had in flight', { timeout: 300_000 }, async () => {
  const apiKey = /\n(mr_\S+)/.exec(await procs[0]!.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const apis = procs.map((p) => apiClient(() => p.baseUrl, () => apiKey));
  const server = await apis[0]!('POST', '/api/v1/mail-servers', { name: 'Cluster crash', username: MAILBOX, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, smtpHost: '127.0.0.1', smtpPort: peers.dovecot.submissionPort });
  assert.equal(server.status, 201, server.text);
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX });
  await storeTokensPg(pgdb, KEY, server.json.id, MAILBOX, t, peers.authServer.tenantId);

  // Accepted through all three, as a load balancer would spread them.
  const accepted = new Set<string>();
  for (let batch = 0; batch < TOTAL / 60; batch++) {
    const n = Math.min(60, TOTAL - batch * 60);
    const replies = await Promise.all(Array.from({ length: n }, (_, i) => apis[i % 3]!('POST', '/api/v1/messages', { from: MAILBOX, to: ['archive@remote.example'], subject: `Cluster crash ${batch * 60 + i}`, text: 'x' })));
    for (const r of replies) {
      assert.equal(r.status, 202, r.text);
      accepted.add(r.json.messageId);
    }
  }
  assert.equal(accepted.size, TOTAL);

  const killAt = 800;
  const deadline = Date.now() + 120_000;
  while (peers.sink.messages.length < killAt && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await procs[1]!.crash();
  const deliveredAtKill = peers.sink.messages.length;
  assert.ok(deliveredAtKill >= killAt && deliveredAtKill < TOTAL, `killed mid-drain (${deliveredAtKill} delivered)`);

  const killedAt = Date.now();
  const delivered = () => new Set(peers.sink.messages.map((m) => messageIdOf(m.raw)));
  while (Date.now() - killedAt < 90_000 && ![...accepted].every((id) => delivered().has(id))) await new Promise((r) => setTimeout(r, 250));
  const drainedIn = (Date.now() - killedAt) / 1000;
  await new Promise((r) => setTimeout(r, 1500)); // a late duplicate would arrive now
  const ids = peers.sink.messages.map((m) => messageIdOf(m.raw)!);
  const missing = [...accepted].filter((id) => !ids.includes(id));
  assert.deepEqual(missing, [], `${missing.length} accepted messages were not delivered within 90 s of the kill`);
  const duplicates = ids.length - new Set(ids).size;
  assert.ok(duplicates <= CONCURRENCY, `${duplicates} duplicates, more than the ${CONCURRENCY} the killed process could have in flight`);
  const [left] = await pgdb.query<{ n: string }>(`select count(*) as n from outbox_messages where state <> 'sent'`);
  assert.equal(Number(left!.n), 0, 'every row sent');
  console.log(`# cluster crash: ${deliveredAtKill} delivered at the SIGKILL, ${duplicates} duplicate(s), the rest delivered by the other two ${drainedIn.toFixed(1)} s later`);
});
