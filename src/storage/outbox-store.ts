import { type ExpressionBuilder, type Selectable, type Transaction, sql } from 'kysely';
import type { Db } from './database.ts';
import { containsText } from './text-search.ts';
import type { Database, OutboxMessageTable } from './schema.ts';
import type { StoredError } from './mail-server-store.ts';

export type OutboxState = 'queued' | 'sending' | 'sent' | 'failed' | 'held' | 'cancelled';

export interface OutboxRow {
  id: string;
  state: OutboxState;
  from: string;
  to: string[];
  cc: string[];
  bcc: string[];
  replyTo: string | null;
  subject: string;
  mailServerId: string | null;
  messageId: string;
  sizeBytes: number;
  attachments: Array<{ filename: string; contentType: string; size: number }>;
  idempotencyKey: string | null;
  requestHash: string | null;
  apiKeyId: string | null;
  attempts: number;
  maxAttempts: number;
  nextAttemptAt: string;
  queuedAt: string;
  leaseOwner: string | null;
  leaseUntil: string | null;
  heldAt: string | null;
  heldUntil: string | null;
  recipientCount: number;
  lastError: StoredError | null;
  smtpResponse: string | null;
  sentAt: string | null;
  createdAt: string;
  updatedAt: string;
  receivedVia: ReceivedVia | null;
  /** After the 250, from the reports about it: bounced, delayed, auto_replied, delivered; null when none came. */
  outcome: 'bounced' | 'delayed' | 'auto_replied' | 'delivered' | null;
}

/** Where a message came from when not the REST API. */
export interface ReceivedVia {
  protocol: 'smtp';
  clientAddress: string;
  apiKeyName: string;
}

/** A message built from the send API's fields. */
export interface OutboxPayload {
  /** Absent: rows written before raw payloads existed have none either. */
  kind?: undefined;
  text: string | null;
  html: string | null;
  headers: Record<string, string>;
  attachments: Array<{ filename: string; contentType: string; content: string }>;
  from: { name: string; address: string };
  to: Array<{ name: string; address: string }>;
  cc: Array<{ name: string; address: string }>;
  bcc: Array<{ name: string; address: string }>;
  replyTo: { name: string; address: string } | null;
}

/** A message accepted over SMTP: sent byte for byte as stored, to the envelope it arrived with. */
export interface RawPayload {
  kind: 'raw';
  envelope: { from: string; to: string[] };
  raw: Buffer;
}

const LIST_COLUMNS = [
  'id',
  'state',
  'from_addr',
  'to_json',
  'cc_json',
  'bcc_json',
  'reply_to',
  'subject',
  'mail_server_id',
  'message_id',
  'size_bytes',
  'attachments_meta',
  'idempotency_key',
  'request_hash',
  'api_key_id',
  'attempts',
  'max_attempts',
  'next_attempt_at',
  'queued_at',
  'lease_owner',
  'lease_until',
  'held_at',
  'held_until',
  'recipient_count',
  'last_error',
  'smtp_response',
  'sent_at',
  'created_at',
  'updated_at',
  'received_via',
  'outcome',
] as const;

type ListRow = Pick<Selectable<OutboxMessageTable>, (typeof LIST_COLUMNS)[number]>;

function toRow(r: ListRow): OutboxRow {
  return {
    id: r.id,
    state: r.state as OutboxState,
    from: r.from_addr,
    to: JSON.parse(r.to_json) as string[],
    cc: JSON.parse(r.cc_json) as string[],
    bcc: JSON.parse(r.bcc_json) as string[],
    replyTo: r.reply_to,
    subject: r.subject,
    mailServerId: r.mail_server_id,
    messageId: r.message_id,
    sizeBytes: Number(r.size_bytes),
    attachments: JSON.parse(r.attachments_meta) as OutboxRow['attachments'],
    idempotencyKey: r.idempotency_key,
    requestHash: r.request_hash,
    apiKeyId: r.api_key_id,
    attempts: Number(r.attempts),
    maxAttempts: Number(r.max_attempts),
    nextAttemptAt: r.next_attempt_at,
    queuedAt: r.queued_at,
    leaseOwner: r.lease_owner,
    leaseUntil: r.lease_until,
    heldAt: r.held_at,
    heldUntil: r.held_until,
    recipientCount: Number(r.recipient_count),
    lastError: r.last_error ? (JSON.parse(r.last_error) as StoredError) : null,
    smtpResponse: r.smtp_response,
    sentAt: r.sent_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    receivedVia: r.received_via ? (JSON.parse(r.received_via) as ReceivedVia) : null,
    outcome: (r.outcome ?? null) as OutboxRow['outcome'],
  };
}

