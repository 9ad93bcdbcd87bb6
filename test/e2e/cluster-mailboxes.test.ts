import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { clusterEnv, createTestDatabase, storeTokensPg, type TestPostgres } from '../helpers/postgres-db.ts';
import { getToken } from '../peers/get-token.ts';
import { type Peers, startPeers } from '../peers/index.ts';

// Many mailboxes, several instances: each instance fetches an equal share (one fetcher per mailbox
// still), a stopped instance's share goes to the others, and a new instance gets its share back.
const CLIENT_ID = '5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b';
const CLIENT_SECRET = 'Mb4Q~mailboxes.Test-Secret_Value~0123456';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const MAILBOXES = Array.from({ length: 6 }, (_, i) => `box${i}@example.test`);
const T = { timeout: 240_000 };

const KEY = randomBytes(32);
let peers: Peers;
let pgdb: TestPostgres;
let env: Record<string, string>;
const procs: MailroomProcess[] = [];
let apiKey: string;
const serverOf = new Map<string, string>();

/** Mailboxes held per live instance (by pid), from the lease rows. */
async function spread(): Promise<number[]> {
  const rows = await pgdb.query<{ holder: string }>(`select holder from leases where name like 'mailbox:%' and expires_at > $1`, [new Date().toISOString()]);
  return procs.map((p) => rows.filter((r) => r.holder.includes(`:${p.pid}:`)).length).sort();
}
const spreadIs = (want: number[]) => async () => {
  const s = await spread();
  return JSON.stringify(s) === JSON.stringify(want) ? s : undefined;
};

let n = 0;
async function deliverToAll(tag: string): Promise<string[]> {
  const ids: string[] = [];
  for (const box of MAILBOXES) {
    const messageId = `<${tag}-${++n}@sender.example>`;
    ids.push(messageId);
    await peers.dovecot.deliver(box, ['From: sender@sender.example', `To: ${box}`, `Subject: ${tag} for ${box}`, `Message-ID: ${messageId}`, 'Date: Thu, 03 Dec 2026 09:00:00 +0000', '', 'Hello.', ''].join('\r\n'));
  }
  return ids;
}
const imported = async () => (await pgdb.query<{ message_id: string; mail_server_id: string }>('select message_id, mail_server_id from inbound_messages')).map((r) => r.message_id);

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  pgdb = await createTestDatabase('mailroom_mailboxes');
  env = clusterEnv(pgdb, KEY, peers, {
    OUTBOX_WORKER: 'off',
    // Taken over 10 s after a crash here (25 s by default).
    INBOUND_LEASE_SECONDS: '6',
  });
  // The servers and their tokens first, with no instance fetching yet.
  const setup = await startMailroomProcess({ ...env, INBOUND_WORKER: 'off' });
  apiKey = /\n(mr_\S+)/.exec(await setup.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const api = apiClient(() => setup.baseUrl, () => apiKey);
  for (const box of MAILBOXES) {
    const s = await api('POST', '/api/v1/incoming-servers', { name: box, username: box, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, imapHost: '127.0.0.1', imapPort: peers.dovecot.imapsPort, imapSecurity: 'tls', folder: 'INBOX', afterFetch: 'mark_read', intervalMinutes: 1 });
    assert.equal(s.status, 201, s.text);
    serverOf.set(box, s.json.id);
    const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: box });
    await storeTokensPg(pgdb, KEY, s.json.id, box, t, peers.authServer.tenantId);
  }
  await setup.stop();
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-mailboxes.log', procs.map((p) => p.output()).join('\n=====\n'));
  await Promise.allSettled(procs.map((p) => p.stop()));
  await pgdb?.drop();
  await peers?.stop();
});

test('six mailboxes, three instances started together: two each; each message imported once', T, async () => {
  procs.push(...(await Promise.all([0, 1, 2].map(() => startMailroomProcess(env)))));
  await waitFor('two mailboxes per instance', spreadIs([2, 2, 2]), 30_000, 250);
  const ids = await deliverToAll('together');
  // IDLE signals new mail at once; 90 s leaves room for the 1-minute poll if a watcher failed.
  await waitFor('every message imported', async () => ((await imported()).length >= ids.length ? true : undefined), 90_000, 250);
  await new Promise((r) => setTimeout(r, 1500)); // a second fetcher would import again by now
  const got = await imported();
  assert.deepEqual([...got].sort(), [...ids].sort(), 'each message imported exactly once');
  // The cluster view names the holder of each mailbox: three instances, two mailboxes each.
  const view = await apiClient(() => procs[0]!.baseUrl, () => apiKey)('GET', '/api/v1/health/servers');
  const fetchers = view.json.items.filter((i: { direction: string }) => i.direction === 'incoming').map((i: { fetchedBy: string }) => i.fetchedBy);
  assert.deepEqual([...new Set(fetchers)].map((f) => fetchers.filter((x: string) => x === f).length), [2, 2, 2]);
});

test('an instance stops: the other two take its share (three each); a new instance gets two back, handed over by the others', T, async () => {
  const stopped = procs.pop()!;
  await stopped.stop();
  await waitFor('three mailboxes per remaining instance', spreadIs([3, 3]), 30_000, 250);
  const during = await deliverToAll('two-left');
  await waitFor('mail imported by the two', async () => ((await imported()).filter((id) => during.includes(id)).length === during.length ? true : undefined), 90_000, 250);

  procs.push(await startMailroomProcess(env));
  await waitFor('two each again', spreadIs([2, 2, 2]), 40_000, 250);
  const later = await deliverToAll('rebalanced');
  await waitFor('mail imported after the hand-over', async () => ((await imported()).filter((id) => later.includes(id)).length === later.length ? true : undefined), 90_000, 250);
  await new Promise((r) => setTimeout(r, 1500));
  const got = await imported();
  assert.equal(got.length, new Set(got).size, 'nothing imported twice across the hand-overs');
  assert.equal(got.length, 3 * MAILBOXES.length);
});
