import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { storeTokens } from '../helpers/connect-directly.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { getToken } from '../peers/get-token.ts';
import { type Peers, startPeers } from '../peers/index.ts';

// Nothing lost across a crash: 2,000 accepted messages, the process killed with SIGKILL mid-drain and
// started again on the same data: every message is delivered within a minute of the restart, with the
// lease left at its default, and the only duplicates are messages that were in flight at the kill.
const CLIENT_ID = '5e6f7a8b-1c2d-4e3f-9a0b-c1d2e3f4a5b6';
const CLIENT_SECRET = 'Cr4Q~crash.Test-Secret_Value~0123456789';
const MAILBOX = 'crash@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const TOTAL = 2000;
const CONCURRENCY = 16;

let peers: Peers;
let mailroom: MailroomProcess;
let port: number;
let env: Record<string, string>;

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  env = {
    MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost,
    NODE_EXTRA_CA_CERTS: peers.caFile,
    OUTBOX_CONCURRENCY: String(CONCURRENCY),
    LOG_LEVEL: 'warn',
  };
  mailroom = await startMailroomProcess(env);
  port = Number(new URL(mailroom.baseUrl).port);
});

after(async () => {
  await mailroom?.stop();
  await peers?.stop();
});

const messageIdOf = (raw: Buffer) => /^Message-ID:\s*(<[^>]+>)/im.exec(raw.toString('latin1'))?.[1];

test('a SIGKILL mid-drain loses nothing; duplicates stay within the in-flight window', { timeout: 300_000 }, async () => {
  const key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${mailroom.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return { status: r.status, json: (await r.json()) as any };
  };
  const server = await api('POST', '/api/v1/mail-servers', {
    name: 'Crash test',
    username: MAILBOX,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    smtpHost: '127.0.0.1',
    smtpPort: peers.dovecot.submissionPort,
  });
  assert.equal(server.status, 201);
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX });
  storeTokens(mailroom.dataDir, server.json.id, MAILBOX, t, peers.authServer.tenantId);

  const accepted = new Set<string>();
  for (let batch = 0; batch < TOTAL / 50; batch++) {
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        api('POST', '/api/v1/messages', { from: MAILBOX, to: ['archive@remote.example'], subject: `Crash ${batch * 50 + i}`, text: 'x' }),
      ),
    );
    for (const r of replies) {
      assert.equal(r.status, 202);
      accepted.add(r.json.messageId);
    }
  }
  assert.equal(accepted.size, TOTAL);

  // Kill while the queue is draining.
  const killAt = 300;
  const deadline = Date.now() + 120_000;
  while (peers.sink.messages.length < killAt && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(peers.sink.messages.length >= killAt, 'the drain started');
  await mailroom.crash();
  const deliveredBeforeCrash = peers.sink.messages.length;
  assert.ok(deliveredBeforeCrash < TOTAL, `killed mid-drain (${deliveredBeforeCrash} delivered)`);

  const restartedAt = Date.now();
  mailroom = await startMailroomProcess(env, port, mailroom.dataDir);
  const done = restartedAt + 60_000;
  const delivered = () => new Set(peers.sink.messages.map((m) => messageIdOf(m.raw)));
  while (Date.now() < done) {
    if ([...accepted].every((id) => delivered().has(id))) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const ids = peers.sink.messages.map((m) => messageIdOf(m.raw));
  const missing = [...accepted].filter((id) => !ids.includes(id));
  assert.deepEqual(missing, [], `${missing.length} accepted messages were not delivered within 60 s of the restart`);
  const drainedIn = (Date.now() - restartedAt) / 1000;
  const duplicates = ids.length - new Set(ids).size;
  assert.ok(duplicates <= CONCURRENCY, `${duplicates} duplicates, more than the ${CONCURRENCY} messages in flight`);

  const sent = await api('GET', '/api/v1/messages?state=sent&limit=1');
  assert.equal(sent.status, 200);
  for (const state of ['queued', 'sending', 'failed', 'held']) {
    const r = await api('GET', `/api/v1/messages?state=${state}&limit=1`);
    assert.equal(r.json.items.length, 0, `no message left ${state}`);
  }
  console.log(`# crash test: ${deliveredBeforeCrash} delivered before SIGKILL, ${duplicates} duplicate(s), the rest delivered ${drainedIn.toFixed(1)} s after the restart`);
});
