import type { Insertable, Selectable } from 'kysely';
import { redactUrlCredentials } from '../net/outbound-policy.ts';
import { isPostgres } from './wakeups.ts';
import type { Db } from './database.ts';
import type { WebhookDeliveryTable, WebhookTable } from './schema.ts';

export interface WebhookRecord {
  id: string;
  url: string;
  description: string | null;
  secretSealed: string;
  active: boolean;
  createdAt: string;
}

const toWebhook = (r: Selectable<WebhookTable>): WebhookRecord => ({
  id: r.id,
  url: r.url,
  description: r.description,
  secretSealed: r.secret_sealed,
  active: Number(r.active) === 1,
  createdAt: r.created_at,
});

export async function insertWebhook(db: Db, w: Omit<WebhookRecord, 'createdAt'>, now: Date): Promise<void> {
  const ts = now.toISOString();
  await db
    .insertInto('webhooks')
    .values({ id: w.id, url: w.url, description: w.description, secret_sealed: w.secretSealed, active: w.active ? 1 : 0, created_at: ts, updated_at: ts })
    .execute();
}

export async function listWebhooks(db: Db): Promise<WebhookRecord[]> {
  return (await db.selectFrom('webhooks').selectAll().orderBy('created_at').execute()).map(toWebhook);
}

export async function findWebhook(db: Db, id: string): Promise<WebhookRecord | undefined> {
  const r = await db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
  return r && toWebhook(r);
}

