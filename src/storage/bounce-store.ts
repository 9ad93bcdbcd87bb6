import type { DeliveryReport, ReportRecipient } from '../bounces/delivery-report.ts';
import type { Db } from './database.ts';
import { notifyOnCommit } from './wakeups.ts';
import { pendingDelivery } from './webhook-store.ts';

/** A recipient's outcome after the 250, as `GET /api/v1/messages/{id}` shows it. */
export type RecipientState = 'sent' | 'bounced' | 'delayed' | 'auto_replied' | 'delivered';

export type ReportEvent = 'message.bounced' | 'message.delayed' | 'message.auto_replied';

/** A recognised report about to be stored with the incoming message it came as. */
export interface NewReport {
  id: string;
  /** The claim: the report's own Message-ID, else a hash of its bytes. One row per key, ever. */
  reportKey: string;
  inboundMessageId: string;
  outboxMessageId: string | null;
  report: DeliveryReport;
}

export interface StoredReport {
  id: string;
  inboundMessageId: string;
  outboxMessageId: string | null;
  report: DeliveryReport;
  reportedAt: string;
}

export interface RecipientOutcome {
  address: string;
  state: RecipientState;
  status: string | null;
  diagnostic: string | null;
  category: string | null;
  reportedAt: string;
  reportId: string;
}

export interface Suppression {
  address: string;
  /** 'hard': the address does not exist; 'soft': SOFT_BOUNCES_TO_SUPPRESS failures within SOFT_BOUNCE_WINDOW_DAYS. */
  reason: 'hard' | 'soft';
  reportId: string | null;
  outboxMessageId: string | null;
  status: string | null;
  diagnostic: string | null;
  category: string | null;
  bounces: number;
  createdAt: string;
}

/** Odoo's rule: an address that failed softly 5 times within 13 weeks gets no more mail. */
export const SOFT_BOUNCES_TO_SUPPRESS = 5;
export const SOFT_BOUNCE_WINDOW_DAYS = 91;
/** A mailbox or a domain that does not exist will not start existing on the next try. */
const HARD_CATEGORIES = new Set(['unknown_user', 'unknown_domain']);

const stateOf = (kind: DeliveryReport['kind'], r: ReportRecipient): RecipientState => {
  if (kind === 'auto_reply') return 'auto_replied';
  if (r.action === 'failed') return 'bounced';
  if (r.action === 'delayed') return 'delayed';
  return 'delivered';
};

/** The event a report raises on the outgoing message, or null (a read receipt, a success DSN). */
export function reportEvent(report: DeliveryReport): ReportEvent | null {
  if (report.kind === 'auto_reply') return 'message.auto_replied';
  if (report.kind !== 'delivery_status') return null;
  if (report.recipients.some((r) => r.action === 'failed')) return 'message.bounced';
  if (report.recipients.some((r) => r.action === 'delayed')) return 'message.delayed';
  return null;
}

/** The recipients a report speaks for: an auto-reply speaks for whoever answered. */
function reportRecipients(report: DeliveryReport): ReportRecipient[] {
  if (report.recipients.length || report.kind === 'delivery_status' || !report.from) return report.recipients;
  return [{ address: report.from.toLowerCase(), action: 'delivered', status: null, diagnostic: null, category: 'other' }];
}

const RANK: Record<RecipientState, number> = { sent: 0, delivered: 1, auto_replied: 2, delayed: 3, bounced: 4 };

/**
 * Stores reports inside the import transaction of the messages they came as. The insert into
 * delivery_reports is the claim (unique report_key): only the transaction that inserts a report
 * updates the outgoing message, counts the bounce and queues one webhook event per webhook, so a
 * report fetched again after a restart, from a second mailbox or by another instance raises nothing.
 */
