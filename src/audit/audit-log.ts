import { randomUUID } from 'node:crypto';
import type { Db } from '../storage/database.ts';
import { type AuditEvent, insertAuditEvent, listAuditEvents } from '../storage/audit-store.ts';
import { findAdminEmails } from '../storage/admin-store.ts';
import { findApiKeyNames } from '../storage/api-key-store.ts';
import { z } from 'zod';
import { MailroomError } from '../errors/errors.ts';
import { pageLimit, parseInput, queryText } from '../errors/parse-input.ts';

export const auditQuerySchema = z.object({ limit: pageLimit, cursor: queryText('cursor').optional(), targetId: queryText('targetId').optional() });

/** An audit event as the API answers it: `actor` is the stored id, `actorDisplay` who that is, in words. */
export interface AuditEventView extends AuditEvent {
  /** The admin's email, `API key <name>`, `command line (<machine user>)` or `System`. */
  actorDisplay: string;
}

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

  async list(input: unknown): Promise<{ items: AuditEventView[]; nextCursor: string | null }> {
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
    return { items: await this.withActorDisplay(page), nextCursor: rows.length > limit && last ? Buffer.from(`${last.at}|${last.id}`).toString('base64url') : null };
  }

  /**
   * Actors are stored as ids (`admin:<uuid>`, `apikey:<uuid>`): an id stays true if an email or a
   * key name changes later; people read the current email or name, looked up for the page.
   */
  private async withActorDisplay(events: AuditEvent[]): Promise<AuditEventView[]> {
    const idsOf = (prefix: string) => [...new Set(events.filter((e) => e.actor.startsWith(prefix)).map((e) => e.actor.slice(prefix.length)))];
    const [emails, keyNames] = await Promise.all([findAdminEmails(this.db, idsOf(ADMIN)), findApiKeyNames(this.db, idsOf(API_KEY))]);
    return events.map((e) => ({ ...e, actorDisplay: actorDisplay(e.actor, emails, keyNames) }));
  }
}

const ADMIN = 'admin:';
const API_KEY = 'apikey:';

function actorDisplay(actor: string, emails: Map<string, string>, keyNames: Map<string, string>): string {
  if (actor.startsWith(ADMIN)) {
    const id = actor.slice(ADMIN.length);
    return emails.get(id) ?? `deleted admin ${id}`;
  }
  if (actor.startsWith(API_KEY)) {
    const id = actor.slice(API_KEY.length);
    return `API key ${keyNames.get(id) ?? id}`;
  }
  if (actor === 'system') return 'System';
  if (actor === 'anonymous') return 'Anonymous';
  // `command line (<machine user>)` is written as people read it.
  return actor;
}