export interface NewOutboxMessage {
  id: string;
  from: string;
  to: string[];
  cc: string[];
  bcc: string[];
  replyTo: string | null;
  subject: string;
  mailServerId: string;
  messageId: string;
  sizeBytes: number;
  payload: OutboxPayload | RawPayload;
  attachments: OutboxRow['attachments'];
  idempotencyKey: string | null;
  requestHash: string | null;
  apiKeyId: string | null;
  maxAttempts: number;
  receivedVia?: ReceivedVia;
}

function newRow(m: NewOutboxMessage, ts: string): OutboxMessageTable {
  return {
    id: m.id,
    outcome: null,
    state: 'queued',
    from_addr: m.from,
    to_json: JSON.stringify(m.to),
    cc_json: JSON.stringify(m.cc),
    bcc_json: JSON.stringify(m.bcc),
    reply_to: m.replyTo,
    subject: m.subject,
    mail_server_id: m.mailServerId,
    message_id: m.messageId,
    size_bytes: m.sizeBytes,
    // The raw bytes go in a column of their own, not base64 inside the JSON.
    payload: JSON.stringify(m.payload.kind === 'raw' ? { kind: 'raw', envelope: m.payload.envelope } : m.payload),
    attachments_meta: JSON.stringify(m.attachments),
    idempotency_key: m.idempotencyKey,
    request_hash: m.requestHash,
    api_key_id: m.apiKeyId,
    attempts: 0,
    max_attempts: m.maxAttempts,
    next_attempt_at: ts,
    queued_at: ts,
    lease_owner: null,
    lease_until: null,
    held_at: null,
    held_until: null,
    // What the daily quota counts: the envelope's recipients for a message received over SMTP.
    recipient_count: m.payload.kind === 'raw' ? m.payload.envelope.to.length : m.to.length + m.cc.length + m.bcc.length,
    last_error: null,
    smtp_response: null,
    sent_at: null,
    created_at: ts,
    updated_at: ts,
    raw_mime: m.payload.kind === 'raw' ? m.payload.raw : null,
    received_via: m.receivedVia ? JSON.stringify(m.receivedVia) : null,
  };
}

/**
 * Group commit: messages accepted in the same event-loop turn share one transaction, so one fsync
 * makes all of them durable instead of one fsync each.
 */
export async function insertOutboxMessages(db: Db, ms: NewOutboxMessage[], now: Date): Promise<void> {
  const ts = now.toISOString();
  await db.transaction().execute(async (trx) => {
    // 32 columns a row: stay well under SQLite's 32,766 bound parameters per statement.
    for (let i = 0; i < ms.length; i += 500) {
      await trx.insertInto('outbox_messages').values(ms.slice(i, i + 500).map((m) => newRow(m, ts))).execute();
    }
  });
}

/** Inserts a queued message; false if the idempotency key is taken (the caller reads the winner). */
export async function insertOutboxMessage(db: Db, m: NewOutboxMessage, now: Date): Promise<boolean> {
  try {
    await db.insertInto('outbox_messages').values(newRow(m, now.toISOString())).execute();
    return true;
  } catch (e) {
    const msg = String((e as Error).message);
    if (m.idempotencyKey && /UNIQUE|unique|duplicate key/.test(msg)) return false;
    throw e;
  }
}

/**
 * A message sent at once outside the queue (Send test email), recorded with its outcome so that it
 * is listed with the others; the worker never claims a sent or failed row.
 */
export async function insertFinishedMessage(
  db: Db,
  m: NewOutboxMessage,
  outcome: { state: 'sent'; smtpResponse: string } | { state: 'failed'; error: StoredError },
  now: Date,
): Promise<void> {
  const ts = now.toISOString();
  await db
    .insertInto('outbox_messages')
    .values({
      ...newRow(m, ts),
      state: outcome.state,
      attempts: 1,
      sent_at: outcome.state === 'sent' ? ts : null,
      smtp_response: outcome.state === 'sent' ? outcome.smtpResponse : null,
      last_error: outcome.state === 'failed' ? JSON.stringify(outcome.error) : null,
    })
    .execute();
}

export async function findOutboxMessage(db: Db, id: string): Promise<OutboxRow | undefined> {
  const r = await db.selectFrom('outbox_messages').select(LIST_COLUMNS).where('id', '=', id).executeTakeFirst();
  return r && toRow(r);
}

/** The body and custom headers a message was queued with; null for one received over SMTP (sent as it came). */
export async function findOutboxContent(db: Db, id: string): Promise<Pick<OutboxPayload, 'text' | 'html' | 'headers'> | null> {
  const r = await db.selectFrom('outbox_messages').select(['payload', 'raw_mime']).where('id', '=', id).executeTakeFirst();
  if (!r || r.raw_mime) return null;
  const p = JSON.parse(r.payload) as OutboxPayload | Omit<RawPayload, 'raw'>;
  if (p.kind === 'raw') return null;
  return { text: p.text, html: p.html, headers: p.headers };
}

