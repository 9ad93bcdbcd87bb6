// Large mail is never held whole (issue #18 item 5): a 200 MB text message imported over real IMAP
// (Dovecot, XOAUTH2) by a Mailroom child process, then three parallel raw downloads of it. Printed:
// the Mailroom process's VmRSS rise over its RSS just before each phase (sampled every 50 ms), next
// to the same phases for a 1 MB message in the same run, the ratio, and the slowest /healthz seen
// meanwhile. Target: each rise ≤ 64 MB.
//
// Env: BENCH_BIG_MB (200), BENCH_BASE_MB (1), BENCH_DOWNLOADS (3), BENCH_DATABASE (sqlite: the raw
// message in a file under DATA_DIR; postgres: in 256 KB rows, PostgreSQL at 127.0.0.1:5432 as the
// tests use it), LOG_LEVEL (warn). Needs Dovecot and root (the Maildir files belong to the mail user),
// as the inbound benchmarks do.
import { randomBytes } from 'node:crypto';
import { storeTokens } from '../test/helpers/connect-directly.ts';
import { createTestDatabase, storeTokensPg } from '../test/helpers/postgres-db.ts';
import { rssMb, watchRss } from '../test/helpers/process-health.ts';
import { createApiKey, envNumber, header, httpClient, onCleanup, runBenchmark, sleep, startMailroom, table, verdict } from './lib.ts';
import { benchPeers, createIncoming, doveadmCount, ensureMaildir, fetchToken, MAILBOX, writeMaildirMessage } from './peers.ts';

const BIG_MB = envNumber('BENCH_BIG_MB', 200);
const BASE_MB = envNumber('BENCH_BASE_MB', 1);
const DOWNLOADS = envNumber('BENCH_DOWNLOADS', 3);
const TARGET_MB = 64;
const POSTGRES = process.env.BENCH_DATABASE === 'postgres';

/**
 * A text/plain message of about `mb` MB: lines of 76 characters, as a long log or export would be.
 * LF line ends, as Dovecot keeps a Maildir file (its W= size counts each LF as CRLF).
 */
