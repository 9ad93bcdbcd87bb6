import { PostgresAdapter, type Selectable, sql } from 'kysely';
import { notifyOnCommit } from './wakeups.ts';
import { pendingDelivery } from './webhook-store.ts';
import { type NewReport, recordReports } from './bounce-store.ts';
import type { Db } from './database.ts';
import { containsText } from './text-search.ts';
import type { InboundMessageTable } from './schema.ts';

export interface FolderState {
  uidValidity: string;
  lastUid: number;
  /** Graph: the link the next delta query starts from. */
  deltaLink?: string | null;
}

export async function getFolderState(db: Db, serverId: string, folder: string): Promise<FolderState | undefined> {
  const r = await db.selectFrom('inbound_folder_states').selectAll().where('mail_server_id', '=', serverId).where('folder', '=', folder).executeTakeFirst();
  return r && { uidValidity: r.uid_validity, lastUid: Number(r.last_uid), ...(r.delta_link !== null && { deltaLink: r.delta_link }) };
}

async function putFolderState(db: Db, serverId: string, folder: string, s: FolderState, now: string): Promise<void> {
  const updated = await db
    .updateTable('inbound_folder_states')
    .set({ uid_validity: s.uidValidity, last_uid: s.lastUid, updated_at: now, ...(s.deltaLink !== undefined && { delta_link: s.deltaLink }) })
    .where('mail_server_id', '=', serverId)
    .where('folder', '=', folder)
    .executeTakeFirst();
  if (Number(updated.numUpdatedRows) === 0) {
    await db.insertInto('inbound_folder_states').values({ mail_server_id: serverId, folder, uid_validity: s.uidValidity, last_uid: s.lastUid, updated_at: now, delta_link: s.deltaLink ?? null }).execute();
  }
}

export async function setFolderState(db: Db, serverId: string, folder: string, s: FolderState, now: Date): Promise<void> {
  await putFolderState(db, serverId, folder, s, now.toISOString());
}

/**
 * Why a fetched message could not be read whole. It is still imported (its raw bytes kept when within
 * the size limit), flagged with this, and the fetch goes on past it.
 */
export interface MessageProblem {
  code: 'too_large' | 'too_many_parts' | 'too_deep' | 'malformed';
  /** Names what is wrong with the message, in plain words. */
  message: string;
}

/** What Mailroom keeps of a message's content, as the parser gives it. */
export interface MessageFields {
  /** Set when the message could not be read whole (quarantined, not a wall). */
  problem?: MessageProblem | null;
  messageId: string | null;
  from: string;
  to: string[];
  cc: string[];
  subject: string;
  date: string | null;
  inReplyTo: string | null;
  references: string[];
  /** At most MAX_BODY_CHARS each (parse-message.ts); the whole message is in the raw download. */
  text: string | null;
  html: string | null;
  /** Set (true) when `text` is only the beginning of the message's text. */
  textTruncated?: boolean;
  /** Set (true) when `html` is only the beginning of the message's HTML. */
  htmlTruncated?: boolean;
  attachments: AttachmentMeta[];
  sizeBytes: number;
}

export interface AttachmentMeta {
  /** Safe to save under anywhere (safeFilename): offered for downloads. */
  filename: string;
  /** The name exactly as the sender wrote it, when that was not safe: data only, never a path. */
  originalFilename?: string;
  contentType: string;
  size: number;
}

export interface NewInboundMessage extends MessageFields {
  id: string;
  serverId: string;
  folder: string;
  uidValidity: string;
  uid: number;
  dedupeKey: string;
  /**
   * Where the raw message is: a file under the data directory, these bytes stored in the database,
   * chunks in the database, or nowhere (refused as larger than INBOUND_MAX_MESSAGE_MB).
   */
  raw: { path: string } | { mime: Buffer } | { chunked: true } | { none: true };
  outboxMessageId: string | null;
  /** The server's after-fetch action is still to be applied to this message in the mailbox. */
  afterFetchPending: boolean;
  /** Graph: the message's immutable id. */
  remoteId?: string | null;
  /** A recognised report or auto-reply about an outgoing message (stored, claimed once, see recordReports). */
  report?: Omit<NewReport, 'inboundMessageId'>;
  /** Set for a report: an event on the outgoing message, no message.received, not in the pull API. */
  reportOnly?: boolean;
}

/** Any constant: the advisory lock that orders inbound imports on PostgreSQL. */
const IMPORT_LOCK = 7_340_001;