export async function findByIdempotencyKey(db: Db, key: string): Promise<OutboxRow | undefined> {
  const r = await db.selectFrom('outbox_messages').select(LIST_COLUMNS).where('idempotency_key', '=', key).executeTakeFirst();
  return r && toRow(r);
}

export interface OutboxFilter {
  state?: OutboxState;
  mailServerId?: string;
  /** Only the messages this API key queued (REST or SMTP listener). */
  apiKeyId?: string;
  /** Only the messages of these servers (a server-limited API key). */
  mailServerIds?: string[];
  q?: string;
  /** (createdAt, id) of the last row of the previous page. */
  after?: { createdAt: string; id: string };
  limit: number;
}

export async function listOutboxMessages(db: Db, f: OutboxFilter): Promise<OutboxRow[]> {
  let q = db.selectFrom('outbox_messages').select(LIST_COLUMNS);
  if (f.state) q = q.where('state', '=', f.state);
  if (f.mailServerId) q = q.where('mail_server_id', '=', f.mailServerId);
  if (f.apiKeyId) q = q.where('api_key_id', '=', f.apiKeyId);
  if (f.mailServerIds) q = q.where('mail_server_id', 'in', f.mailServerIds);
  if (f.q) q = q.where(containsText(['subject', 'from_addr', 'to_json', 'message_id'], f.q));
  if (f.after) {
    const { createdAt, id } = f.after;
    q = q.where((eb) => eb.or([eb('created_at', '<', createdAt), eb.and([eb('created_at', '=', createdAt), eb('id', '<', id)])]));
  }
  const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(f.limit).execute();
  return rows.map(toRow);
}

export interface Claimed extends OutboxRow {
  payload: OutboxPayload | RawPayload;
}

/** Queued and due, or claimed by an owner whose lease ran out (it crashed mid-send). */
const isDue = (ts: string) => (eb: ExpressionBuilder<Database, 'outbox_messages'>) =>
  eb.or([
    eb.and([eb('state', '=', 'queued'), eb('next_attempt_at', '<=', ts)]),
    eb.and([eb('state', '=', 'sending'), eb('lease_until', '<', ts)]),
  ]);

/** Per mailbox, its messages due and not being sent (the in-flow backlog; the index on mail_server_id, state serves it). */
export async function dueCounts(db: Db, serverIds: readonly string[], now: Date): Promise<Map<string, number>> {
  if (!serverIds.length) return new Map();
  const rows = await db
    .selectFrom('outbox_messages')
    .select((eb) => ['mail_server_id', eb.fn.countAll<number | string>().as('n')])
    .where('mail_server_id', 'in', [...serverIds])
    .where('state', '=', 'queued')
    .where('next_attempt_at', '<=', now.toISOString())
    .groupBy('mail_server_id')
    .execute();
  return new Map(rows.map((r) => [r.mail_server_id!, Number(r.n)]));
}

/**
 * Stored bytes a claim may still take (OUTBOX_INFLIGHT_MB less what is in flight): messages are taken
 * in order while they fit, and the first one that does not ends the claim, so a large message waits
 * for room rather than being passed over for ever. One larger than the whole budget goes alone, once
 * nothing else is in flight (`alone`).
 */
export class ByteBudget {
  /** A message was left out for want of bytes: the worker claims again when bytes in flight are freed. */
  short = false;

  constructor(
    private left: number,
    private alone: boolean,
  ) {}

  /** How many of `sizes`, in order, fit; `take` also spends them. */
  fit(sizes: readonly number[], take = false): number {
    let { left, alone } = this;
    let n = 0;
    for (const size of sizes) {
      if (size <= left) left -= size;
      else if (alone) left = 0;
      else {
        this.short = true;
        break;
      }
      alone = false;
      n++;
    }
    if (take) Object.assign(this, { left, alone });
    return n;
  }
}

/**
 * Takes up to `limit` due messages for `owner`: queued ones whose time has come, and ones whose
 * previous owner's lease ran out (it crashed mid-send). Each claim counts as an attempt. Messages of
 * `paced` servers are left to claimForServer, which counts their limits first.
 */
