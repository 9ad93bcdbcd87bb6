import { randomUUID } from 'node:crypto';
import type { Db } from '../storage/database.ts';
import { auditActorNames, insertAuditEvent, listAuditEvents, type ListedAuditEvent } from '../storage/audit-store.ts';
import { z } from 'zod';
import { MailroomError } from '../errors/errors.ts';
import { pageLimit, parseInput, queryText } from '../errors/parse-input.ts';

export const auditQuerySchema = z.object({ limit: pageLimit, cursor: queryText('cursor').optional(), targetId: queryText('targetId').optional() });

/** Who changed or connected what, and when. Secrets never enter `details`. */
export class AuditLog {
  constructor(private readonly db: Db, private readonly now: () => Date = () => new Date()) {}

  async record(actor: string, action: string, target?: { type: string; id: string }, details?: Record<string, unknown>): Promise<void> {
    await insertAuditEvent(this.db, {
      id: randomUUID(),
      at: this.now().toISOString(),
      actor,
      action,
      targetType: target?.type ?? null,
      targetId: target?.id ?? null,
      details: details ?? null,
    });
  }

  async list(input: unknown): Promise<{ items: ListedAuditEvent[]; nextCursor: string | null }> {
    const query = parseInput(auditQuerySchema, input);
    const limit = query.limit;
    let before: { at: string; id: string } | undefined;
    if (query.cursor) {
      const [at, id] = Buffer.from(query.cursor, 'base64url').toString('utf8').split('|');
      if (!at || !id) throw new MailroomError('MR_VALIDATION', 'The cursor is not one this API returned.', { field: 'cursor' });
      before = { at, id };
    }
    const rows = await listAuditEvents(this.db, { ...(before && { before }), ...(query.targetId && { targetId: query.targetId }), limit: limit + 1 });
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    const names = await auditActorNames(this.db, page.map((e) => e.actor));
    const items = page.map((e) => ({ ...e, actorName: names.get(e.actor) ?? null }));
    return { items, nextCursor: rows.length > limit && last ? Buffer.from(`${last.at}|${last.id}`).toString('base64url') : null };
  }
}