/**
 * Makes `seq` follow commit order: pull consumers read `seq > cursor`, so a transaction that took a
 * lower seq but committed after a reader passed it would be skipped for ever. SQLite has one writer
 * at a time; on PostgreSQL several Mailroom processes can import at once, so each import transaction
 * takes this lock (released at commit) before it inserts.
 */
export async function lockImportOrder(trx: Db): Promise<void> {
  if (trx.getExecutor().adapter instanceof PostgresAdapter) await sql`select pg_advisory_xact_lock(${IMPORT_LOCK})`.execute(trx);
}

/** Rows per INSERT: well under SQLite's and PostgreSQL's limits on bound parameters. */
const INSERT_ROWS = 100;

/**
 * Stores messages of one folder (in UID order), advances the folder's last UID and queues a delivery
 * per active webhook, in one transaction: after a crash either all of it happened or none. A message
 * already imported (same Message-ID on this server, e.g. after a UIDVALIDITY change) only advances the
 * UID. The folder's state is set to `folder` (its last UID may lie past the last message, when the
 * ones after it vanished): one commit, one fsync for the batch. `ms` may be empty, to advance the
 * state alone.
 */
export async function importInboundMessages(
  db: Db,
  folder: FolderState & { serverId: string; folder: string },
  ms: NewInboundMessage[],
  webhookIds: string[],
  newDeliveryId: () => string,
  now: Date,
): Promise<Array<'imported' | 'duplicate'>> {
  const ts = now.toISOString();
  return db.transaction().execute(async (trx) => {
    await lockImportOrder(trx);
    const seen = new Set<string>();
    for (let k = 0; k < ms.length; k += INSERT_ROWS) {
      const keys = ms.slice(k, k + INSERT_ROWS).map((m) => m.dedupeKey);
      const found = await trx.selectFrom('inbound_messages').select('dedupe_key').where('mail_server_id', '=', folder.serverId).where('dedupe_key', 'in', keys).execute();
      for (const f of found) seen.add(f.dedupe_key);
    }
    const out: Array<'imported' | 'duplicate'> = [];
    const fresh: NewInboundMessage[] = [];
    for (const m of ms) {
      if (m.serverId !== folder.serverId || m.folder !== folder.folder) throw new Error('importInboundMessages: a message of another folder');
      out.push(seen.has(m.dedupeKey) ? 'duplicate' : 'imported');
      if (!seen.has(m.dedupeKey)) fresh.push(m);
      seen.add(m.dedupeKey);
    }
    for (let k = 0; k < fresh.length; k += INSERT_ROWS) {
      const part = fresh.slice(k, k + INSERT_ROWS);
      await trx
        .insertInto('inbound_messages')
        .values(
          part.map((m) => ({
            id: m.id,
            mail_server_id: m.serverId,
            folder: m.folder,
            uid_validity: m.uidValidity,
            uid: m.uid,
            dedupe_key: m.dedupeKey,
            message_id: m.messageId,
            from_addr: m.from,
            to_json: JSON.stringify(m.to),
            cc_json: JSON.stringify(m.cc),
            subject: m.subject,
            date: m.date,
            in_reply_to: m.inReplyTo,
            references_json: JSON.stringify(m.references),
            text_body: m.text,
            html_body: m.html,
            attachments_meta: JSON.stringify(m.attachments),
            size_bytes: m.sizeBytes,
            raw_path: 'path' in m.raw ? m.raw.path : '',
            outbox_message_id: m.outboxMessageId,
            received_at: ts,
            after_fetch_pending: m.afterFetchPending ? 1 : 0,
            remote_id: m.remoteId ?? null,
            problem_code: m.problem?.code ?? null,
            problem_message: m.problem?.message ?? null,
            text_truncated: m.textTruncated ? 1 : 0,
            html_truncated: m.htmlTruncated ? 1 : 0,
            raw_kept: 'none' in m.raw ? 0 : 1,
            report_only: m.reportOnly ? 1 : 0,
          })),
        )
        .execute();
      const deliveries = part.filter((m) => !m.reportOnly).flatMap((m) =>
        webhookIds.map((webhookId) => pendingDelivery({ id: newDeliveryId(), webhookId, inboundMessageId: m.id }, ts)),
      );
      const raws = part.flatMap((m) => ('mime' in m.raw ? [{ inbound_message_id: m.id, mime: m.raw.mime }] : []));
      if (raws.length) await trx.insertInto('inbound_raw').values(raws).execute();
      if (deliveries.length) await trx.insertInto('webhook_deliveries').values(deliveries).execute();
      // Every instance's webhook sender wakes when this commits (PostgreSQL), not at its next poll.
      if (deliveries.length) await notifyOnCommit(trx, 'mailroom_webhooks');
      const reports = part.flatMap((m) => (m.report ? [{ ...m.report, inboundMessageId: m.id }] : []));
      if (reports.length) await recordReports(trx, reports, webhookIds, newDeliveryId, now);
    }
    await putFolderState(trx, folder.serverId, folder.folder, { uidValidity: folder.uidValidity, lastUid: folder.lastUid, ...(folder.deltaLink !== undefined && { deltaLink: folder.deltaLink }) }, ts);
    return out;
  });
}