export async function claimDue(
  db: Db,
  dialect: 'sqlite' | 'postgres',
  owner: string,
  now: Date,
  leaseMs: number,
  limit: number,
  /** Servers whose messages are left alone (paced ones, busy ones), or `{ only }` the servers whose messages may be taken (and those of no server): the shorter list. */
  paced: string[] | { only: string[] } = [],
  /** Round robin: at most this many of one server's messages per claim, the servers' first ones before anyone's second. */
  perServer?: number,
  bytes?: ByteBudget,
): Promise<Claimed[]> {
  const ts = now.toISOString();
  return db.transaction().execute(async (trx) => {
    const skip = <Q extends { where: (...a: any[]) => Q }>(q: Q): Q =>
      !Array.isArray(paced)
        ? q.where((eb: ExpressionBuilder<Database, 'outbox_messages'>) => (paced.only.length ? eb.or([eb('mail_server_id', 'is', null), eb('mail_server_id', 'in', paced.only)]) : eb('mail_server_id', 'is', null)))
        : paced.length
          ? q.where((eb: ExpressionBuilder<Database, 'outbox_messages'>) => eb.or([eb('mail_server_id', 'is', null), eb('mail_server_id', 'not in', paced)]))
          : q;
    if (perServer === undefined) {
      let pick = skip(trx.selectFrom('outbox_messages').select(['id', 'size_bytes']).where(isDue(ts))).orderBy('next_attempt_at').limit(limit);
      if (dialect === 'postgres') pick = pick.forUpdate().skipLocked();
      const rows = await pick.execute();
      const n = bytes ? bytes.fit(rows.map((r) => Number(r.size_bytes)), true) : rows.length;
      return claimIds(trx, rows.slice(0, n).map((r) => r.id), owner, now, leaseMs);
    }
    // The next due messages in order, a few times the claim, of which at most `perServer` per
    // server: one mailbox's long queue takes its share, the rest goes to the next mailboxes. The
    // worker leaves a mailbox out of the claim while it has its connections' worth in flight, so a
    // long queue does not hide the others behind it. Index order, no sort of the whole queue.
    const ahead = await skip(trx.selectFrom('outbox_messages').select(['id', 'mail_server_id', 'size_bytes']).where(isDue(ts)))
      .orderBy('next_attempt_at')
      .limit(limit * 4)
      .execute();
    const taken = new Map<string | null, number>();
    const picked: Array<{ id: string }> = [];
    for (const r of ahead) {
      if (picked.length >= limit) break;
      const n = taken.get(r.mail_server_id) ?? 0;
      if (n >= perServer) continue;
      if (bytes && !bytes.fit([Number(r.size_bytes)], true)) break;
      taken.set(r.mail_server_id, n + 1);
      picked.push({ id: r.id });
    }
    let ids = picked.map((r) => r.id);
    if (dialect === 'postgres' && ids.length) {
      // Lock the picked rows now, skipping those another instance holds, and keep only those
      // still due once locked.
      ids = (await trx.selectFrom('outbox_messages').select('id').where('id', 'in', ids).where(isDue(ts)).forUpdate().skipLocked().execute()).map((r) => r.id);
    }
    return claimIds(trx, ids, owner, now, leaseMs);
  });
}

/** The servers with a message due now (queued and due, or left by a crashed sender). */
export async function serversWithDue(db: Db, now: Date): Promise<Set<string>> {
  const rows = await db.selectFrom('outbox_messages').select('mail_server_id').distinct().where(isDue(now.toISOString())).where('mail_server_id', 'is not', null).execute();
  return new Set(rows.map((r) => r.mail_server_id!));
}

async function claimIds(trx: Transaction<Database>, ids: string[], owner: string, now: Date, leaseMs: number): Promise<Claimed[]> {
  if (!ids.length) return [];
  const ts = now.toISOString();
  const rows = await trx
    .updateTable('outbox_messages')
    .set((eb) => ({
      state: 'sending',
      lease_owner: owner,
      lease_until: new Date(now.getTime() + leaseMs).toISOString(),
      attempts: eb('attempts', '+', 1),
      updated_at: ts,
    }))
    .where('id', 'in', ids)
    .returning([...LIST_COLUMNS, 'payload', 'raw_mime'])
    .execute();
  return rows.map((r) => ({
    ...toRow(r),
    payload: r.raw_mime ? { ...(JSON.parse(r.payload) as Omit<RawPayload, 'raw'>), raw: Buffer.from(r.raw_mime) } : (JSON.parse(r.payload) as OutboxPayload),
  }));
}

/** What a server's limits count: its sends of the last minute and the recipients of the last 24 h. */
export interface ServerUsage {
  /** When each message of the last 60 s went out (or was claimed, if still being sent), oldest first. */
  lastMinute: string[];
  /** Recipients of messages sent in the last 24 h plus those being sent now. */
  recipientsLastDay: number;
}

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 3600_000;