function textMessage(mb: number, tag: string): Buffer {
  const head = Buffer.from(
    [`From: Reports <reports@sender.example>`, `To: ${MAILBOX}`, `Subject: ${tag}`, `Message-ID: <${tag}-${Date.now()}@sender.example>`, 'Date: Sat, 28 Nov 2026 09:00:00 +0000', 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', ''].join('\n'),
  );
  const line = Buffer.from(`${'0123456789'.repeat(7)}abcdef\n`);
  const body = Buffer.alloc(Math.ceil((mb * 1024 * 1024) / line.length) * line.length);
  for (let k = 0; k < body.length; k += line.length) line.copy(body, k);
  return Buffer.concat([head, body]);
}

interface Phase {
  riseMb: number;
  seconds: number;
  slowestHealthzMs: number;
}

/** Runs `work` while sampling the process's RSS and timing /healthz every 250 ms. */
async function measure(pid: number, baseUrl: string, work: () => Promise<void>): Promise<Phase> {
  await sleep(1000);
  const before = rssMb(pid);
  const rss = watchRss(pid, 50);
  let slowest = 0;
  let running = true;
  const probe = (async () => {
    while (running) {
      const t = performance.now();
      await fetch(`${baseUrl}/healthz`).then((r) => r.body?.cancel());
      slowest = Math.max(slowest, performance.now() - t);
      await sleep(250);
    }
  })();
  const t0 = performance.now();
  try {
    await work();
  } finally {
    running = false;
    await probe;
  }
  return { riseMb: rss.stop() - before, seconds: (performance.now() - t0) / 1000, slowestHealthzMs: slowest };
}

runBenchmark('large-mail', 600, async () => {
  header(`Large mail: a ${BIG_MB} MB text message over IMAP and ${DOWNLOADS} parallel raw downloads, against ${BASE_MB} MB (${POSTGRES ? 'PostgreSQL, raw in rows' : 'SQLite, raw in a file'})`);
  const peers = await benchPeers();
  const secretKey = randomBytes(32);
  const pg = POSTGRES ? await createTestDatabase('mailroom_bench_large') : undefined;
  if (pg) onCleanup('bench database', () => pg.drop());
  const mr = await startMailroom({
    ...(pg && { DATABASE_URL: pg.url, MAILROOM_SECRET_KEY: secretKey.toString('base64') }),
    MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost,
    NODE_EXTRA_CA_CERTS: peers.caFile,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    INBOUND_MAX_MESSAGE_MB: String(BIG_MB + 50),
  });
  const key = await createApiKey(mr);
  const { request: api } = httpClient(mr.baseUrl, key);
  const serverId = await createIncoming(api, MAILBOX, { imapPort: peers.dovecot.imapsPort });
  if (pg) await storeTokensPg(pg, secretKey, serverId, MAILBOX, await fetchToken(peers), peers.authServer.tenantId);
  else storeTokens(mr.dataDir, serverId, MAILBOX, await fetchToken(peers), peers.authServer.tenantId);
  const box = ensureMaildir(peers, MAILBOX);

  let imported = 0;
  const importOne = async (mb: number, tag: string): Promise<{ phase: Phase; id: string; size: number }> => {
    const raw = textMessage(mb, tag);
    writeMaildirMessage(box, raw, new Date());
    await doveadmCount(peers, MAILBOX);
    const phase = await measure(mr.pid, mr.baseUrl, async () => {
      for (;;) {
        const s = await api('GET', `/api/v1/incoming-servers/${serverId}`);
        if (!s.json.fetch.running) break;
        await sleep(200);
      }
      const r = await api('POST', `/api/v1/incoming-servers/${serverId}/fetch`);
      if (r.status !== 202) throw new Error(`Fetch Now: HTTP ${r.status} ${JSON.stringify(r.json)}`);
      for (;;) {
        await sleep(200);
        const s = (await api('GET', `/api/v1/incoming-servers/${serverId}`)).json;
        if (s.fetch.error) throw new Error(`the fetch failed: ${JSON.stringify(s.fetch.error)}`);
        if (!s.fetch.running && s.importedCount > imported) break;
      }
    });
    imported++;
    const row = (await api('GET', `/api/v1/inbound-messages?order=desc&limit=1`)).json.items[0];
    if (row.subject !== tag) throw new Error(`expected ${tag}, found ${row.subject}`);
    if (row.problem) throw new Error(`${tag} was quarantined: ${row.problem.message}`);
    return { phase, id: row.id as string, size: raw.length };
  };

  const downloads = (id: string, size: number) =>
    measure(mr.pid, mr.baseUrl, async () => {
      const counts = await Promise.all(
        Array.from({ length: DOWNLOADS }, async () => {
          const r = await fetch(`${mr.baseUrl}/api/v1/inbound-messages/${id}/raw`, { headers: { authorization: `Bearer ${key}` } });
          if (r.status !== 200) throw new Error(`raw download: HTTP ${r.status}`);
          let n = 0;
          for await (const c of r.body as unknown as AsyncIterable<Uint8Array>) n += c.length;
          return n;
        }),
      );
      if (counts.some((n) => n < size)) throw new Error(`a download was short: ${counts.join(', ')} of ${size} bytes`);
    });

  const base = await importOne(BASE_MB, 'Baseline message');
  const baseDl = await downloads(base.id, base.size);
  const big = await importOne(BIG_MB, 'Large message');
  const bigDl = await downloads(big.id, big.size);
  const detail = (await api('GET', `/api/v1/inbound-messages/${big.id}`)).json;

  const mb = (n: number) => `${n.toFixed(1)} MB`;
  table([
    { phase: 'import over IMAP', [`${BASE_MB} MB (baseline)`]: mb(base.phase.riseMb), [`${BIG_MB} MB`]: mb(big.phase.riseMb), ratio: (big.phase.riseMb / Math.max(base.phase.riseMb, 0.1)).toFixed(2), seconds: `${base.phase.seconds.toFixed(1)} / ${big.phase.seconds.toFixed(1)}`, 'slowest /healthz': `${base.phase.slowestHealthzMs.toFixed(0)} / ${big.phase.slowestHealthzMs.toFixed(0)} ms`, [`≤ ${TARGET_MB} MB`]: verdict(big.phase.riseMb, TARGET_MB, false) },
    { phase: `${DOWNLOADS} parallel raw downloads`, [`${BASE_MB} MB (baseline)`]: mb(baseDl.riseMb), [`${BIG_MB} MB`]: mb(bigDl.riseMb), ratio: (bigDl.riseMb / Math.max(baseDl.riseMb, 0.1)).toFixed(2), seconds: `${baseDl.seconds.toFixed(1)} / ${bigDl.seconds.toFixed(1)}`, 'slowest /healthz': `${baseDl.slowestHealthzMs.toFixed(0)} / ${bigDl.slowestHealthzMs.toFixed(0)} ms`, [`≤ ${TARGET_MB} MB`]: verdict(bigDl.riseMb, TARGET_MB, false) },
  ]);
  console.log(`stored text of the ${BIG_MB} MB message: ${detail.text.length.toLocaleString('en-US')} characters, truncated: ${detail.truncated}; RSS at the end ${mb(rssMb(mr.pid))}`);
  if (big.phase.riseMb > TARGET_MB || bigDl.riseMb > TARGET_MB) process.exitCode = 1;
});
