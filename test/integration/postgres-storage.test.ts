import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { openDatabase, type OpenedDatabase } from '../../src/storage/database.ts';
import { findMailServer, findToken, insertMailServer, replaceToken, updateTokenIfVersion } from '../../src/storage/mail-server-store.ts';
import { consumeOAuthState, insertOAuthState } from '../../src/storage/oauth-state-store.ts';
import { insertAdmin } from '../../src/storage/admin-store.ts';
import { insertAuditEvent } from '../../src/storage/audit-store.ts';
import { containsText } from '../../src/storage/text-search.ts';
import { claimDue, claimForServer, insertOutboxMessage, markSent, renewLeases } from '../../src/storage/outbox-store.ts';
import { pace } from '../../src/outbox/pacing.ts';
import { findInboundMime, getFolderState, importInboundMessages, listInbound, lockImportOrder } from '../../src/storage/inbound-store.ts';

// The same storage code on PostgreSQL (127.0.0.1:5432, trust auth), in a database made for this run.
const ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/test';
const dbName = `mailroom_test_${randomBytes(4).toString('hex')}`;
let opened: OpenedDatabase;

before(async () => {
  const c = new pg.Client(ADMIN_URL);
  await c.connect();
  await c.query(`create database ${dbName}`);
  await c.end();
  opened = await openDatabase(`postgres://postgres@127.0.0.1:5432/${dbName}`);
});

after(async () => {
  await opened?.close();
  const c = new pg.Client(ADMIN_URL);
  await c.connect();
  await c.query(`drop database if exists ${dbName}`);
  await c.end();
});

test('migrations run on PostgreSQL and are idempotent', async () => {
  assert.equal(opened.dialect, 'postgres');
  const again = await openDatabase(`postgres://postgres@127.0.0.1:5432/${dbName}`);
  await again.close();
});

test('mail servers, versioned token writes and single-use states behave as on SQLite', async () => {
  const now = new Date();
  const { db } = opened;
  await insertAdmin(db, { id: 'a1', email: 'a@example.test', passwordHash: 'x' }, now);
  const s = await insertMailServer(
    db,
    'srv1',
    {
      name: 'PG',
      authType: 'outlook_oauth',
      username: 'u@example.test',
      clientId: 'c',
      clientSecretSealed: 'v1:x',
      clientSecretExpiresAt: null,
      tenant: 'common',
      smtpHost: 'h',
      smtpPort: 587,
      smtpSecurity: 'starttls',
      priority: 10,
      fromFilter: null,
      active: true,
      lastError: null,
    },
    now,
  );
  assert.equal(s.smtpPort, 587);
  assert.equal(s.active, true);
  await replaceToken(db, 'srv1', { status: 'valid', statusReason: null, accessTokenSealed: 'a1' }, now);
  const t = (await findToken(db, 'srv1'))!;
  assert.equal(await updateTokenIfVersion(db, 'srv1', t.version, { status: 'valid', statusReason: null, accessTokenSealed: 'a2' }, now), true);
  assert.equal(await updateTokenIfVersion(db, 'srv1', t.version, { status: 'valid', statusReason: null, accessTokenSealed: 'a3' }, now), false);
  assert.equal((await findToken(db, 'srv1'))!.accessTokenSealed, 'a2');

  await insertOAuthState(db, { stateHash: 'h', mailServerId: 'srv1', adminId: 'a1', codeVerifierSealed: 'v', nonce: 'n', expiresAt: new Date(now.getTime() + 60_000) }, now);
  const [first, second] = await Promise.all([consumeOAuthState(db, 'h', now), consumeOAuthState(db, 'h', now)]);
  assert.equal([first, second].filter((r) => r.ok).length, 1, 'exactly one concurrent callback wins');
  assert.ok(await findMailServer(db, 'srv1'));
});

test('outbox claims on PostgreSQL: concurrent workers never take the same message (SKIP LOCKED)', async () => {
  const { db } = opened;
  const now = new Date();
  for (let i = 0; i < 40; i++) {
    await insertOutboxMessage(
      db,
      {
        id: `m${i}`,
        from: 'u@example.test',
        to: ['a@example.org'],
        cc: [],
        bcc: [],
        replyTo: null,
        subject: `s${i}`,
        mailServerId: 'srv1',
        messageId: `<m${i}@example.test>`,
        sizeBytes: 1,
        payload: { text: 'x', html: null, headers: {}, attachments: [], from: { name: '', address: 'u@example.test' }, to: [{ name: '', address: 'a@example.org' }], cc: [], bcc: [], replyTo: null },
        attachments: [],
        idempotencyKey: null,
        requestHash: null,
        apiKeyId: null,
        maxAttempts: 5,
      },
      now,
    );
  }
  const batches = await Promise.all(Array.from({ length: 4 }, (_, w) => claimDue(db, 'postgres', `w${w}`, new Date(now.getTime() + 1), 60_000, 15)));
  const ids = batches.flat().map((m) => m.id);
  assert.equal(ids.length, 40);
  assert.equal(new Set(ids).size, 40, 'no message claimed twice');
  assert.equal(await markSent(db, batches[0]![0]!.id, 'w0', '250 ok', now), true);
  assert.equal(await markSent(db, batches[1]![0]!.id, 'w0', '250 ok', now), false, 'only the lease owner records the outcome');
});