/**
 * Counted from the rows, not from memory: every instance sharing the database sees the same usage,
 * so the limits hold across instances (claimForServer serialises the count and the claim).
 */
export async function serverUsage(db: Db, serverId: string, now: Date): Promise<ServerUsage> {
  const minuteAgo = new Date(now.getTime() - MINUTE_MS).toISOString();
  const dayAgo = new Date(now.getTime() - DAY_MS).toISOString();
  const [recent, day] = await Promise.all([
    db
      .selectFrom('outbox_messages')
      .select((eb) => eb.fn.coalesce('sent_at', 'updated_at').as('at'))
      .where('mail_server_id', '=', serverId)
      .where((eb) => eb.or([eb('sent_at', '>', minuteAgo), eb('state', '=', 'sending')]))
      .execute(),
    db
      .selectFrom('outbox_messages')
      .select((eb) => eb.fn.sum<string | number | null>('recipient_count').as('n'))
      .where('mail_server_id', '=', serverId)
      .where((eb) => eb.or([eb('sent_at', '>', dayAgo), eb('state', '=', 'sending')]))
      .executeTakeFirst(),
  ]);
  return { lastMinute: recent.map((r) => String(r.at)).sort(), recipientsLastDay: Number(day?.n ?? 0) };
}

/**
 * The server's sends of the last 24 h, oldest first, with messages being sent counted from their
 * claim: when each one's recipients leave the window.
 */
export async function dayWindow(db: Db, serverId: string, now: Date): Promise<Array<{ at: string; recipients: number }>> {
  const rows = await db
    .selectFrom('outbox_messages')
    .select((eb) => [eb.fn.coalesce('sent_at', 'updated_at').as('at'), 'recipient_count'])
    .where('mail_server_id', '=', serverId)
    .where((eb) => eb.or([eb('sent_at', '>', new Date(now.getTime() - DAY_MS).toISOString()), eb('state', '=', 'sending')]))
    .execute();
  return rows.map((r) => ({ at: String(r.at), recipients: Number(r.recipient_count) })).sort((a, b) => a.at.localeCompare(b.at));
}

/** The due messages of one server in claim order, with what the limits count of each. */
export async function dueForServer(db: Db, dialect: 'sqlite' | 'postgres', serverId: string, now: Date, limit: number): Promise<DueMessage[]> {
  let q = db
    .selectFrom('outbox_messages')
    .select(['id', 'recipient_count', 'size_bytes'])
    .where('mail_server_id', '=', serverId)
    .where(isDue(now.toISOString()))
    .orderBy('next_attempt_at')
    .limit(limit);
  if (dialect === 'postgres') q = q.forUpdate().skipLocked();
  return (await q.execute()).map((r) => ({ id: r.id, recipients: Number(r.recipient_count), sizeBytes: Number(r.size_bytes) }));
}

/** A due message of one server, as its claim's `choose` sees it. */
export interface DueMessage {
  id: string;
  recipients: number;
  sizeBytes: number;
}

/**
 * One server's claim, with its usage counted in the same transaction. On PostgreSQL an advisory lock
 * per server makes count-then-claim one step across instances, so two of them cannot both take the
 * last message of a minute or the last recipients of a day. `choose` gets the usage and the due
 * messages and returns the ids to claim.
 */
export async function claimForServer<T extends { ids: string[] }>(
  db: Db,
  dialect: 'sqlite' | 'postgres',
  serverId: string,
  owner: string,
  now: Date,
  leaseMs: number,
  limit: number,
  choose: (usage: ServerUsage, due: DueMessage[], trx: Db) => Promise<T> | T,
): Promise<{ claimed: Claimed[]; choice: T | undefined }> {
  return db.transaction().execute((trx) => claimOne(trx, dialect, serverId, owner, now, leaseMs, limit, choose));
}

