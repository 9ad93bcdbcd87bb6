import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import SQLite from 'better-sqlite3';
import { apiClient, waitFor } from '../helpers/e2e.ts';
import { storeTokens } from '../helpers/connect-directly.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { assertResponsive, rssMb, watchRss } from '../helpers/process-health.ts';
import { getToken } from '../peers/get-token.ts';
import { GRAPH_RESOURCE, type Peers, startPeers } from '../peers/index.ts';
import { type GraphServer, startGraphServer } from '../peers/graph-server.ts';

// Microsoft Graph answers Mailroom must not trust (issue #18): links to another origin, bodies that
// never end, JSON of the wrong shape, messages too large, too many parts or too deep, and throttling.
// Each case: Mailroom stays up and /healthz answers fast, memory stays bounded, no token reaches the
// other origin, nothing of a bad page is committed, the next good message is imported, and the admin
// reads what was refused and what to do.
const CLIENT_ID = '2d7c1f0e-8a3b-4e5d-9c6f-0a1b2c3d4e5f';
const CLIENT_SECRET = 'Hg7Q~hostile.Graph-Secret_Value~0123456789';
const MAILBOX = 'hostile-graph@example.test';
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const T = { timeout: 120_000 };
const SCOPE = ['openid', 'profile', 'email', 'offline_access', `${GRAPH_RESOURCE}/Mail.Send`, `${GRAPH_RESOURCE}/Mail.ReadWrite`, `${GRAPH_RESOURCE}/User.Read`].join(' ');
/** INBOUND_MAX_MESSAGE_MB for this test: a $value past it is cut there. */
const MAX_MESSAGE_MB = 4;
/** What one refused answer may add to Mailroom's memory (a 16 MB JSON cap, a 4 MB message cap, buffers). */
const RSS_BOUND_MB = 120;
/** A path and query only Mailroom and the stand-in know: it must appear in no error. */
const SECRET_QUERY = '$skiptoken=secret-skiptoken-4711';

let peers: Peers;
let graph: GraphServer;
let mailroom: MailroomProcess;
let foreign: https.Server;
let foreignOrigin: string;
const foreignRequests: Array<{ path: string; token: boolean }> = [];
let key: string;
let incomingId: string;
let outgoingId: string;
let n = 0;

const api = apiClient(() => mailroom.baseUrl, () => key);

