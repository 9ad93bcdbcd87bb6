// Sending through Microsoft Graph beside SMTP, end to end, in one run:
//   POST /api/v1/messages → Mailroom child process → outbox (SQLite) → worker →
//     (a) Send Using Microsoft Graph: HTTPS sendMail with the MIME message → the Graph stand-in
//         (test/peers/graph-server.ts: token introspected at the OAuth server for each request, as
//         Graph checks its own tokens);
//     (b) Send Using SMTP: pooled SMTP XOAUTH2 → Dovecot 2.3 submission (token introspected) → sink.
// Measured from the first POST to the N-th message received; prints msgs/s for both, their ratio,
// and the number of Graph requests per message (target: 1 under 4 MB).
//
//   node --import tsx bench/graph-throughput.ts [N]
//
// Env: BENCH_N (1000), BENCH_HTTP_CONCURRENCY (32 POSTs in flight), OUTBOX_CONCURRENCY (16).
import { GRAPH_RESOURCE } from '../test/peers/index.ts';
import { getToken } from '../test/peers/get-token.ts';
import { storeTokens } from '../test/helpers/connect-directly.ts';
import { startGraphServer } from '../test/peers/graph-server.ts';
import { cpuMeter, type CpuReport, envNumber, header, onCleanup, runBenchmark, table, verdict } from './lib.ts';
import { arrivals, benchPeers, CLIENT_ID, CLIENT_SECRET, connect, fetchToken, MAILBOX, mailroomWithServer, RECIPIENT } from './peers.ts';

const N = Number(process.argv[2] ?? envNumber('BENCH_N', 1000));
const HTTP_CONCURRENCY = envNumber('BENCH_HTTP_CONCURRENCY', 32);
const CONCURRENCY = envNumber('OUTBOX_CONCURRENCY', 16);
const TIMEOUT_MS = 300_000;
const TOKEN_REDIRECT = 'http://127.0.0.1:9/token-helper';
const BODY = `Dear customer,\n\n${'Your order has been confirmed and will ship within two business days. '.repeat(13)}\n\nKind regards,\nSales`;

async function inParallel(count: number, limit: number, work: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, count) }, async () => {
    while (next < count) await work(next++);
  }));
}

runBenchmark('graph-throughput', 900, async () => {
  const peers = await benchPeers();
  const graph = await startGraphServer({ tls: { cert: peers.ca.cert, key: peers.ca.key }, introspectionUrl: peers.authServer.httpIntrospectionUrl, mailboxes: [MAILBOX] });
  onCleanup('graph stand-in', () => graph.close());
  const c = await mailroomWithServer(peers, { MICROSOFT_GRAPH_HOST: graph.url, OUTBOX_CONCURRENCY: String(CONCURRENCY), LOG_LEVEL: 'warn' });
  connect(c, peers, await fetchToken(peers));
  // A second server for the same mailbox that sends with Graph; FROM Filtering and Priority pick it per run.
  const g = await c.api('POST', '/api/v1/mail-servers', { name: 'Graph', username: MAILBOX, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, sendUsing: 'graph', priority: 1, active: false, maxConnections: null, messagesPerMinute: null, recipientsPerDay: null, recipientsPerMessage: null });
  // Exchange's per-mailbox pace (30 a minute) would slow this run; the stand-in has none, like the SMTP baseline.
  if (g.status !== 201) throw new Error(`creating the Graph server: ${JSON.stringify(g.json)}`);
  const scope = ['openid', 'profile', 'email', 'offline_access', 'Mail.Send', 'Mail.ReadWrite', 'User.Read'].map((s) => (s.includes('.') ? `${GRAPH_RESOURCE}/${s}` : s)).join(' ');
  const t = await getToken({ authorityHost: peers.authServer.authorityHost, ca: peers.ca.caPem, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: TOKEN_REDIRECT, login: MAILBOX, scope });
  storeTokens(c.mr.dataDir, g.json.id, MAILBOX, t, peers.authServer.tenantId);

  const run = async (name: string, tag: string, arrived: { done: Promise<number> }): Promise<{ name: string; seconds: number; cpu: CpuReport }> => {
    const cpu = cpuMeter(c.mr.pid);
    const t0 = performance.now();
    await inParallel(N, HTTP_CONCURRENCY, async (i) => {
      const r = await c.api('POST', '/api/v1/messages', { from: MAILBOX, to: [RECIPIENT], subject: `Order confirmation ${i}`, text: BODY, headers: { 'X-Bench-Run': tag } });
      if (r.status !== 202) throw new Error(`POST: ${r.status} ${JSON.stringify(r.json)}`);
    });
    const tLast = await arrived.done;
    return { name, seconds: (tLast - t0) / 1000, cpu: cpu() };
  };

  header(`${N} messages (~1 KB) through each transport`);
  const smtp = await run('Send Using SMTP → Dovecot submission', 'smtp', arrivals(peers, 'smtp', N, TIMEOUT_MS));

  await c.api('PATCH', `/api/v1/mail-servers/${c.serverId}`, { active: false });
  await c.api('PATCH', `/api/v1/mail-servers/${g.json.id}`, { active: true });
  const before = graph.requests.length;
  const sentBefore = graph.sent.length;
  const graphArrived = {
    done: new Promise<number>((resolve, reject) => {
      const deadline = Date.now() + TIMEOUT_MS;
      const poll = setInterval(() => {
        if (graph.sent.length - sentBefore >= N) {
          clearInterval(poll);
          resolve(performance.now());
        } else if (Date.now() > deadline) {
          clearInterval(poll);
          reject(new Error(`${graph.sent.length - sentBefore} of ${N} at the Graph stand-in`));
        }
      }, 5);
    }),
  };
  const viaGraph = await run('Send Using Microsoft Graph → Graph stand-in', 'graph', graphArrived);
  const graphRequests = graph.requests.length - before;

  table(
    [smtp, viaGraph].map((r) => ({
      transport: r.name,
      'msgs/s': (N / r.seconds).toFixed(0),
      seconds: r.seconds.toFixed(2),
      'Mailroom cores': r.cpu.childCores.toFixed(2),
      'machine cores': r.cpu.machineCores.toFixed(2),
    })),
  );
  const ratio = N / viaGraph.seconds / (N / smtp.seconds);
  console.log(`\nGraph / SMTP throughput: ${ratio.toFixed(2)}×`);
  console.log(`Graph requests per message: ${(graphRequests / N).toFixed(2)} ${verdict(graphRequests / N, 1, false)} (target 1 under 4 MB)`);
  // The stand-in answers a fifth request at once for a mailbox with 429 (Exchange's MailboxConcurrency).
  console.log(`Graph requests at once for the mailbox: ${graph.peakConcurrent.get(MAILBOX.toLowerCase()) ?? 0} at most (limit 4), ${graph.concurrencyRefusals} refused with 429 MailboxConcurrency`);
});