export async function updateWebhook(db: Db, id: string, p: { url?: string; description?: string | null; active?: boolean }, now: Date): Promise<boolean> {
  const r = await db
    .updateTable('webhooks')
    .set({
      ...(p.url !== undefined && { url: p.url }),
      ...(p.description !== undefined && { description: p.description }),
      ...(p.active !== undefined && { active: p.active ? 1 : 0 }),
      updated_at: now.toISOString(),
    })
    .where('id', '=', id)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function deleteWebhook(db: Db, id: string): Promise<boolean> {
  const r = await db.deleteFrom('webhooks').where('id', '=', id).executeTakeFirst();
  return Number(r.numDeletedRows) === 1;
}

export type DeliveryState = 'pending' | 'delivered' | 'failed';

/**
 * A delivery due now, as every event queues it: a received message (`event` null) or a report on an
 * outgoing message (its event and report). Inserted in the transaction that stores what it announces.
 */
export function pendingDelivery(d: { id: string; webhookId: string; inboundMessageId: string; event?: string; reportId?: string }, ts: string): Insertable<WebhookDeliveryTable> {
  return {
    id: d.id,
    webhook_id: d.webhookId,
    inbound_message_id: d.inboundMessageId,
    event: d.event ?? null,
    report_id: d.reportId ?? null,
    state: 'pending',
    attempts: 0,
    next_attempt_at: ts,
    lease_until: null,
    last_status: null,
    last_error: null,
    delivered_at: null,
    created_at: ts,
    updated_at: ts,
  };
}

/** One attempt of a delivery: 'retry' (failed, another is scheduled), 'failed' (the last), 'delivered'. */
export interface DeliveryAttempt {
  attempt: number;
  /** The first attempt after an admin's Redeliver. */
  redelivery: boolean;
  outcome: 'delivered' | 'retry' | 'failed';
  status: number | null;
  error: string | null;
  at: string;
}

export interface DeliveryRow {
  id: string;
  webhookId: string;
  webhookUrl: string;
  inboundMessageId: string;
  subject: string;
  state: DeliveryState;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  nextAttemptAt: string | null;
  deliveredAt: string | null;
  createdAt: string;
  /** Every attempt, oldest first. */
  attemptLog: DeliveryAttempt[];
}

function deliveries(db: Db) {
  return db
    .selectFrom('webhook_deliveries as d')
    .innerJoin('webhooks as w', 'w.id', 'd.webhook_id')
    .innerJoin('inbound_messages as m', 'm.id', 'd.inbound_message_id')
    .select(['d.id', 'd.webhook_id', 'w.url', 'd.inbound_message_id', 'm.subject', 'd.state', 'd.attempts', 'd.last_status', 'd.last_error', 'd.next_attempt_at', 'd.delivered_at', 'd.created_at']);
}

type JoinedRow = Pick<Selectable<WebhookDeliveryTable>, 'id' | 'webhook_id' | 'inbound_message_id' | 'state' | 'attempts' | 'last_status' | 'last_error' | 'next_attempt_at' | 'delivered_at' | 'created_at'> & {
  url: string;
  subject: string;
};

const toDelivery = (r: JoinedRow, attemptLog: DeliveryAttempt[]): DeliveryRow => ({
  id: r.id,
  webhookId: r.webhook_id,
  // A user name and password in a webhook URL saved before they were refused is never shown.
  webhookUrl: redactUrlCredentials(r.url),
  inboundMessageId: r.inbound_message_id,
  subject: r.subject,
  state: r.state as DeliveryState,
  attempts: Number(r.attempts),
  lastStatus: r.last_status === null ? null : Number(r.last_status),
  lastError: r.last_error,
  nextAttemptAt: r.state === 'pending' ? r.next_attempt_at : null,
  deliveredAt: r.delivered_at,
  createdAt: r.created_at,
  attemptLog,
});

async function withAttempts(db: Db, rows: JoinedRow[]): Promise<DeliveryRow[]> {
  if (!rows.length) return [];
  const attempts = await db
    .selectFrom('webhook_delivery_attempts')
    .selectAll()
    .where('delivery_id', 'in', rows.map((r) => r.id))
    .orderBy('delivery_id')
    .orderBy('attempt')
    .execute();
  const by = new Map<string, DeliveryAttempt[]>();
  for (const a of attempts) {
    const list = by.get(a.delivery_id) ?? [];
    list.push({ attempt: Number(a.attempt), redelivery: Number(a.redelivery) === 1, outcome: a.outcome as DeliveryAttempt['outcome'], status: a.status === null ? null : Number(a.status), error: a.error, at: a.attempted_at });
    by.set(a.delivery_id, list);
  }
  return rows.map((r) => toDelivery(r, by.get(r.id) ?? []));
}

export async function listDeliveries(db: Db, f: { webhookId?: string; messageId?: string; before?: string; limit: number }): Promise<DeliveryRow[]> {
  let q = deliveries(db);
  if (f.webhookId) q = q.where('d.webhook_id', '=', f.webhookId);
  if (f.messageId) q = q.where('d.inbound_message_id', '=', f.messageId);
  if (f.before) q = q.where('d.created_at', '<', f.before);
  return withAttempts(db, await q.orderBy('d.created_at', 'desc').limit(f.limit).execute());
}

export async function findDelivery(db: Db, id: string): Promise<DeliveryRow | undefined> {
  const r = await deliveries(db).where('d.id', '=', id).executeTakeFirst();
  return r && (await withAttempts(db, [r]))[0];
}

/**
 * Claims due deliveries for one attempt: the lease in the row is the claim. On PostgreSQL the rows are
 * locked with SKIP LOCKED, and the update repeats the due condition, so of several instances woken
 * together each delivery goes to exactly one.
 */
export async function claimDueDeliveries(
  db: Db,
  now: Date,
  leaseMs: number,
  limit: number,
): Promise<Array<{ id: string; webhookId: string; inboundMessageId: string; attempts: number; redeliveredAfter: number; event: string | null; reportId: string | null }>> {
  const ts = now.toISOString();
  const postgres = isPostgres(db);
  return db.transaction().execute(async (trx) => {
    let q = trx
      .selectFrom('webhook_deliveries')
      .select('id')
      .where('state', '=', 'pending')
      .where('next_attempt_at', '<=', ts)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', ts)]))
      .orderBy('next_attempt_at')
      .limit(limit);
    if (postgres) q = q.forUpdate().skipLocked();
    const due = await q.execute();
    if (!due.length) return [];
    const rows = await trx
      .updateTable('webhook_deliveries')
      .set((eb) => ({ lease_until: new Date(now.getTime() + leaseMs).toISOString(), attempts: eb('attempts', '+', 1), updated_at: ts }))
      .where('id', 'in', due.map((d) => d.id))
      .where('state', '=', 'pending')
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', ts)]))
      .returning(['id', 'webhook_id', 'inbound_message_id', 'attempts', 'redelivered_after', 'event', 'report_id'])
      .execute();
    return rows.map((r) => ({
      id: r.id,
      webhookId: r.webhook_id,
      inboundMessageId: r.inbound_message_id,
      attempts: Number(r.attempts),
      redeliveredAfter: Number(r.redelivered_after),
      event: r.event ?? null,
      reportId: r.report_id ?? null,
    }));
  });
}

/** The outcome of attempt number `attempt` (as claimed): appended to the attempt log, and the delivery's state. */
export interface DeliveryOutcome {
  state: DeliveryState;
  status: number | null;
  error: string | null;
  nextAttemptAt?: Date;
}

/**
 * The outcomes of a round of deliveries, each appended to its attempt log, in one transaction: one
 * commit (fsync) a round, not one a delivery (a thousand mailboxes' new mail at once).
 */
export async function recordDeliveryOutcomes(
  db: Db,
  outcomes: ReadonlyArray<{ d: { id: string; attempts: number; redeliveredAfter: number }; o: DeliveryOutcome }>,
  now: Date,
): Promise<void> {
  if (!outcomes.length) return;
  const ts = now.toISOString();
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto('webhook_delivery_attempts')
      .values(
        outcomes.map(({ d, o }) => ({
          delivery_id: d.id,
          attempt: d.attempts,
          redelivery: d.redeliveredAfter > 0 && d.attempts === d.redeliveredAfter + 1 ? 1 : 0,
          outcome: o.state === 'pending' ? 'retry' : o.state,
          status: o.status,
          error: o.error,
          attempted_at: ts,
        })),
      )
      // An attempt whose lease ran out and was claimed again already has its number taken.
      .onConflict((oc) => oc.columns(['delivery_id', 'attempt']).doNothing())
      .execute();
    for (const { d, o } of outcomes) {
      await trx
        .updateTable('webhook_deliveries')
        .set({
          state: o.state,
          last_status: o.status,
          last_error: o.error,
          lease_until: null,
          ...(o.nextAttemptAt && { next_attempt_at: o.nextAttemptAt.toISOString() }),
          ...(o.state === 'delivered' && { delivered_at: ts }),
          updated_at: ts,
        })
        .where('id', '=', d.id)
        .execute();
    }
  });
}