function mime(subject: string, body = 'Hello through Graph.'): string {
  return ['From: Customer <customer@sender.example>', `To: ${MAILBOX}`, `Subject: ${subject}`, `Message-ID: <hostile-${++n}-${Date.now()}@sender.example>`, 'Date: Sat, 28 Nov 2026 09:00:00 +0000', 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', body, ''].join('\r\n');
}

/** 1,001 parts in one multipart (the audit's 1.08 MB message: mailparser's child-node limit is 1,000). */
function manyParts(): string {
  const parts = Array.from({ length: 1001 }, (_, i) => `--b\r\nContent-Type: text/plain\r\n\r\n${'part '.repeat(200)}${i}\r\n`).join('');
  return [`From: x@sender.example`, `To: ${MAILBOX}`, 'Subject: Many parts', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b"', '', parts + '--b--', ''].join('\r\n');
}

/** 5,000 multiparts nested in one another (the audit's 342 KB message). */
function deepNesting(): string {
  const depth = 5000;
  let open = '';
  let close = '';
  for (let i = 0; i < depth; i++) {
    open += `--d${i}\r\nContent-Type: multipart/mixed; boundary="d${i + 1}"\r\n\r\n`;
    close = `--d${i}--\r\n` + close;
  }
  return [`From: x@sender.example`, `To: ${MAILBOX}`, 'Subject: Deep', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="d0"', '', `${open}--d${depth}\r\nContent-Type: text/plain\r\n\r\ndeep\r\n--d${depth}--\r\n${close}`].join('\r\n');
}

const server = async () => (await api('GET', `/api/v1/incoming-servers/${incomingId}`)).json;
const imported = async () => (await server()).importedCount as number;

/** Fetch Now, and the finished run's state (its error, if it failed). */
async function fetchOnce(): Promise<{ error: { code: string; message: string; fix?: string } | null; importedCount: number; lastError: unknown }> {
  const r = await api('POST', `/api/v1/incoming-servers/${incomingId}/fetch`);
  assert.ok([200, 202, 204].includes(r.status), r.text);
  return waitFor('the fetch to finish', async () => {
    const s = await server();
    return s.fetch && !s.fetch.running ? { error: s.fetch.error, importedCount: s.importedCount, lastError: s.lastError } : undefined;
  }, 90_000);
}

/**
 * Runs one hostile case around `body`: RSS sampled throughout, then the checks every case shares —
 * alive and fast, memory bounded, no token at the foreign origin.
 */
async function hostileCase<R>(body: () => Promise<R>): Promise<R> {
  const base = rssMb(mailroom.pid);
  const rss = watchRss(mailroom.pid);
  try {
    return await body();
  } finally {
    const peak = rss.stop();
    assert.ok(peak - base < RSS_BOUND_MB, `RSS grew ${Math.round(peak - base)} MB (from ${Math.round(base)} MB): more than ${RSS_BOUND_MB} MB`);
    const took = await assertResponsive(mailroom.baseUrl, 1000);
    assert.ok(took < 1000, `/healthz took ${took} ms`);
    assert.deepEqual(foreignRequests.filter((r) => r.token), [], 'no request with a token reached the other origin');
    assert.equal(foreignRequests.length, 0, 'no request at all reached the other origin');
  }
}

/** The admin's view of a refused answer: the catalogue code, plain words naming it, the fix; never the link's path or query. */
function assertExplained(error: { code: string; message: string; fix?: string } | null, code: string, words: RegExp, fix: RegExp): void {
  assert.ok(error, 'the fetch failed');
  assert.equal(error.code, code, JSON.stringify(error));
  assert.match(error.message, words);
  assert.match(error.fix ?? '', fix);
  assert.ok(!error.message.includes('secret-skiptoken') && !(error.fix ?? '').includes('secret-skiptoken'), 'the link\'s query is not repeated');
}

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [TOKEN_REDIRECT] }] });
  graph = await startGraphServer({ tls: { cert: peers.ca.cert, key: peers.ca.key }, introspectionUrl: peers.authServer.httpIntrospectionUrl, mailboxes: [MAILBOX] });
  // Another origin on this machine that answers like Graph would: had Mailroom followed a link there,
  // it would have sent its token and taken the answer.
  foreign = https.createServer({ cert: peers.ca.cert, key: peers.ca.key }, (req, res) => {
    foreignRequests.push({ path: req.url ?? '', token: /^Bearer /.test(req.headers.authorization ?? '') });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ value: [], '@odata.deltaLink': `${foreignOrigin}/v1.0/delta?$deltatoken=1` }));
  });
  await new Promise<void>((r) => foreign.listen(0, '127.0.0.1', r));
  foreignOrigin = `https://127.0.0.1:${(foreign.address() as AddressInfo).port}`;
  mailroom = await startMailroomProcess({
    MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost,
    MICROSOFT_GRAPH_HOST: graph.url,
    NODE_EXTRA_CA_CERTS: peers.caFile,
    INBOUND_MAX_MESSAGE_MB: String(MAX_MESSAGE_MB),
    OUTBOX_RETRY_BASE_SECONDS: '0.2',
  });
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  const s = await api('POST', '/api/v1/incoming-servers', { name: 'Hostile Graph', serverType: 'graph', username: MAILBOX, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, folder: 'INBOX', afterFetch: 'leave', intervalMinutes: 1440 });
  assert.equal(s.status, 201, s.text);
  incomingId = s.json.id;
  const o = await api('POST', '/api/v1/mail-servers', { name: 'Hostile Graph sending', username: MAILBOX, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, sendUsing: 'graph' });
  assert.equal(o.status, 201, o.text);
  outgoingId = o.json.id;
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX, scope: SCOPE });
  storeTokens(mailroom.dataDir, incomingId, MAILBOX, t, peers.authServer.tenantId);
  storeTokens(mailroom.dataDir, outgoingId, MAILBOX, t, peers.authServer.tenantId);
  // A first round: the folder state holds a good deltaLink from here on.
  graph.deliver(MAILBOX, mime('Before'));
  const first = await fetchOnce();
  assert.equal(first.error, null, JSON.stringify(first));
  assert.equal(first.importedCount, 1);
});