/** A stored message without its bodies (lists and the pull API's pages). */
export interface InboundRow extends Omit<MessageFields, 'text' | 'html' | 'problem' | 'textTruncated' | 'htmlTruncated'> {
  seq: number;
  id: string;
  serverId: string;
  folder: string;
  uid: number;
  problem: MessageProblem | null;
  textTruncated: boolean;
  htmlTruncated: boolean;
  /** False when the raw message was not kept (larger than INBOUND_MAX_MESSAGE_MB). */
  rawKept: boolean;
  /** The raw message's file under the data directory, or null when it is in the database. */
  rawPath: string | null;
  outboxMessageId: string | null;
  receivedAt: string;
}

const COLUMNS = [
  'seq',
  'id',
  'mail_server_id',
  'folder',
  'uid',
  'message_id',
  'from_addr',
  'to_json',
  'cc_json',
  'subject',
  'date',
  'in_reply_to',
  'references_json',
  'attachments_meta',
  'size_bytes',
  'raw_path',
  'outbox_message_id',
  'received_at',
  'problem_code',
  'problem_message',
  'text_truncated',
  'html_truncated',
  'raw_kept',
] as const;

function toRow(r: Pick<Selectable<InboundMessageTable>, (typeof COLUMNS)[number]>): InboundRow {
  return {
    seq: Number(r.seq),
    id: r.id,
    serverId: r.mail_server_id,
    folder: r.folder,
    uid: Number(r.uid),
    messageId: r.message_id,
    from: r.from_addr,
    to: JSON.parse(r.to_json) as string[],
    cc: JSON.parse(r.cc_json) as string[],
    subject: r.subject,
    date: r.date,
    inReplyTo: r.in_reply_to,
    references: JSON.parse(r.references_json) as string[],
    attachments: JSON.parse(r.attachments_meta) as InboundRow['attachments'],
    sizeBytes: Number(r.size_bytes),
    rawPath: r.raw_path || null,
    outboxMessageId: r.outbox_message_id,
    receivedAt: r.received_at,
    problem: r.problem_code ? { code: r.problem_code as MessageProblem['code'], message: r.problem_message ?? '' } : null,
    textTruncated: Number(r.text_truncated) === 1,
    htmlTruncated: Number(r.html_truncated) === 1,
    rawKept: Number(r.raw_kept) !== 0,
  };
}

export interface InboundFilter {
  /** Ascending from after this seq (pull consumers), or descending below `before` (the UI). */
  order: 'asc' | 'desc';
  after?: number;
  before?: number;
  serverId?: string;
  /** Only these servers' messages (an API key limited to some incoming servers). */
  serverIds?: string[];
  q?: string;
  limit: number;
  /** Also list recognised reports kept as events on outgoing messages (report_only). */
  includeReports?: boolean;
}

export async function listInbound(db: Db, f: InboundFilter): Promise<InboundRow[]> {
  let q = db.selectFrom('inbound_messages').select(COLUMNS);
  if (!f.includeReports) q = q.where('report_only', '=', 0);
  if (f.after !== undefined) q = q.where('seq', '>', f.after);
  if (f.before !== undefined) q = q.where('seq', '<', f.before);
  if (f.serverId) q = q.where('mail_server_id', '=', f.serverId);
  if (f.serverIds) q = q.where('mail_server_id', 'in', f.serverIds);
  if (f.q) q = q.where(containsText(['subject', 'from_addr', 'message_id'], f.q));
  return (await q.orderBy('seq', f.order).limit(f.limit).execute()).map(toRow);
}

