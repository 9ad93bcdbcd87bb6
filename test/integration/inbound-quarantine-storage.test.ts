import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { InboundMessageService } from '../../src/inbound/inbound-message-service.ts';
import { type FetchedMessage, inboundRows } from '../../src/inbound/inbound-rows.ts';
import { parseMessage, storeRaw } from '../../src/inbound/parse-message.ts';
import { isMailroomError, type MailroomError } from '../../src/errors/errors.ts';
import { openDatabase, type OpenedDatabase } from '../../src/storage/database.ts';
import { importInboundMessages } from '../../src/storage/inbound-store.ts';
import { findMailServer, insertMailServer, type MailServerRecord } from '../../src/storage/mail-server-store.ts';
import { bigTextMessage, deepMessage, manyPartsMessage } from '../helpers/hostile-mime.ts';
import { createTestDatabase, type TestPostgres } from '../helpers/postgres-db.ts';

// Quarantined and truncated messages stored and read back on both databases: problem, truncation
// flags and "raw not kept" survive the round trip; a large raw message streams back from its file
// (SQLite) or its chunks (PostgreSQL); a raw message not kept answers a 404 that says why.
const dirs: string[] = [];
const pgs: TestPostgres[] = [];
after(async () => {
  for (const p of pgs) await p.drop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const streamOf = (buf: Buffer) => Readable.from((function* () {
  for (let k = 0; k < buf.length; k += 64 * 1024) yield buf.subarray(k, k + 64 * 1024);
})());

async function collect(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function server(opened: OpenedDatabase): Promise<MailServerRecord> {
  const base = { name: 'In', authType: 'outlook_oauth', username: 'in@example.test', clientId: 'c', clientSecretSealed: 'v1:x', clientSecretExpiresAt: null, tenant: 'common', smtpHost: 'h', smtpPort: 587, smtpSecurity: 'starttls', priority: 10, fromFilter: null, active: true, lastError: null };
  await insertMailServer(opened.db, 'srv', base as Parameters<typeof insertMailServer>[2], new Date());
  return { ...(await findMailServer(opened.db, 'srv'))!, imap: { afterFetch: 'leave' } } as MailServerRecord;
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  test(`quarantined, truncated and refused messages round-trip on ${dialect}`, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'mailroom-quarantine-'));
    dirs.push(dataDir);
    let url = `sqlite:${join(dataDir, 'mailroom.sqlite')}`;
    if (dialect === 'postgres') {
      const p = await createTestDatabase('mailroom_quarantine');
      pgs.push(p);
      url = p.url;
    }
    const opened = await openDatabase(url);
    try {
      const srv = await server(opened);
      const target = { db: opened.db, dataDir, rawInDatabase: dialect === 'postgres', maxMessageBytes: 4 * 1024 * 1024 };
      const many = manyPartsMessage(1001);
      const deep = deepMessage(5000);
      const big = bigTextMessage(3 * 1024 * 1024, '<big@hostile.example>');
      const huge = bigTextMessage(5 * 1024 * 1024, '<huge@hostile.example>');
      const got: FetchedMessage[] = [];
      for (const [uid, raw] of [[1, many], [3, big], [4, huge]] as const) {
        const { raw: ref, ...parsed } = await storeRaw(streamOf(raw), target, 'srv', `m${uid}`);
        got.push({ uid, id: `m${uid}`, parsed, raw: ref });
      }
      got.splice(1, 0, { uid: 2, id: 'm2', parsed: await parseMessage(deep), raw: { mime: deep } });
      const rows = await inboundRows(opened.db, srv, 'INBOX', '1', got);
      assert.deepEqual(await importInboundMessages(opened.db, { serverId: 'srv', folder: 'INBOX', uidValidity: '1', lastUid: 4 }, rows, [], () => 'd', new Date()), ['imported', 'imported', 'imported', 'imported']);

      const svc = new InboundMessageService({ db: opened.db, dataDir, baseUrl: 'https://mailroom.example/' });
      const m1 = await svc.get('m1');
      assert.equal(m1.problem?.code, 'too_many_parts');
      assert.equal(m1.rawUrl, 'https://mailroom.example/api/v1/inbound-messages/m1/raw');
      assert.ok((await collect((await svc.raw('m1')).stream)).equals(many), 'the quarantined message is kept byte for byte');
      const m2 = await svc.get('m2');
      assert.deepEqual(m2.problem, { code: 'too_deep', message: "The message's MIME parts are nested more than 50 levels deep; Mailroom reads at most 50." });
      assert.ok((await collect((await svc.raw('m2')).stream)).equals(deep));
      const m3 = await svc.get('m3');
      assert.equal(m3.problem, null);
      assert.equal(m3.truncated, true);
      assert.equal(m3.textTruncated, true);
      assert.equal(m3.htmlTruncated, false);
      assert.equal(m3.text!.length, 1024 * 1024);
      assert.ok((await collect((await svc.raw('m3')).stream)).equals(big), 'the large raw message streams back whole');
      const m4 = await svc.get('m4');
      assert.equal(m4.problem?.code, 'too_large');
      assert.equal(m4.rawUrl, null);
      assert.equal(m4.size, huge.length);
      await assert.rejects(svc.raw('m4'), (e: unknown) => {
        assert.ok(isMailroomError(e, 'MR_NOT_FOUND'));
        assert.match((e as MailroomError).message, /^The raw message of m4 was not kept: The message is 5 MB; Mailroom keeps messages up to 4 MB \(INBOUND_MAX_MESSAGE_MB\)/);
        assert.match((e as MailroomError).fix!, /raise INBOUND_MAX_MESSAGE_MB/);
        return true;
      });
      const listed = (await svc.list({ order: 'asc' })).items;
      assert.deepEqual(listed.map((m) => m.problem?.code ?? null), ['too_many_parts', 'too_deep', null, 'too_large']);
    } finally {
      await opened.close();
    }
  });
}