test('inbound import on PostgreSQL: one row per Message-ID, raw MIME kept, folder state advanced, seq increases', async () => {
  const { db } = opened;
  const raw = (s: string) => Buffer.from(`Subject: ${s}\r\n\r\nhi\r\n`);
  const base = { serverId: 'srv1', folder: 'INBOX', uidValidity: '1', from: 'x@y.example', to: [], cc: [], subject: 's', date: null, inReplyTo: null, references: [], text: null, html: null, attachments: [], sizeBytes: 1, outboxMessageId: null, afterFetchPending: false };
  let n = 0;
  const next = () => `d${++n}`;
  const folder = { serverId: 'srv1', folder: 'INBOX', uidValidity: '1' };
  const first = [
    { ...base, id: 'i1', uid: 1, dedupeKey: '<a@x>', messageId: '<a@x>', raw: { mime: raw('a') } },
    { ...base, id: 'i2', uid: 2, dedupeKey: '<a@x>', messageId: '<a@x>', raw: { mime: raw('a again') } },
  ];
  assert.deepEqual(await importInboundMessages(db, { ...folder, lastUid: 2 }, first, [], next, new Date()), ['imported', 'duplicate']);
  const second = [
    { ...base, id: 'i3', uid: 3, dedupeKey: '<a@x>', messageId: '<a@x>', raw: { mime: raw('a third time') } },
    { ...base, id: 'i4', uid: 4, dedupeKey: '<b@x>', messageId: '<b@x>', raw: { path: 'inbound/srv1/i4.eml' } },
  ];
  assert.deepEqual(await importInboundMessages(db, { ...folder, lastUid: 6 }, second, [], next, new Date()), ['duplicate', 'imported']);
  const rows = await listInbound(db, { order: 'asc', limit: 10 });
  assert.deepEqual(rows.map((r) => r.id), ['i1', 'i4']);
  assert.ok(rows[1]!.seq > rows[0]!.seq);
  assert.deepEqual(rows.map((r) => r.rawPath), [null, 'inbound/srv1/i4.eml']);
  assert.deepEqual(await findInboundMime(db, 'i1'), raw('a'));
  assert.deepEqual(await getFolderState(db, 'srv1', 'INBOX'), { uidValidity: '1', lastUid: 6 });
});

test('inbound import on PostgreSQL: seq follows commit order, so a pull reader never passes a row still being written', async () => {
  const { db } = opened;
  const row = (id: string, uid: number) => ({
    id,
    mail_server_id: 'srv1',
    folder: 'INBOX',
    uid_validity: '1',
    uid,
    dedupe_key: `<${id}@x>`,
    message_id: `<${id}@x>`,
    from_addr: 'x@y.example',
    to_json: '[]',
    cc_json: '[]',
    subject: id,
    date: null,
    in_reply_to: null,
    references_json: '[]',
    text_body: null,
    html_body: null,
    attachments_meta: '[]',
    size_bytes: 1,
    raw_path: 'inbound/srv1/x.eml',
    outbox_message_id: null,
    received_at: new Date().toISOString(),
    after_fetch_pending: 0,
  });
  const before = (await listInbound(db, { order: 'desc', limit: 1 }))[0]?.seq ?? 0;
  const newer = async () => (await listInbound(db, { order: 'asc', limit: 10, after: before })).map((r) => r.id);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let inserted!: () => void;
  const slowInserted = new Promise<void>((r) => (inserted = r));
  // A slow import (another Mailroom process, say) takes its seq first and commits last.
  const slow = db.transaction().execute(async (trx) => {
    await lockImportOrder(trx);
    await trx.insertInto('inbound_messages').values(row('slow', 1)).execute();
    inserted();
    await held;
  });
  await slowInserted;
  const base = { serverId: 'srv1', folder: 'INBOX', uidValidity: '1', from: 'x@y.example', to: [], cc: [], subject: 'fast', date: null, inReplyTo: null, references: [], text: null, html: null, attachments: [], sizeBytes: 1, outboxMessageId: null, afterFetchPending: false };
  const fast = importInboundMessages(db, { serverId: 'srv1', folder: 'INBOX', uidValidity: '1', lastUid: 2 }, [{ ...base, id: 'fast', uid: 2, dedupeKey: '<fast@x>', messageId: '<fast@x>', raw: { mime: Buffer.from('x') } }], [], () => 'd-fast', new Date());
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(await newer(), [], 'the fast import waits for the slow one: a reader sees neither yet');
  release();
  await slow;
  assert.deepEqual(await fast, ['imported']);
  const rows = await listInbound(db, { order: 'asc', limit: 10, after: before });
  assert.deepEqual(rows.map((r) => r.id), ['slow', 'fast']);
  assert.ok(rows[0]!.seq < rows[1]!.seq);
});

