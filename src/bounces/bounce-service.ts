import { z } from 'zod';
import { MailroomError } from '../errors/errors.ts';
import { pageLimit, parseInput, queryText } from '../errors/parse-input.ts';
import type { InboundMessageService } from '../inbound/inbound-message-service.ts';
import type { OutboxService } from '../outbox/outbox-service.ts';
import { deleteSuppression, findReport, listReports, listSuppressions, reportEvent, reportsFor, type StoredReport, type Suppression } from '../storage/bounce-store.ts';
import type { Db } from '../storage/database.ts';
import { findOutboxMessage } from '../storage/outbox-store.ts';
import type { BounceCategory } from './delivery-report.ts';
import { explainCategory } from './recognize-report.ts';
import { watchMailbox } from './watch-mailbox.ts';
import type { IncomingServerService } from '../inbound/incoming-server-service.ts';
import type { Sealer } from '../secrets/sealer.ts';

export const suppressionListSchema = z.object({ limit: pageLimit, cursor: queryText('cursor').optional(), q: queryText('q').optional() });
export const reportListSchema = z.object({ limit: pageLimit, cursor: queryText('cursor').optional(), unmatched: z.enum(['true', 'false']).optional() });

/**
 * Reports about outgoing messages as people and the ERP see them: in plain words (the catalogue's
 * cause and fix per category), with the raw report as evidence; suppressions listed and lifted.
 */
export class BounceService {
  constructor(private readonly deps: { db: Db; inbound: InboundMessageService; outbox: OutboxService; incoming: IncomingServerService; sealer: Sealer; now?: () => Date }) {}

  /** Watch this mailbox for bounces and replies (see watchMailbox). */
  watch(outgoingId: string, body: unknown) {
    return watchMailbox(this.deps, outgoingId, body);
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /** A report as the API, the webhook and the detail page show it. */
  reportView(r: StoredReport) {
    const { report } = r;
    return {
      id: r.id,
      kind: report.kind,
      event: reportEvent(report),
      format: report.format,
      reportingMta: report.reportingMta,
      from: report.from,
      subject: report.subject ?? null,
      outboxMessageId: r.outboxMessageId,
      originalMessageIds: report.originalMessageIds,
      recipients: report.recipients.map((x) => ({
        address: x.address,
        action: x.action,
        status: x.status,
        diagnostic: x.diagnostic,
        category: x.category,
        explanation: explain(x.category),
      })),
      reportedAt: r.reportedAt,
      inboundMessageId: r.inboundMessageId,
      /** The report exactly as it came: the evidence. */
      rawUrl: this.deps.inbound.rawUrl({ id: r.inboundMessageId, rawKept: true }),
    };
  }

  /** The reports about one outgoing message, oldest first. */
  async forMessage(outboxMessageId: string) {
    return (await reportsFor(this.deps.db, outboxMessageId)).map((r) => this.reportView(r));
  }

  /** Recognised reports, newest first; `unmatched=true`: those no outgoing message was found for. */
  async list(query: unknown) {
    const q = parseInput(reportListSchema, query);
    const before = q.cursor ? Buffer.from(q.cursor, 'base64url').toString('utf8') : undefined;
    const rows = await listReports(this.deps.db, { unmatched: q.unmatched === 'true', ...(before && { before }), limit: q.limit + 1 });
    const page = rows.slice(0, q.limit);
    return { items: page.map((r) => this.reportView(r)), nextCursor: rows.length > q.limit ? Buffer.from(page[page.length - 1]!.reportedAt).toString('base64url') : null };
  }

  /** The webhook body's `message` and `report` for an event about report `reportId`. */
  async eventPayload(reportId: string): Promise<{ message: unknown; report: unknown }> {
    const r = await findReport(this.deps.db, reportId);
    if (!r) throw new MailroomError('MR_NOT_FOUND', `Report ${reportId} does not exist.`);
    const row = r.outboxMessageId ? await findOutboxMessage(this.deps.db, r.outboxMessageId) : undefined;
    // message: the outgoing message (with its idempotency key, so the ERP finds its own record); null when unmatched.
    const message = row ? { ...(await this.deps.outbox.get(row.id)), idempotencyKey: row.idempotencyKey?.replace(/^[^/]*\//, '') ?? null } : null;
    return { message, report: this.reportView(r) };
  }

  private suppressionView(s: Suppression) {
    return { ...s, explanation: s.category ? explain(s.category as BounceCategory) : null };
  }

  async suppressions(query: unknown) {
    const q = parseInput(suppressionListSchema, query);
    const after = q.cursor ? Buffer.from(q.cursor, 'base64url').toString('utf8') : undefined;
    const rows = await listSuppressions(this.deps.db, { ...(after && { after }), ...(q.q && { q: q.q }), limit: q.limit + 1 });
    const page = rows.slice(0, q.limit);
    return { items: page.map((s) => this.suppressionView(s)), nextCursor: rows.length > q.limit ? Buffer.from(page[page.length - 1]!.address).toString('base64url') : null };
  }

  /** Lifts a suppression: mail to the address goes out again, and its soft-bounce count starts afresh. */
  async lift(address: string) {
    const s = await deleteSuppression(this.deps.db, address.trim(), this.now());
    if (!s) throw new MailroomError('MR_NOT_FOUND', `${address} is not suppressed.`, { fix: 'GET /api/v1/suppressions lists the suppressed addresses.' });
    return this.suppressionView(s);
  }
}

function explain(category: BounceCategory) {
  const e = explainCategory(category);
  return { code: e.code, cause: e.cause, fix: e.fix };
}