export async function findInbound(db: Db, id: string): Promise<(InboundRow & { text: string | null; html: string | null }) | undefined> {
  const r = await db.selectFrom('inbound_messages').select([...COLUMNS, 'text_body', 'html_body']).where('id', '=', id).executeTakeFirst();
  return r && { ...toRow(r), text: r.text_body, html: r.html_body };
}

export async function countInbound(db: Db, serverId: string): Promise<number> {
  const r = await db.selectFrom('inbound_messages').select((eb) => eb.fn.countAll<string | number>().as('n')).where('mail_server_id', '=', serverId).executeTakeFirstOrThrow();
  return Number(r.n);
}

/** Imported messages per server, every server in one statement. */
export async function countInboundByServer(db: Db): Promise<Map<string, number>> {
  const rows = await db.selectFrom('inbound_messages').select((eb) => ['mail_server_id', eb.fn.countAll<string | number>().as('n')]).groupBy('mail_server_id').execute();
  return new Map(rows.map((r) => [r.mail_server_id, Number(r.n)]));
}

/** One chunk of a large raw message written to the database (written before its message row). */
export async function insertRawChunk(db: Db, id: string, seq: number, data: Buffer): Promise<void> {
  await db.insertInto('inbound_raw_chunks').values({ inbound_message_id: id, seq, data }).execute();
}

export async function findRawChunk(db: Db, id: string, seq: number): Promise<Buffer | undefined> {
  const r = await db.selectFrom('inbound_raw_chunks').select('data').where('inbound_message_id', '=', id).where('seq', '=', seq).executeTakeFirst();
  return r?.data;
}

export async function deleteRawChunks(db: Db, id: string): Promise<void> {
  await db.deleteFrom('inbound_raw_chunks').where('inbound_message_id', '=', id).execute();
}

/** The raw message of `id` when it is stored in the database. */
export async function findInboundMime(db: Db, id: string): Promise<Buffer | undefined> {
  const r = await db.selectFrom('inbound_raw').select('mime').where('inbound_message_id', '=', id).executeTakeFirst();
  return r?.mime;
}

/** Imported messages of a folder whose after-fetch action is still to be applied. */
export async function pendingAfterFetch(db: Db, serverId: string, folder: string): Promise<Array<{ uid: number; uidValidity: string }>> {
  const rows = await db
    .selectFrom('inbound_messages')
    .select(['uid', 'uid_validity'])
    .where('mail_server_id', '=', serverId)
    .where('after_fetch_pending', '=', 1)
    .where('folder', '=', folder)
    .orderBy('uid')
    .execute();
  return rows.map((r) => ({ uid: Number(r.uid), uidValidity: r.uid_validity }));
}

/** Marks the after-fetch action done for these UIDs, or for every UID of another UIDVALIDITY (they no longer name anything). */
export async function clearAfterFetch(db: Db, serverId: string, folder: string, uidValidity: string, which: number[] | 'stale'): Promise<void> {
  const base = db.updateTable('inbound_messages').set({ after_fetch_pending: 0 }).where('mail_server_id', '=', serverId).where('folder', '=', folder).where('after_fetch_pending', '=', 1);
  if (which === 'stale') {
    await base.where('uid_validity', '!=', uidValidity).execute();
    return;
  }
  for (let k = 0; k < which.length; k += 500) await base.where('uid_validity', '=', uidValidity).where('uid', 'in', which.slice(k, k + 500)).execute();
}

/** Graph: imported messages whose after-fetch action is still to be applied, by immutable id. */
export async function pendingRemoteAfterFetch(db: Db, serverId: string, folder: string): Promise<Array<{ uid: number; remoteId: string }>> {
  const rows = await db
    .selectFrom('inbound_messages')
    .select(['uid', 'remote_id'])
    .where('mail_server_id', '=', serverId)
    .where('folder', '=', folder)
    .where('after_fetch_pending', '=', 1)
    .where('remote_id', 'is not', null)
    .orderBy('uid')
    .execute();
  return rows.map((r) => ({ uid: Number(r.uid), remoteId: r.remote_id! }));
}

/** Which of `keys` (Message-IDs, or Graph immutable ids) this server has imported already. */
export async function existingDedupeKeys(db: Db, serverId: string, keys: string[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (let k = 0; k < keys.length; k += 500) {
    const rows = await db.selectFrom('inbound_messages').select('dedupe_key').where('mail_server_id', '=', serverId).where('dedupe_key', 'in', keys.slice(k, k + 500)).execute();
    for (const r of rows) out.add(r.dedupe_key);
  }
  return out;
}

