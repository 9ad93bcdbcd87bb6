import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { storeTokens } from '../helpers/connect-directly.ts';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { getToken } from '../peers/get-token.ts';
import { type Peers, startPeers } from '../peers/index.ts';
import { type SmtpSink, startSmtpSink } from '../peers/smtp-sink.ts';

// Exchange Online's per-mailbox limits against a stand-in that enforces them with Microsoft's replies
// (test/peers/smtp-sink.ts, submission mode: STARTTLS, XOAUTH2 checked by introspection at the
// authorization server, 3 sessions per mailbox, a daily recipient quota on its own clock). Mailroom
// runs as its own process with a clock the test moves, the stand-in's clock moves with it.
const CLIENT_ID = '7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
const CLIENT_SECRET = 'Lm8Q~limits.Test-Secret_Value~0123456789';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const BURST = 'burst@example.test';
const RATE = 'rate@example.test';
const QUOTA = 'quota@example.test';
const SHARED = 'shared@example.test';
const DAY_MS = 24 * 3600_000;
const T = { timeout: 240_000 };

let peers: Peers;
let exchange: SmtpSink;
let mailroom: MailroomProcess;
let key: string;
let offsetMs = 0;
const servers: Record<string, string> = {};
const api = apiClient(() => mailroom.baseUrl, () => key);

async function advance(ms: number) {
  offsetMs += ms;
  await mailroom.advanceClock(ms);
}

async function addServer(mailbox: string, limits: Record<string, number | null>) {
  const s = await api('POST', '/api/v1/mail-servers', {
    name: mailbox,
    username: mailbox,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    smtpHost: '127.0.0.1',
    smtpPort: exchange.port,
    fromFilter: mailbox,
    ...limits,
  });
  assert.equal(s.status, 201, s.text);
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: mailbox });
  storeTokens(mailroom.dataDir, s.json.id, mailbox, t, peers.authServer.tenantId);
  servers[mailbox] = s.json.id;
}

const delivered = (mailbox: string) => exchange.messages.filter((m) => m.from === mailbox).length;
const refused = (mailbox: string, code: string) => exchange.refusals.filter((r) => r.user === mailbox && r.reply.startsWith(code)).length;

async function sendMany(mailbox: string, n: number, rcpts = 1): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 50) {
    const replies = await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, (_, j) =>
        api('POST', '/api/v1/messages', { from: mailbox, to: Array.from({ length: rcpts }, (_, r) => `r${r}.${i + j}@remote.example`), subject: `${mailbox} ${i + j}`, text: 'x' }),
      ),
    );
    for (const r of replies) {
      assert.equal(r.status, 202, r.text);
      ids.push(r.json.id);
    }
  }
  return ids;
}

const server = async (mailbox: string) => (await api('GET', `/api/v1/mail-servers/${servers[mailbox]}`)).json;

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  exchange = await startSmtpSink({
    submission: {
      tls: { cert: peers.ca.cert, key: peers.ca.key },
      introspectionUrl: peers.authServer.httpIntrospectionUrl,
      sessionsPerUser: 3,
      recipientsPerDay: { [QUOTA]: 5, [SHARED]: 3 },
      now: () => new Date(Date.now() + offsetMs),
    },
  });
  mailroom = await startMailroomProcess(
    { MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost, NODE_EXTRA_CA_CERTS: peers.caFile, LOG_LEVEL: 'warn', OUTBOX_RETRY_BASE_SECONDS: '0.2' },
    undefined,
    undefined,
    { clocked: true },
  );
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  // Exchange's numbers, as a Microsoft host gets them by default; the burst and quota servers change one each.
  const exchangeLimits = { maxConnections: 3, messagesPerMinute: 30, recipientsPerDay: 10000, recipientsPerMessage: 500 };
  await addServer(BURST, { ...exchangeLimits, messagesPerMinute: null });
  await addServer(RATE, exchangeLimits);
  await addServer(QUOTA, { ...exchangeLimits, recipientsPerDay: 5 });
  await addServer(SHARED, exchangeLimits);
});

after(async () => {
  await mailroom?.stop();
  await exchange?.close();
  await peers?.stop();
});

test('a 300-message burst with Test Connection and Send test email in the middle never opens a fourth connection: no 432', T, async () => {
  // OUTBOX_POOL_SIZE is 4 by default: the server's 3 connections are the bound.
  const ids = await sendMany(BURST, 300);
  await waitFor('the burst to start', async () => (delivered(BURST) >= 20 ? true : undefined), 60_000, 20);
  const id = servers[BURST];
  const checks = await Promise.all([
    api('POST', `/api/v1/mail-servers/${id}/test`),
    api('POST', `/api/v1/mail-servers/${id}/test`),
    api('POST', `/api/v1/mail-servers/${id}/send-test`, { to: 'admin@remote.example' }),
  ]);
  for (const c of checks) assert.equal(c.json.ok, true, c.text);
  await waitFor('300 delivered', async () => (delivered(BURST) >= 301 ? true : undefined), 180_000, 100);
  assert.equal(refused(BURST, '432'), 0, 'no 432 4.3.2 sender thread limit exceeded');
  assert.ok(exchange.peakSessions.get(BURST)! <= 3, `at most 3 sessions at once (saw ${exchange.peakSessions.get(BURST)})`);
  assert.equal(exchange.peakSessions.get(BURST), 3, 'and the pool did use all three');
  const states = await Promise.all(ids.slice(0, 5).map(async (m) => (await api('GET', `/api/v1/messages/${m}`)).json.state));
  assert.deepEqual(states, ['sent', 'sent', 'sent', 'sent', 'sent']);
});