test('text search treats % and _ in the search text literally on PostgreSQL too', async () => {
  const { db } = opened;
  const at = new Date().toISOString();
  for (const [i, action] of ['rebate 100% paid', 'rebate 1000 paid', 'file_name', 'filename'].entries()) {
    await insertAuditEvent(db, { id: `search-${i}`, at, actor: 'test', action, targetType: null, targetId: null, details: null });
  }
  const find = async (q: string) => (await db.selectFrom('audit_events').select('action').where('id', 'like', 'search-%').where(containsText(['action'], q)).execute()).map((r) => r.action).sort();
  assert.deepEqual(await find('100%'), ['rebate 100% paid']);
  assert.deepEqual(await find('e_n'), ['file_name']);
  assert.deepEqual(await find('REBATE'), ['rebate 100% paid', 'rebate 1000 paid']);
});

test('paced claims on PostgreSQL: four instances together take no more than the server\'s 10 a minute; a heartbeat keeps a claim, a dead owner loses it', async () => {
  const { db } = opened;
  const now = new Date();
  await insertMailServer(db, 'srv-paced', {
    name: 'Paced', authType: 'outlook_oauth', username: 'p@example.test', clientId: 'c', clientSecretSealed: 'v1:x', clientSecretExpiresAt: null, tenant: 'common',
    smtpHost: 'h', smtpPort: 587, smtpSecurity: 'starttls', priority: 10, fromFilter: null, active: true, lastError: null,
    limits: { maxConnections: 3, messagesPerMinute: 10, recipientsPerDay: null, recipientsPerMessage: null },
  }, now);
  const limits = { messagesPerMinute: 10, recipientsPerDay: null };
  for (let i = 0; i < 30; i++) {
    await insertOutboxMessage(db, {
      id: `p${i}`, from: 'p@example.test', to: ['a@example.org'], cc: [], bcc: [], replyTo: null, subject: `p${i}`, mailServerId: 'srv-paced', messageId: `<p${i}@example.test>`, sizeBytes: 1,
      payload: { text: 'x', html: null, headers: {}, attachments: [], from: { name: '', address: 'p@example.test' }, to: [{ name: '', address: 'a@example.org' }], cc: [], bcc: [], replyTo: null },
      attachments: [], idempotencyKey: null, requestHash: null, apiKeyId: null, maxAttempts: 5,
    }, now);
  }
  const at = new Date(now.getTime() + 1);
  const claims = await Promise.all(
    Array.from({ length: 4 }, (_, w) =>
      claimForServer(db, 'postgres', 'srv-paced', `pw${w}`, at, 1000, 16, (usage, due) => ({ ids: due.slice(0, pace(limits, usage, due.map((d) => d.recipients), at).take).map((d) => d.id) })),
    ),
  );
  const ids = claims.flatMap((c) => c.claimed.map((m) => m.id));
  assert.equal(ids.length, 10, 'the count and the claim are one step across instances');
  assert.equal(new Set(ids).size, 10);
  // pw0's heartbeat renews its claims; the others stopped (crashed). After the 1 s lease, only theirs move.
  const owner = claims.findIndex((c) => c.claimed.length > 0);
  const later = new Date(at.getTime() + 900);
  assert.equal(await renewLeases(db, `pw${owner}`, later, 1000), claims[owner]!.claimed.length);
  const taken = await claimDue(db, 'postgres', 'rescuer', new Date(at.getTime() + 1500), 1000, 100);
  const mine = new Set(claims[owner]!.claimed.map((m) => m.id));
  assert.ok(taken.every((m) => !mine.has(m.id)), 'a renewed claim is not taken over');
});