async function claimOne<T extends { ids: string[] }>(
  trx: Transaction<Database>,
  dialect: 'sqlite' | 'postgres',
  serverId: string,
  owner: string,
  now: Date,
  leaseMs: number,
  limit: number,
  choose: (usage: ServerUsage, due: DueMessage[], trx: Db) => Promise<T> | T,
): Promise<{ claimed: Claimed[]; choice: T | undefined }> {
  if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(hashtext(${`mailroom.outbox:${serverId}`}))`.execute(trx);
  const due = await dueForServer(trx, dialect, serverId, now, limit);
  if (!due.length) return { claimed: [], choice: undefined };
  const choice = await choose(await serverUsage(trx, serverId, now), due, trx);
  return { claimed: await claimIds(trx, choice.ids, owner, now, leaseMs), choice };
}

/**
 * claimForServer for several servers in turn, each taking up to what `room` leaves it (given what
 * the ones before took). On SQLite all in one transaction: one commit (one fsync) for a round of a
 * thousand mailboxes with a message each, not one per mailbox. On PostgreSQL a transaction per
 * server, so the advisory locks are never held several at a time (no lock-order deadlock between
 * instances).
 */
export async function claimForServers<T extends { ids: string[] }>(
  db: Db,
  dialect: 'sqlite' | 'postgres',
  serverIds: readonly string[],
  owner: string,
  now: Date,
  leaseMs: number,
  room: (serverId: string, claimedSoFar: number) => number,
  choose: (serverId: string, usage: ServerUsage, due: DueMessage[], trx: Db) => Promise<T> | T,
): Promise<Map<string, { claimed: Claimed[]; choice: T | undefined }>> {
  const out = new Map<string, { claimed: Claimed[]; choice: T | undefined }>();
  const each = async (claim: (id: string, limit: number) => Promise<{ claimed: Claimed[]; choice: T | undefined }>) => {
    let taken = 0;
    for (const id of serverIds) {
      const limit = room(id, taken);
      if (limit <= 0) continue;
      const r = await claim(id, limit);
      taken += r.claimed.length;
      out.set(id, r);
    }
  };
  if (dialect === 'postgres') await each((id, limit) => claimForServer(db, dialect, id, owner, now, leaseMs, limit, (u, d, t) => choose(id, u, d, t)));
  else await db.transaction().execute((trx) => each((id, limit) => claimOne(trx, dialect, id, owner, now, leaseMs, limit, (u, d, t) => choose(id, u, d, t))));
  return out;
}

/**
 * What sendStatus reads, for many servers in five statements instead of five each: Mail Health
 * and the server list at a thousand mailboxes.
 */
export async function sendingSummaries(
  db: Db,
  now: Date,
): Promise<{
  usage: Map<string, ServerUsage>;
  held: Map<string, { count: number; until: string | null }>;
  first: Map<string, { nextAttemptAt: string; recipients: number; count: number }>;
}> {
  const minuteAgo = new Date(now.getTime() - MINUTE_MS).toISOString();
  const dayAgo = new Date(now.getTime() - DAY_MS).toISOString();
  const [recent, day, held, counts, firsts] = await Promise.all([
    db
      .selectFrom('outbox_messages')
      .select((eb) => ['mail_server_id', eb.fn.coalesce('sent_at', 'updated_at').as('at')])
      .where((eb) => eb.or([eb('sent_at', '>', minuteAgo), eb('state', '=', 'sending')]))
      .execute(),
    db
      .selectFrom('outbox_messages')
      .select((eb) => ['mail_server_id', eb.fn.sum<string | number | null>('recipient_count').as('n')])
      .where((eb) => eb.or([eb('sent_at', '>', dayAgo), eb('state', '=', 'sending')]))
      .groupBy('mail_server_id')
      .execute(),
    db
      .selectFrom('outbox_messages')
      .select((eb) => ['mail_server_id', eb.fn.countAll<string | number>().as('n'), eb.fn.min('held_until').as('until')])
      .where('state', '=', 'held')
      .groupBy('mail_server_id')
      .execute(),
    db
      .selectFrom('outbox_messages')
      .select((eb) => ['mail_server_id', eb.fn.countAll<string | number>().as('n')])
      .where('state', '=', 'queued')
      .groupBy('mail_server_id')
      .execute(),
    db
      .selectFrom(
        db
          .selectFrom('outbox_messages')
          .select(['mail_server_id', 'next_attempt_at', 'recipient_count', sql<number>`row_number() over (partition by mail_server_id order by next_attempt_at)`.as('rn')])
          .where('state', '=', 'queued')
          .as('q'),
      )
      .select(['q.mail_server_id', 'q.next_attempt_at', 'q.recipient_count'])
      .where('q.rn', '=', 1)
      .execute(),
  ]);
  const usage = new Map<string, ServerUsage>();
  const u = (id: string) => usage.get(id) ?? (usage.set(id, { lastMinute: [], recipientsLastDay: 0 }), usage.get(id)!);
  for (const r of recent) if (r.mail_server_id) u(r.mail_server_id).lastMinute.push(String(r.at));
  for (const x of usage.values()) x.lastMinute.sort();
  for (const r of day) if (r.mail_server_id) u(r.mail_server_id).recipientsLastDay = Number(r.n ?? 0);
  const heldBy = new Map(held.filter((r) => r.mail_server_id).map((r) => [r.mail_server_id!, { count: Number(r.n), until: (r.until as string | null) ?? null }]));
  const countBy = new Map(counts.map((r) => [r.mail_server_id, Number(r.n)]));
  const first = new Map(
    firsts.filter((r) => r.mail_server_id).map((r) => [r.mail_server_id!, { nextAttemptAt: r.next_attempt_at, recipients: Number(r.recipient_count), count: countBy.get(r.mail_server_id) ?? 0 }]),
  );
  return { usage, held: heldBy, first };
}

/** The next queued message of a server (its time and recipients) and how many are queued. */
export async function firstQueued(db: Db, serverId: string): Promise<{ nextAttemptAt: string; recipients: number; count: number } | undefined> {
  const base = db.selectFrom('outbox_messages').where('mail_server_id', '=', serverId).where('state', '=', 'queued');
  const [first, n] = await Promise.all([
    base.select(['next_attempt_at', 'recipient_count']).orderBy('next_attempt_at').limit(1).executeTakeFirst(),
    base.select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirst(),
  ]);
  return first && { nextAttemptAt: first.next_attempt_at, recipients: Number(first.recipient_count), count: Number(n?.n ?? 0) };
}

/**
 * A sending quota is used up: every queued message of the server waits until `until`, shown as held
 * with the time it resumes; releaseHeld puts them back then. Not an attempt at delivery.
 */
export async function holdServerUntil(db: Db, serverId: string, until: Date, error: StoredError, now: Date): Promise<number> {
  const ts = now.toISOString();
  const r = await db
    .updateTable('outbox_messages')
    .set({ state: 'held', held_at: ts, held_until: until.toISOString(), last_error: JSON.stringify(error), updated_at: ts })
    .where('mail_server_id', '=', serverId)
    .where('state', '=', 'queued')
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

/** Held messages of one server: how many, and the earliest time a quota hold ends. */
export async function heldSummary(db: Db, serverId: string): Promise<{ count: number; until: string | null }> {
  const r = await db
    .selectFrom('outbox_messages')
    .select((eb) => [eb.fn.countAll<string | number>().as('n'), eb.fn.min('held_until').as('until')])
    .where('mail_server_id', '=', serverId)
    .where('state', '=', 'held')
    .executeTakeFirst();
  return { count: Number(r?.n ?? 0), until: (r?.until as string | null | undefined) ?? null };
}

/**
 * Renews every claim `owner` holds (its heartbeat while it sends): a live worker keeps its messages
 * however long a send takes, a dead one loses them when the short lease runs out.
 */
export async function renewLeases(db: Db, owner: string, now: Date, leaseMs: number): Promise<number> {
  const r = await db
    .updateTable('outbox_messages')
    .set({ lease_until: new Date(now.getTime() + leaseMs).toISOString() })
    .where('lease_owner', '=', owner)
    .where('state', '=', 'sending')
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

/**
 * Every claim back to the queue, at once. Only for SQLite at worker start: there one process owns the
 * outbox, so a claim still open then was left by a process that died mid-send.
 */
export async function reclaimAll(db: Db, now: Date): Promise<number> {
  const ts = now.toISOString();
  const r = await db
    .updateTable('outbox_messages')
    .set({ state: 'queued', lease_owner: null, lease_until: null, next_attempt_at: ts, updated_at: ts })
    .where('state', '=', 'sending')
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

/** Outcome writes only land while the worker still owns the lease. */
function owned(db: Db, id: string, owner: string) {
  return db.updateTable('outbox_messages').where('id', '=', id).where('lease_owner', '=', owner).where('state', '=', 'sending');
}

export async function markSent(db: Db, id: string, owner: string, smtpResponse: string, now: Date): Promise<boolean> {
  return (await markSentMany(db, owner, [{ id, smtpResponse }], now))[0]!;
}

/** Records several deliveries in one transaction; per message, whether the lease was still ours. */
export async function markSentMany(db: Db, owner: string, sent: Array<{ id: string; smtpResponse: string }>, now: Date): Promise<boolean[]> {
  const ts = now.toISOString();
  return db.transaction().execute(async (trx) => {
    const out: boolean[] = [];
    for (const { id, smtpResponse } of sent) {
      const r = await owned(trx, id, owner)
        .set({ state: 'sent', sent_at: ts, smtp_response: smtpResponse, lease_owner: null, lease_until: null, last_error: null, updated_at: ts })
        .executeTakeFirst();
      out.push(Number(r.numUpdatedRows) === 1);
    }
    return out;
  });
}

export async function markRetry(db: Db, id: string, owner: string, nextAt: Date, error: StoredError, now: Date): Promise<void> {
  await owned(db, id, owner)
    .set({ state: 'queued', next_attempt_at: nextAt.toISOString(), last_error: JSON.stringify(error), lease_owner: null, lease_until: null, updated_at: now.toISOString() })
    .execute();
}

export async function markFailed(db: Db, id: string, owner: string, error: StoredError, now: Date): Promise<void> {
  await owned(db, id, owner)
    .set({ state: 'failed', last_error: JSON.stringify(error), lease_owner: null, lease_until: null, updated_at: now.toISOString() })
    .execute();
}

/**
 * Held: not an attempt at delivery (no usable credentials, or a quota used up), so the claim's attempt
 * is given back. With `until` (a quota) the message goes back to the queue by itself then.
 */
export async function markHeld(db: Db, id: string, owner: string, error: StoredError, now: Date, until?: Date): Promise<void> {
  const ts = now.toISOString();
  await owned(db, id, owner)
    .set((eb) => ({
      state: 'held',
      held_at: ts,
      held_until: until ? until.toISOString() : null,
      attempts: eb('attempts', '-', 1),
      last_error: JSON.stringify(error),
      lease_owner: null,
      lease_until: null,
      updated_at: ts,
    }))
    .execute();
}

/**
 * Held messages go back to the queue once their server changed after they were held: reconnected,
 * refreshed, or its settings saved; and messages held for a quota once its time has come.
 * `serverId` releases one server's messages unconditionally.
 */
export async function releaseHeld(db: Db, now: Date, serverId?: string): Promise<number> {
  const ts = now.toISOString();
  let q = db
    .updateTable('outbox_messages')
    .set({ state: 'queued', next_attempt_at: ts, held_at: null, held_until: null, updated_at: ts })
    .where('state', '=', 'held');
  if (serverId) q = q.where('mail_server_id', '=', serverId);
  else {
    q = q.where((eb) =>
      eb.or([
        eb('held_until', '<=', ts),
        eb.exists(
          eb
            .selectFrom('oauth_tokens as t')
            .innerJoin('mail_servers as s', 's.id', 't.mail_server_id')
            .select('t.mail_server_id')
            .whereRef('t.mail_server_id', '=', 'outbox_messages.mail_server_id')
            .where('t.status', '=', 'valid')
            // A refreshed token says nothing about a quota: only saving the server (a raised limit) does.
            .where((e2) =>
              e2.or([
                e2.and([e2('outbox_messages.held_until', 'is', null), e2('t.updated_at', '>', e2.ref('outbox_messages.held_at'))]),
                e2('s.updated_at', '>', e2.ref('outbox_messages.held_at')),
              ]),
            ),
        ),
      ]),
    );
  }
  const r = await q.executeTakeFirst();
  return Number(r.numUpdatedRows);
}

export async function requeueMessage(db: Db, id: string, now: Date): Promise<boolean> {
  const ts = now.toISOString();
  const r = await db
    .updateTable('outbox_messages')
    .set({ state: 'queued', attempts: 0, next_attempt_at: ts, queued_at: ts, held_at: null, held_until: null, updated_at: ts })
    .where('id', '=', id)
    .where('state', 'in', ['failed', 'held', 'cancelled'])
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function cancelMessage(db: Db, id: string, now: Date): Promise<boolean> {
  const r = await db
    .updateTable('outbox_messages')
    .set({ state: 'cancelled', updated_at: now.toISOString() })
    .where('id', '=', id)
    .where('state', 'in', ['queued', 'held', 'failed'])
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function countByState(db: Db): Promise<Record<string, number>> {
  const rows = await db.selectFrom('outbox_messages').select(['state', (eb) => eb.fn.countAll<string | number>().as('n')]).groupBy('state').execute();
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}

/** Outbox messages by RFC Message-ID: links an incoming reply to the message it answers. */
/**
 * For each list of Message-IDs (a reply's In-Reply-To and References), the newest outbound message
 * it names, or null: one query for all the lists.
 */
export async function findOutboxIdsByMessageIds(db: Db, lists: string[][]): Promise<Array<string | null>> {
  const all = [...new Set(lists.flat())];
  const newest = new Map<string, { id: string; createdAt: string }>();
  for (let k = 0; k < all.length; k += 500) {
    const rows = await db.selectFrom('outbox_messages').select(['id', 'message_id', 'created_at']).where('message_id', 'in', all.slice(k, k + 500)).execute();
    for (const r of rows) {
      const seen = newest.get(r.message_id);
      if (!seen || r.created_at > seen.createdAt) newest.set(r.message_id, { id: r.id, createdAt: r.created_at });
    }
  }
  return lists.map((ids) => {
    let best: { id: string; createdAt: string } | undefined;
    for (const id of ids) {
      const hit = newest.get(id);
      if (hit && (!best || hit.createdAt > best.createdAt)) best = hit;
    }
    return best?.id ?? null;
  });
}