after(async () => {
  if (process.env.E2E_DEBUG) (await import('node:fs')).writeFileSync('/tmp/mailroom-hostile-graph.log', mailroom?.output() ?? '');
  await mailroom?.stop();
  foreign?.closeAllConnections();
  await new Promise((r) => foreign?.close(r));
  await graph?.close();
  await peers?.stop();
});

for (const which of ['@odata.nextLink', '@odata.deltaLink'] as const) {
  test(`a delta page whose ${which} names another origin is refused: no token goes there, nothing of the page is committed, the next fetch starts from the last good link`, T, async () => {
    const before = await imported();
    for (let i = 0; i < 3; i++) graph.deliver(MAILBOX, mime(`Behind a foreign ${which} ${i}`));
    graph.nextDelta({
      rewrite: (page) => {
        const { ['@odata.nextLink']: _n, ['@odata.deltaLink']: _d, ...rest } = page;
        return { ...rest, [which]: `${foreignOrigin}/v1.0/users/${MAILBOX}/mailFolders/inbox/messages/delta?${SECRET_QUERY}` };
      },
    });
    await hostileCase(async () => {
      const mark = graph.requests.length;
      const r = await fetchOnce();
      assertExplained(r.error, 'GRAPH_ForeignLink', new RegExp(`${which}.*points to ${foreignOrigin.replace(/\./g, '\\.')}, not to Microsoft Graph`), /MICROSOFT_GRAPH_HOST/);
      assert.ok(!r.error!.message.includes('/v1.0/users'), 'the foreign link\'s path is not repeated');
      assert.ok(!JSON.stringify(r.lastError).includes('secret-skiptoken') && !mailroom.output().includes('secret-skiptoken'), 'neither the stored error nor the log repeats the link\'s query');
      assert.equal(r.importedCount, before, 'nothing of the page is committed');
      assert.equal(graph.requests.slice(mark).filter((q) => q.path.endsWith('/$value')).length, 0, 'nothing of the page is downloaded');
      const next = await fetchOnce();
      assert.equal(next.error, null, JSON.stringify(next));
      assert.equal(next.importedCount, before + 3, 'the page\'s messages are imported from the last good link');
    });
  });
}

test('a stored deltaLink at another origin (kept from before links were checked) is refused, not followed', T, async () => {
  const db = new SQLite(join(mailroom.dataDir, 'mailroom.sqlite'));
  db.pragma('busy_timeout = 5000');
  const good = (db.prepare('select delta_link from inbound_folder_states where mail_server_id = ?').get(incomingId) as { delta_link: string }).delta_link;
  assert.ok(good.startsWith(graph.url));
  db.prepare('update inbound_folder_states set delta_link = ? where mail_server_id = ?').run(`${foreignOrigin}/v1.0/delta?${SECRET_QUERY}`, incomingId);
  try {
    await hostileCase(async () => {
      const r = await fetchOnce();
      assertExplained(r.error, 'GRAPH_ForeignLink', /stored @odata\.deltaLink points to https:\/\/127\.0\.0\.1:\d+, not to Microsoft Graph/, /MICROSOFT_GRAPH_HOST/);
    });
  } finally {
    db.prepare('update inbound_folder_states set delta_link = ? where mail_server_id = ?').run(good, incomingId);
    db.close();
  }
  const before = await imported();
  graph.deliver(MAILBOX, mime('After the stored link'));
  const next = await fetchOnce();
  assert.equal(next.error, null, JSON.stringify(next));
  assert.equal(next.importedCount, before + 1);
});

