// Token single-flight, end to end: 1,000 queued messages, the stored access token already expired, the
// worker drains them all at once (OUTBOX_CONCURRENCY = 1,000 messages in flight over a pool of
// OUTBOX_POOL_SIZE connections, each logging in with a token from the token manager). Counts the POSTs
// the OAuth server's token endpoint receives during the drain: Mailroom must make exactly one refresh.
// Baseline in the same run: the naive approach without single-flight, 1,000 concurrent refresh_token
// requests straight to the same token endpoint (one per send), on a grant of its own.
//
//   node --import tsx bench/token-single-flight.ts
//
// Env: BENCH_MESSAGES (1000), OUTBOX_POOL_SIZE (8; the test Dovecot allows 10 connections per user and IP).
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { refreshTokens } from '../test/peers/get-token.ts';
import { envNumber, header, runBenchmark, table } from './lib.ts';
import { arrivals, benchPeers, CLIENT_ID, CLIENT_SECRET, connect, fetchToken, MAILBOX, mailroomWithServer, RECIPIENT, restartMailroom } from './peers.ts';

const MESSAGES = envNumber('BENCH_MESSAGES', 1000);
const POOL = envNumber('OUTBOX_POOL_SIZE', 8);
const CONCURRENCY = Math.min(MESSAGES, 1000);

/** Marks the stored access token as expired an hour ago, as if Mailroom had been idle for a while. */
function expireAccessToken(dataDir: string, serverId: string): void {
  const db = new SQLite(join(dataDir, 'mailroom.sqlite'));
  try {
    db.pragma('busy_timeout = 5000');
    const r = db.prepare('update oauth_tokens set access_token_expires_at = ? where mail_server_id = ?').run(new Date(Date.now() - 3600_000).toISOString(), serverId);
    if (r.changes !== 1) throw new Error('no stored token to expire');
  } finally {
    db.close();
  }
}

function outboxSummary(dataDir: string): string {
  const db = new SQLite(join(dataDir, 'mailroom.sqlite'), { readonly: true });
  try {
    const rows = db.prepare('select state, count(*) as n, max(attempts) as maxAttempts from outbox_messages group by state').all() as Array<{ state: string; n: number; maxAttempts: number }>;
    return rows.map((r) => `${r.n} ${r.state} (max ${r.maxAttempts} attempt${r.maxAttempts === 1 ? '' : 's'})`).join(', ');
  } finally {
    db.close();
  }
}

function storedToken(dataDir: string, serverId: string): { status: string; expiresAt: string; version: number } {
  const db = new SQLite(join(dataDir, 'mailroom.sqlite'), { readonly: true });
  try {
    return db.prepare('select status, access_token_expires_at as expiresAt, version from oauth_tokens where mail_server_id = ?').get(serverId) as {
      status: string;
      expiresAt: string;
      version: number;
    };
  } finally {
    db.close();
  }
}

runBenchmark('token-single-flight', 170, async () => {
  header('Token single-flight: 1,000 sends with an expired access token → token-endpoint requests');
  const peers = await benchPeers();
  const as = peers.authServer;

  // 1. Queue the messages with the worker off, then stop that process.
  const first = await mailroomWithServer(peers, { OUTBOX_WORKER: 'off', LOG_LEVEL: 'warn' });
  const tag = randomUUID();
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < MESSAGES) {
        const i = next++;
        const r = await first.api('POST', '/api/v1/messages', { from: MAILBOX, to: [RECIPIENT], subject: `Invoice ${i}`, text: 'Please find your invoice details below.', headers: { 'X-Bench-Run': tag } });
        if (r.status !== 202) throw new Error(`POST /api/v1/messages: HTTP ${r.status} ${JSON.stringify(r.json)}`);
      }
    }),
  );
  await first.mr.stop();

  // 2. Connect the mailbox with a token that expired an hour ago (the refresh token is valid).
  connect(first, peers, await fetchToken(peers));
  expireAccessToken(first.mr.dataDir, first.serverId);
  const before = storedToken(first.mr.dataDir, first.serverId);

  // 3. Start Mailroom on the same data with the worker on; count token-endpoint POSTs until all arrived.
  const arrived = arrivals(peers, tag, MESSAGES, 120_000);
  const count0 = as.tokenRequestCount();
  const t0 = performance.now();
  const second = await restartMailroom(first, peers, { OUTBOX_CONCURRENCY: String(CONCURRENCY), OUTBOX_POOL_SIZE: String(POOL), LOG_LEVEL: 'warn' });
  await arrived.done.catch((e: Error) => {
    throw new Error(`${e.message}; ${arrived.count()} of ${MESSAGES} at the sink; mailroom log:\n${second.logTail()}`);
  });
  const drainSeconds = (performance.now() - t0) / 1000;
  const mailroomRequests = as.tokenRequestCount() - count0;
  await second.stop();
  const after = storedToken(first.mr.dataDir, first.serverId);
  const outbox = outboxSummary(first.mr.dataDir);

  // 4. Baseline: every send refreshes for itself, 1,000 at once, on a grant of its own.
  const naive = await fetchToken(peers, 'naive@example.test');
  const authority = { authorityHost: as.authorityHost, ca: peers.ca.caPem };
  const count1 = as.tokenRequestCount();
  const t1 = performance.now();
  const replies = await Promise.all(Array.from({ length: MESSAGES }, () => refreshTokens(authority, { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET }, naive.refresh_token)));
  const naiveSeconds = (performance.now() - t1) / 1000;
  const naiveRequests = as.tokenRequestCount() - count1;
  const ok = replies.filter((r) => r.status === 200).length;
  const errors = new Map<string, number>();
  const firstDescription = new Map<string, string>();
  for (const r of replies) {
    if (r.status === 200) continue;
    const code = `${String(r.body.error)} AADSTS${String((r.body.error_codes as number[] | undefined)?.[0] ?? '?')}`;
    errors.set(code, (errors.get(code) ?? 0) + 1);
    if (!firstDescription.has(code)) firstDescription.set(code, String(r.body.error_description).split('\r\n')[0]!);
  }

  console.log(`# ${MESSAGES} messages · Mailroom OUTBOX_CONCURRENCY=${CONCURRENCY} OUTBOX_POOL_SIZE=${POOL} · stored access token expired at ${before.expiresAt}`);
  console.log('');
  table([
    {
      approach: 'Mailroom (single-flight token manager)',
      sends: MESSAGES,
      'token-endpoint requests': mailroomRequests,
      seconds: drainSeconds,
      outcome: `${MESSAGES} at the sink; outbox: ${outbox}; token ${after.status}, version ${before.version} → ${after.version}`,
    },
    {
      approach: 'naive: one refresh per send, concurrently',
      sends: MESSAGES,
      'token-endpoint requests': naiveRequests,
      seconds: naiveSeconds,
      outcome: `${ok} × 200, ${[...errors].map(([k, v]) => `${v} × ${k}`).join(', ') || 'no errors'}`,
    },
  ]);
  console.log('');
  console.log(`token-endpoint requests: Mailroom ${mailroomRequests} (must be exactly 1: ${mailroomRequests === 1 ? 'met' : 'NOT MET'}) · naive ${naiveRequests} · ratio naive / Mailroom = ${(naiveRequests / Math.max(1, mailroomRequests)).toFixed(0)}`);
  for (const [code, text] of firstDescription) console.log(`# naive, ${code}: ${text}`);
  console.log('# seconds: Mailroom = process start to the last message at the sink; naive = the refresh requests alone');
  if (mailroomRequests !== 1) process.exitCode = 1;
});