test('30 messages a minute: 35 queued, 30 go at once, the rest when the minute has passed, with the next send time shown', T, async () => {
  await sendMany(RATE, 35);
  await waitFor('30 delivered', async () => (delivered(RATE) >= 30 ? true : undefined), 60_000, 50);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(delivered(RATE), 30, 'no more than 30 in the minute');
  const s = await server(RATE);
  assert.equal(s.sending.messagesLastMinute, 30);
  assert.equal(s.sending.queued, 5);
  const wait = Date.parse(s.sending.nextSendAt) - (Date.now() + offsetMs);
  assert.ok(wait > 50_000 && wait <= 60_000, `next send in about a minute (${wait} ms)`);
  await advance(61_000);
  await waitFor('the other 5', async () => (delivered(RATE) >= 35 ? true : undefined), 30_000, 50);
  assert.equal(refused(RATE, '432'), 0);
});

test('the daily recipient limit holds mail with its resume time (never failed), and releases it after the 24-hour window', T, async () => {
  const ids = await sendMany(QUOTA, 7);
  await waitFor('5 delivered', async () => (delivered(QUOTA) >= 5 ? true : undefined), 30_000, 50);
  const held = await waitFor('2 held', async () => {
    const ms = await Promise.all(ids.map(async (m) => (await api('GET', `/api/v1/messages/${m}`)).json));
    const h = ms.filter((m) => m.state === 'held');
    return h.length === 2 ? h : undefined;
  });
  assert.equal(delivered(QUOTA), 5);
  assert.equal(refused(QUOTA, '554'), 0, 'Mailroom stopped before Exchange had to refuse');
  assert.equal(held[0].lastError.code, 'MR_SEND_QUOTA_REACHED');
  assert.match(held[0].lastError.message, /limit of 5 recipients in 24 hours \(Recipients per day\).*goes out by itself from/);
  const s = await server(QUOTA);
  assert.equal(s.sending.recipientsToday, 5);
  assert.equal(s.sending.recipientsPerDay, 5);
  assert.equal(s.sending.held, 2);
  const resume = Date.parse(s.sending.heldUntil);
  const firstSent = Math.min(...exchange.messages.filter((m) => m.from === QUOTA).map((m) => m.receivedAt.getTime())) + offsetMs;
  assert.ok(Math.abs(resume - (firstSent + DAY_MS)) < 5_000, 'resumes when the first recipient leaves the 24-hour window');
  const health = (await api('GET', '/api/v1/health/servers')).json.items.find((x: { id: string }) => x.id === servers[QUOTA]);
  assert.equal(health.sending.heldUntil, s.sending.heldUntil);

  await advance(DAY_MS - 3600_000);
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(delivered(QUOTA), 5, 'still held an hour before the window frees');
  await advance(3600_000 + 10_000);
  await waitFor('the held two delivered', async () => (delivered(QUOTA) >= 7 ? true : undefined), 30_000, 100);
  for (const m of ids) assert.equal((await api('GET', `/api/v1/messages/${m}`)).json.state, 'sent');
});

test('Exchange\'s own 554 5.2.0 SubmissionQuotaExceededException (the mailbox used by others too) holds the server\'s mail until the window', T, async () => {
  // Mailroom allows 10,000 a day; the stand-in has only 3 left for this mailbox.
  const ids = await sendMany(SHARED, 4);
  const held = await waitFor('one held', async () => {
    const ms = await Promise.all(ids.map(async (m) => (await api('GET', `/api/v1/messages/${m}`)).json));
    return ms.filter((m) => m.state === 'sent').length === 3 ? ms.find((m) => m.state === 'held') : undefined;
  });
  assert.equal(refused(SHARED, '554'), 1);
  assert.equal(held.lastError.code, 'SMTP_554_5.2.0_QUOTA');
  assert.equal(held.lastError.evidence.responseCode, 554);
  assert.equal(held.attempts, 0, 'a hold is not an attempt');
  const s = await server(SHARED);
  assert.ok(Date.parse(s.sending.heldUntil) > Date.now() + offsetMs + 23 * 3600_000, 'held until our oldest send of the day leaves the window');
  await advance(DAY_MS + 10_000);
  await waitFor('delivered after the window', async () => (delivered(SHARED) >= 4 ? true : undefined), 30_000, 100);
});