test('delta pages of the wrong JSON types are refused with the field named, nothing committed; the next good page is imported', T, async () => {
  const cases: Array<{ rewrite: (p: Record<string, unknown>) => unknown; words: RegExp }> = [
    { rewrite: () => ({ value: 5 }), words: /"value" is number 5, not an array of messages/ },
    { rewrite: (p) => ({ ...p, value: [7, ...(p.value as unknown[])] }), words: /value\[0\] is number, not a message/ },
    { rewrite: (p) => ({ ...p, value: [{ id: 42 }] }), words: /value\[0\]\.id is number, not a string/ },
    { rewrite: (p) => ({ value: p.value, '@odata.deltaLink': 7 }), words: /a link is not a string/ },
    { rewrite: () => [1, 2, 3], words: /the body is an array, not an object/ },
  ];
  for (const c of cases) {
    const before = await imported();
    graph.deliver(MAILBOX, mime('Behind a wrong type'));
    graph.nextDelta({ rewrite: c.rewrite });
    await hostileCase(async () => {
      const r = await fetchOnce();
      assertExplained(r.error, 'GRAPH_InvalidResponse', c.words, /last good link/);
      assert.equal(r.importedCount, before, 'nothing committed from the bad page');
    });
    const next = await fetchOnce();
    assert.equal(next.error, null, JSON.stringify(next));
    assert.equal(next.importedCount, before + 1, 'the good page after it is imported');
  }
});

test('a delta body that never ends (or announces 400 MB) is cut at 16 MB: memory bounded, explained, the next fetch imports', T, async () => {
  for (const answer of [{ endless: true as const }, { declared: 400 * 1024 * 1024 }]) {
    const before = await imported();
    graph.deliver(MAILBOX, mime('Behind an endless page'));
    graph.nextDelta(answer);
    const sentBefore = graph.hostileBytes;
    await hostileCase(async () => {
      const started = Date.now();
      const r = await fetchOnce();
      assertExplained(r.error, 'GRAPH_ResponseTooLarge', /larger than 16 MB; Mailroom stopped reading it/, /MICROSOFT_GRAPH_HOST/);
      assert.ok(Date.now() - started < 30_000, 'cut at the cap, not at a deadline');
      const sent = (graph.hostileBytes - sentBefore) / 1024 / 1024;
      assert.ok(sent < ('declared' in answer ? 8 : 16 + 24), `the stand-in wrote ${sent.toFixed(1)} MB before Mailroom hung up`);
      assert.equal(r.importedCount, before);
    });
    const next = await fetchOnce();
    assert.equal(next.error, null, JSON.stringify(next));
    assert.equal(next.importedCount, before + 1);
  }
});