/**
 * Redeliver: one more attempt now, appended to the log. The earlier attempts and their count stay;
 * the retry budget starts again from here (redelivered_after).
 */
export async function resetDelivery(db: Db, id: string, now: Date): Promise<boolean> {
  const ts = now.toISOString();
  const r = await db
    .updateTable('webhook_deliveries')
    .set((eb) => ({ state: 'pending', redelivered_after: eb.ref('attempts'), next_attempt_at: ts, lease_until: null, updated_at: ts }))
    .where('id', '=', id)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/** Delivery state per message for lists: the worst of its webhooks' deliveries. */
export async function deliveryStates(db: Db, messageIds: string[]): Promise<Map<string, DeliveryState>> {
  const out = new Map<string, DeliveryState>();
  if (!messageIds.length) return out;
  const rows = await db.selectFrom('webhook_deliveries').select(['inbound_message_id', 'state']).where('inbound_message_id', 'in', messageIds).execute();
  const rank: Record<string, number> = { delivered: 0, pending: 1, failed: 2 };
  for (const r of rows) {
    const prev = out.get(r.inbound_message_id);
    if (prev === undefined || (rank[r.state] ?? 0) > (rank[prev] ?? 0)) out.set(r.inbound_message_id, r.state as DeliveryState);
  }
  return out;
}
