import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { storeTokens } from '../helpers/connect-directly.ts';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { getToken, type TokenResponse } from '../peers/get-token.ts';
import { type Peers, startPeers } from '../peers/index.ts';

// The scale checks of bench/many-mailboxes.ts at 50 mailboxes: every mailbox a Dovecot user with its
// own token from the test authorization server, an outgoing server with Exchange's limits and an
// incoming server. INBOUND_MAX_IDLE_CONNECTIONS is 30, so 20 mailboxes are polled instead of
// watched. Mailroom runs as its own process with a clock the test moves (the polls' interval).
const CLIENT_ID = '5c2d8e1f-3a4b-4c6d-9e8f-7a6b5c4d3e2f';
const CLIENT_SECRET = 'Kp8Q~many.Mailboxes-Secret_Value~012345';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const N = 50;
const IDLE_CAP = 30;
const T = { timeout: 120_000 };
const userOf = (k: number) => `many${k}@example.test`;

let peers: Peers;
let mailroom: MailroomProcess;
let key: string;
let receiver: Server;
const hooks: Array<{ messageId: string; mailServerId: string }> = [];
const outgoing: string[] = [];
const incoming: string[] = [];
const api = apiClient(() => mailroom.baseUrl, () => key);

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }], connections: 4 * N });
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const p = JSON.parse(body) as { message: { messageId: string; serverId: string } };
      hooks.push({ messageId: p.message.messageId, mailServerId: p.message.serverId });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  mailroom = await startMailroomProcess(
    { MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost, NODE_EXTRA_CA_CERTS: peers.caFile, LOG_LEVEL: 'warn', INBOUND_MAX_IDLE_CONNECTIONS: String(IDLE_CAP), INBOUND_MAX_CONCURRENT_FETCHES: '4' },
    undefined,
    undefined,
    { clocked: true },
  );
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const hook = await api('POST', '/api/v1/webhooks', { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/erp`, description: 'ERP' });
  assert.equal(hook.status, 201, hook.text);
  const tokens: TokenResponse[] = [];
  for (let k = 0; k < N; k += 10) {
    await Promise.all(
      Array.from({ length: 10 }, async (_, j) => {
        tokens[k + j] = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: userOf(k + j) });
      }),
    );
  }
  for (let k = 0; k < N; k++) {
    const u = userOf(k);
    const out = await api('POST', '/api/v1/mail-servers', {
      name: `Out ${u}`, username: u, fromFilter: u, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, smtpHost: '127.0.0.1', smtpPort: peers.dovecot.submissionPort,
      maxConnections: 3, messagesPerMinute: 30, recipientsPerDay: 10000,
    });
    assert.equal(out.status, 201, out.text);
    storeTokens(mailroom.dataDir, out.json.id, u, tokens[k]!, peers.authServer.tenantId);
    outgoing.push(out.json.id);
    const inc = await api('POST', '/api/v1/incoming-servers', {
      name: `In ${u}`, imapHost: '127.0.0.1', imapPort: peers.dovecot.imapsPort, imapSecurity: 'tls', username: u, folder: 'INBOX', afterFetch: 'leave', intervalMinutes: 1, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET,
    });
    assert.equal(inc.status, 201, inc.text);
    storeTokens(mailroom.dataDir, inc.json.id, u, tokens[k]!, peers.authServer.tenantId);
    incoming.push(inc.json.id);
  }
});

after(async () => {
  await mailroom?.stop();
  await new Promise((r) => receiver?.close(r));
  await peers?.stop();
});

const fromSink = (user: string, tag: string) => peers.sink.messages.filter((m) => m.from === user && m.raw.toString('latin1').includes(`X-Scale-Run: ${tag}`));

test('one paced mailbox with 100 queued does not delay the 49 others; each message leaves through its own mailbox', T, async () => {
  const busy = userOf(0);
  const post = (from: string, i: number) => api('POST', '/api/v1/messages', { from, to: [`customer${i}@remote.example`], subject: `Quotation ${from} ${i}`, text: 'x', headers: { 'X-Scale-Run': 'fair' } });
  for (let i = 0; i < 100; i += 25) for (const r of await Promise.all(Array.from({ length: 25 }, (_, j) => post(busy, i + j)))) assert.equal(r.status, 202, r.text);
  const t0 = Date.now();
  for (const r of await Promise.all(Array.from({ length: N - 1 }, (_, k) => post(userOf(k + 1), 0)))) assert.equal(r.status, 202, r.text);
  await waitFor('one message from each of the 49 other mailboxes', async () => (Array.from({ length: N - 1 }, (_, k) => fromSink(userOf(k + 1), 'fair').length).every((n) => n === 1) ? true : undefined), 60_000, 100);
  const ms = Date.now() - t0;
  // The others were not queued behind the busy mailbox, which is held to its 30 a minute (the test's
  // clock runs with real time here): a minute after its first sends it may send 30 more, so the check
  // is on the sink's receipt times, not on how many arrived by now. A send counts in Mailroom's window
  // from when it ended (after the sink got it) and the next one starts after the window, so no 58 s of
  // receipts may hold more than 30.
  assert.ok(ms < 45_000, `the other mailboxes waited ${ms} ms`);
  const paced = fromSink(busy, 'fair');
  const times = paced.map((m) => m.receivedAt.getTime()).sort((a, b) => a - b);
  // Which messages went (a message sent twice shows twice).
  const which = paced.map((m) => /Subject: Quotation (\S+ \d+)/.exec(m.raw.toString('latin1'))?.[1]).join(',');
  assert.ok(times.length > 0, 'the paced mailbox sent too');
  const densest = Math.max(...times.map((t) => times.filter((u) => u >= t && u < t + 58_000).length));
  assert.ok(densest <= 30, `${densest} messages of the paced mailbox went within 58 s: ${times.map((t) => t - times[0]!).join(',')} ms; messages ${which}`);
  // The envelope sender is the mailbox that logged in (Dovecot submission relays as the
  // authenticated user): each message went through its own mailbox's server.
  for (let k = 1; k < N; k++) {
    const [m] = fromSink(userOf(k), 'fair');
    assert.ok(m!.raw.toString('latin1').includes(`Subject: Quotation ${userOf(k)} 0`), `message of ${userOf(k)} sent through another mailbox`);
  }
  const servers = (await api('GET', '/api/v1/mail-servers')).json.items as Array<{ id: string; sending: { queued: number } }>;
  assert.ok(servers.find((s) => s.id === outgoing[0])!.sending.queued >= 60, 'the paced mailbox still has its queue');
});

test(`${N} mailboxes watched: IDLE up to INBOUND_MAX_IDLE_CONNECTIONS (${IDLE_CAP}), the rest polled; every message arrives once, through its own server`, T, async () => {
  const stats = await waitFor(`${IDLE_CAP} IDLE connections`, async () => {
    const items = (await api('GET', '/api/v1/incoming-servers')).json.items as Array<{ id: string; idle: boolean; lastFetchAt: string | null }>;
    const mine = items.filter((i) => incoming.includes(i.id));
    return mine.filter((i) => i.idle).length >= IDLE_CAP && mine.every((i) => i.lastFetchAt) ? mine : undefined;
  }, 60_000, 500);
  assert.equal(stats.filter((i) => i.idle).length, IDLE_CAP, 'never more IDLE connections than the cap');
  // The first fetch of a watched mailbox goes over its IDLE connection: one IMAP login per mailbox at
  // start (Dovecot logs each), not one for the fetch and another for IDLE.
  const logins = new Map<string, number>();
  for (const m of readFileSync(peers.dovecot.logFile, 'utf8').matchAll(/imap-login: (?:Info: )?Login: user=<([^>]+)>/g)) logins.set(m[1]!, (logins.get(m[1]!) ?? 0) + 1);
  for (let k = 0; k < N; k++) assert.equal(logins.get(userOf(k)), 1, `IMAP logins of ${userOf(k)} at start`);
  const before = hooks.length;
  for (let k = 0; k < N; k += 10) {
    await Promise.all(Array.from({ length: 10 }, (_, j) => peers.dovecot.deliver(userOf(k + j), [`From: Customer <customer@sender.example>`, `To: ${userOf(k + j)}`, `Subject: Reply ${k + j}`, `Message-ID: <scale-${k + j}@sender.example>`, 'Content-Type: text/plain; charset=utf-8', '', 'Re: your quotation.', ''].join('\r\n'))));
  }
  // The watched mailboxes' mail comes within seconds, with no clock moved.
  const watched = new Set(stats.filter((i) => i.idle).map((i) => i.id));
  await waitFor('the watched mailboxes\' messages', async () => (hooks.slice(before).filter((h) => watched.has(h.mailServerId)).length >= IDLE_CAP ? true : undefined), 60_000, 100);
  // The polled ones at their interval (1 minute): move the clock past it.
  await mailroom.advanceClock(61_000);
  await waitFor(`all ${N} messages at the webhook`, async () => (hooks.length - before >= N ? true : undefined), 60_000, 200);
  await new Promise((r) => setTimeout(r, 1500)); // a duplicate would come now
  const got = hooks.slice(before);
  assert.equal(got.length, N, 'each message once');
  for (const h of got) {
    const k = Number(/<scale-(\d+)@/.exec(h.messageId)![1]);
    assert.equal(h.mailServerId, incoming[k], `${h.messageId} imported by another mailbox's server`);
  }
});

test('a connection per watched mailbox is not taken for a listener leak: no MaxListeners warning in the log', T, () => {
  // 30 IDLE connections each listen for shutdown; Node warns past 10 listeners unless told otherwise.
  assert.doesNotMatch(mailroom.output(), /MaxListenersExceeded/);
});