test('a $value that never ends is cut at INBOUND_MAX_MESSAGE_MB and imported as too large without content; the messages around it are imported in the same fetch', T, async () => {
  const before = await imported();
  graph.deliver(MAILBOX, mime('Before the endless one'));
  graph.deliver(MAILBOX, mime('Endless', 'x'.repeat(1000)), { endless: true });
  graph.deliver(MAILBOX, mime('After the endless one'));
  const sentBefore = graph.hostileBytes;
  await hostileCase(async () => {
    const r = await fetchOnce();
    assert.equal(r.error, null, JSON.stringify(r));
    assert.equal(r.importedCount, before + 3);
    const sent = (graph.hostileBytes - sentBefore) / 1024 / 1024;
    assert.ok(sent < MAX_MESSAGE_MB + 24, `the stand-in wrote ${sent.toFixed(1)} MB of the endless message`);
  });
  const items = (await api('GET', `/api/v1/inbound-messages?serverId=${incomingId}&limit=200`)).json.items as Array<{ id: string; subject: string; size: number; problem?: { code: string; message: string } }>;
  assert.ok(items.some((m) => m.subject === 'After the endless one'), 'the next good message is imported');
  const cut = items.find((m) => m.size > MAX_MESSAGE_MB * 1024 * 1024);
  assert.ok(cut, 'the endless message is recorded with a size past the limit');
  assert.match(mailroom.output(), /"event":"inbound\.unreadable"[^\n]*"code":"too_large","problem":"The message is larger than 4 MB, the largest inbound message \(INBOUND_MAX_MESSAGE_MB\)/);
  if (cut.problem !== undefined) {
    assert.equal(cut.problem.code, 'too_large');
    assert.match(cut.problem.message, /larger than 4 MB.*INBOUND_MAX_MESSAGE_MB/);
  }
});

test('messages with 1,001 parts and 5,000 nested multiparts, fetched through $value, are imported as unreadable and the fetch goes on past them', T, async () => {
  const before = await imported();
  graph.deliver(MAILBOX, mime('Before the crafted ones'));
  graph.deliver(MAILBOX, manyParts());
  graph.deliver(MAILBOX, deepNesting());
  graph.deliver(MAILBOX, mime('After the crafted ones'));
  await hostileCase(async () => {
    const r = await fetchOnce();
    assert.equal(r.error, null, JSON.stringify(r));
    assert.equal(r.importedCount, before + 4);
  });
  const items = (await api('GET', `/api/v1/inbound-messages?serverId=${incomingId}&limit=200`)).json.items as Array<{ subject: string; problem?: { code: string } }>;
  assert.ok(items.some((m) => m.subject === 'After the crafted ones'));
  // The pull API lists in import order: the four of this fetch come last.
  const crafted = items.slice(before).filter((x) => x.problem);
  assert.equal(crafted.length, 2, JSON.stringify(items.slice(before)));
  for (const m of crafted) assert.match(m.problem!.code, /too_many_parts|too_deep|malformed/);
  const unreadable = mailroom.output().split('\n').filter((l) => l.includes('"event":"inbound.unreadable"') && /"code":"(too_many_parts|too_deep|malformed)"/.test(l));
  assert.ok(unreadable.length >= 2, 'both crafted messages are recorded as unreadable, with what is wrong with them');
  // The process is still the one that started: nothing took it down.
  assert.doesNotThrow(() => process.kill(mailroom.pid, 0));
});

test('after a 429 with Retry-After the whole mailbox waits: no fetch, test or send reaches Graph inside the window, all resume after it', T, async () => {
  const RETRY_AFTER = 4;
  graph.throttle(1, RETRY_AFTER);
  const before = await imported();
  graph.deliver(MAILBOX, mime('After the throttling'));
  const throttled = await fetchOnce();
  assert.equal(throttled.error?.code, 'GRAPH_THROTTLED', JSON.stringify(throttled));
  const hit = graph.requests.filter((q) => q.status === 429).at(-1)!;
  const windowEnd = hit.at + RETRY_AFTER * 1000;

  // Inside the window: receiving, Test & Confirm, Test Connection and sending all hold back.
  const again = await fetchOnce();
  assert.equal(again.error?.code, 'GRAPH_THROTTLED');
  assert.match(again.error!.message, /sends no request for it until/);
  const test1 = await api('POST', `/api/v1/incoming-servers/${incomingId}/test`);
  assert.equal(test1.json.ok, false);
  assert.equal(test1.json.code, 'GRAPH_THROTTLED');
  const test2 = await api('POST', `/api/v1/mail-servers/${outgoingId}/test`);
  assert.equal(test2.json.ok, false, test2.text);
  assert.equal(test2.json.code, 'GRAPH_THROTTLED');
  const sent = await api('POST', '/api/v1/messages', { from: MAILBOX, to: ['customer@remote.example'], subject: 'Waits for Retry-After', text: 'x' });
  assert.equal(sent.status, 202, sent.text);
  const db = new SQLite(join(mailroom.dataDir, 'mailroom.sqlite'), { readonly: true });
  try {
    const pause = db.prepare('select expires_at from leases where name = ?').get(`pause:graph:${MAILBOX}`) as { expires_at: string } | undefined;
    assert.ok(pause, 'the pause is a lease row every instance reads');
    assert.ok(Math.abs(Date.parse(pause.expires_at) - windowEnd) < 1500, `the pause ends with Retry-After (${pause.expires_at})`);
  } finally {
    db.close();
  }

  const done = await waitFor('the message to be sent after the window', async () => {
    const m = (await api('GET', `/api/v1/messages/${sent.json.id}`)).json;
    return m.state === 'sent' ? m : m.state === 'failed' ? Promise.reject(new Error(JSON.stringify(m.lastError))) : undefined;
  }, 30_000);
  assert.equal(done.state, 'sent');
  const inside = graph.requests.filter((q) => q.at > hit.at && q.at < windowEnd && q.path.startsWith('/v1.0/users/'));
  assert.deepEqual(inside.map((q) => `${q.method} ${q.path}`), [], 'no request for the mailbox inside the Retry-After window');
  const delivered = graph.requests.find((q) => q.path.endsWith('/sendMail') && q.status === 202 && q.at >= windowEnd);
  assert.ok(delivered, 'sending resumed after the window');
  const next = await fetchOnce();
  assert.equal(next.error, null, JSON.stringify(next));
  assert.equal(next.importedCount, before + 1, 'receiving resumed after the window');
});