export async function recordReports(trx: Db, reports: NewReport[], webhookIds: string[], newId: () => string, now: Date): Promise<string[]> {
  const ts = now.toISOString();
  const claimed: string[] = [];
  for (const n of reports) {
    const won = await trx
      .insertInto('delivery_reports')
      .values({
        id: n.id,
        report_key: n.reportKey,
        inbound_message_id: n.inboundMessageId,
        outbox_message_id: n.outboxMessageId,
        kind: n.report.kind,
        format: n.report.format,
        reporting_mta: n.report.reportingMta,
        report_json: JSON.stringify(n.report),
        reported_at: ts,
      })
      .onConflict((oc) => oc.column('report_key').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (!won) continue;
    claimed.push(n.id);
    const recipients = reportRecipients(n.report);
    if (recipients.length) {
      await trx
        .insertInto('delivery_report_recipients')
        .values(
          recipients.map((r) => ({
            report_id: n.id,
            outbox_message_id: n.outboxMessageId,
            address: r.address.toLowerCase(),
            state: stateOf(n.report.kind, r),
            action: r.action,
            status: r.status,
            diagnostic: r.diagnostic,
            category: r.category,
            reported_at: ts,
          })),
        )
        .execute();
    }
    if (n.outboxMessageId) {
      const outcomes = await recipientOutcomes(trx, n.outboxMessageId);
      const worst = outcomes.reduce<RecipientState>((w, o) => (RANK[o.state] > RANK[w] ? o.state : w), 'sent');
      await trx.updateTable('outbox_messages').set({ outcome: worst === 'sent' ? null : worst }).where('id', '=', n.outboxMessageId).execute();
    }
    // Only a bounce about a recipient of a message Mailroom sent counts: anyone can mail a forged
    // DSN to the mailbox, and an unmatched one must not be able to suppress an address.
    if (n.report.kind === 'delivery_status' && n.outboxMessageId) {
      const ours = await messageRecipients(trx, n.outboxMessageId);
      for (const r of recipients) if (r.action === 'failed' && ours.has(r.address.toLowerCase())) await countBounce(trx, n, r, now);
    }
    const event = reportEvent(n.report);
    if (event && webhookIds.length) {
      await trx
        .insertInto('webhook_deliveries')
        .values(
          webhookIds.map((webhookId) => pendingDelivery({ id: newId(), webhookId, inboundMessageId: n.inboundMessageId, event, reportId: n.id }, ts)),
        )
        .execute();
      await notifyOnCommit(trx, 'mailroom_webhooks');
    }
  }
  return claimed;
}

async function messageRecipients(trx: Db, outboxMessageId: string): Promise<Set<string>> {
  const m = await trx.selectFrom('outbox_messages').select(['to_json', 'cc_json', 'bcc_json']).where('id', '=', outboxMessageId).executeTakeFirst();
  if (!m) return new Set();
  const all = [m.to_json, m.cc_json, m.bcc_json].flatMap((j) => JSON.parse(j) as string[]);
  return new Set(all.map((d) => (/<([^<>]*)>\s*$/.exec(d)?.[1] ?? d).trim().toLowerCase()));
}

/** A hard bounce suppresses at once; a soft one once it is the SOFT_BOUNCES_TO_SUPPRESS-th in the window. */
async function countBounce(trx: Db, n: NewReport, r: ReportRecipient, now: Date): Promise<void> {
  const address = r.address.toLowerCase();
  const hard = HARD_CATEGORIES.has(r.category);
  const since = new Date(now.getTime() - SOFT_BOUNCE_WINDOW_DAYS * 86_400_000).toISOString();
  const row = await trx
    .selectFrom('delivery_report_recipients')
    .select((eb) => eb.fn.countAll<string | number>().as('n'))
    .where('address', '=', address)
    .where('action', '=', 'failed')
    .where('reported_at', '>=', since)
    .executeTakeFirstOrThrow();
  const bounces = Number(row.n);
  if (!hard && bounces < SOFT_BOUNCES_TO_SUPPRESS) return;
  await trx
    .insertInto('suppressions')
    .values({
      address,
      reason: hard ? 'hard' : 'soft',
      report_id: n.id,
      outbox_message_id: n.outboxMessageId,
      status: r.status,
      diagnostic: r.diagnostic,
      category: r.category,
      bounces,
      created_at: now.toISOString(),
    })
    .onConflict((oc) => oc.column('address').doUpdateSet({ bounces, report_id: n.id, status: r.status, diagnostic: r.diagnostic, category: r.category }))
    .execute();
}

/** Each recipient's latest reported outcome on one outgoing message. */
export async function recipientOutcomes(db: Db, outboxMessageId: string): Promise<RecipientOutcome[]> {
  const rows = await db
    .selectFrom('delivery_report_recipients')
    .selectAll()
    .where('outbox_message_id', '=', outboxMessageId)
    .orderBy('reported_at')
    .execute();
  const latest = new Map<string, RecipientOutcome>();
  for (const r of rows) {
    latest.set(r.address, { address: r.address, state: r.state as RecipientState, status: r.status, diagnostic: r.diagnostic, category: r.category, reportedAt: r.reported_at, reportId: r.report_id });
  }
  return [...latest.values()];
}

const toReport = (r: { id: string; inbound_message_id: string; outbox_message_id: string | null; report_json: string; reported_at: string }): StoredReport => ({
  id: r.id,
  inboundMessageId: r.inbound_message_id,
  outboxMessageId: r.outbox_message_id,
  report: JSON.parse(r.report_json) as DeliveryReport,
  reportedAt: r.reported_at,
});

export async function findReport(db: Db, id: string): Promise<StoredReport | undefined> {
  const r = await db.selectFrom('delivery_reports').selectAll().where('id', '=', id).executeTakeFirst();
  return r && toReport(r);
}

export async function reportsFor(db: Db, outboxMessageId: string): Promise<StoredReport[]> {
  return (await db.selectFrom('delivery_reports').selectAll().where('outbox_message_id', '=', outboxMessageId).orderBy('reported_at').execute()).map(toReport);
}

/** Newest first; `unmatched` lists only reports no outgoing message was found for. */
export async function listReports(db: Db, f: { unmatched?: boolean; before?: string; limit: number }): Promise<StoredReport[]> {
  let q = db.selectFrom('delivery_reports').selectAll();
  if (f.unmatched) q = q.where('outbox_message_id', 'is', null);
  if (f.before) q = q.where('reported_at', '<', f.before);
  return (await q.orderBy('reported_at', 'desc').orderBy('id', 'desc').limit(f.limit).execute()).map(toReport);
}

const toSuppression = (r: {
  address: string;
  reason: string;
  report_id: string | null;
  outbox_message_id: string | null;
  status: string | null;
  diagnostic: string | null;
  category: string | null;
  bounces: number;
  created_at: string;
}): Suppression => ({
  address: r.address,
  reason: r.reason as Suppression['reason'],
  reportId: r.report_id,
  outboxMessageId: r.outbox_message_id,
  status: r.status,
  diagnostic: r.diagnostic,
  category: r.category,
  bounces: Number(r.bounces),
  createdAt: r.created_at,
});

export async function listSuppressions(db: Db, f: { after?: string; q?: string; limit: number }): Promise<Suppression[]> {
  let q = db.selectFrom('suppressions').selectAll();
  if (f.after) q = q.where('address', '>', f.after);
  if (f.q) q = q.where('address', 'like', `%${f.q.toLowerCase().replace(/[%_\\]/g, '')}%`);
  return (await q.orderBy('address').limit(f.limit).execute()).map(toSuppression);
}

/** The suppressed ones among `addresses` (compared lower-cased). */
export async function findSuppressions(db: Db, addresses: string[]): Promise<Suppression[]> {
  const wanted = [...new Set(addresses.map((a) => a.toLowerCase()))];
  if (!wanted.length) return [];
  return (await db.selectFrom('suppressions').selectAll().where('address', 'in', wanted).execute()).map(toSuppression);
}

/** Lifts a suppression; its soft-bounce count starts again from nothing. */
export async function deleteSuppression(db: Db, address: string, now: Date): Promise<Suppression | undefined> {
  return db.transaction().execute(async (trx) => {
    const a = address.toLowerCase();
    const r = await trx.selectFrom('suppressions').selectAll().where('address', '=', a).executeTakeFirst();
    if (!r) return undefined;
    await trx.deleteFrom('suppressions').where('address', '=', a).execute();
    // Older failures no longer count towards the next soft suppression.
    await trx.updateTable('delivery_report_recipients').set({ action: 'failed_lifted' }).where('address', '=', a).where('action', '=', 'failed').where('reported_at', '<=', now.toISOString()).execute();
    return toSuppression(r);
  });
}

/** The outgoing server's suppression setting and the incoming server's "hand over everything". */
export async function serverReportSettings(db: Db, id: string): Promise<{ suppressionPolicy: 'warn' | 'refuse'; deliverReports: boolean }> {
  const r = await db.selectFrom('mail_servers').select(['suppression_policy', 'deliver_reports']).where('id', '=', id).executeTakeFirst();
  return { suppressionPolicy: r?.suppression_policy === 'refuse' ? 'refuse' : 'warn', deliverReports: Number(r?.deliver_reports ?? 0) === 1 };
}

export async function setServerReportSettings(db: Db, id: string, p: { suppressionPolicy?: 'warn' | 'refuse'; deliverReports?: boolean }): Promise<void> {
  if (p.suppressionPolicy === undefined && p.deliverReports === undefined) return;
  await db
    .updateTable('mail_servers')
    .set({
      ...(p.suppressionPolicy !== undefined && { suppression_policy: p.suppressionPolicy }),
      ...(p.deliverReports !== undefined && { deliver_reports: p.deliverReports ? 1 : 0 }),
    })
    .where('id', '=', id)
    .execute();
}
