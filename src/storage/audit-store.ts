import type { Db } from './database.ts';

export interface AuditEvent {
  id: string;
  at: string;
  actor: string;
  action: string;
  targetType: string | null;
  targetId: string | null;
  details: Record<string, unknown> | null;
}

/** An event as listed: with the actor in words (the admin's email, the API key's name) where it still exists. */
export interface ListedAuditEvent extends AuditEvent {
  actorName: string | null;
}

export async function insertAuditEvent(db: Db, e: AuditEvent): Promise<void> {
  await db
    .insertInto('audit_events')
    .values({ id: e.id, at: e.at, actor: e.actor, action: e.action, target_type: e.targetType, target_id: e.targetId, details: e.details ? JSON.stringify(e.details) : null })
    .execute();
}

export async function listAuditEvents(db: Db, f: { before?: { at: string; id: string }; targetId?: string; limit: number }): Promise<AuditEvent[]> {
  let q = db.selectFrom('audit_events').selectAll();
  if (f.targetId) q = q.where('target_id', '=', f.targetId);
  if (f.before) {
    const { at, id } = f.before;
    q = q.where((eb) => eb.or([eb('at', '<', at), eb.and([eb('at', '=', at), eb('id', '<', id)])]));
  }
  const rows = await q.orderBy('at', 'desc').orderBy('id', 'desc').limit(f.limit).execute();
  return rows.map((r) => ({
    id: r.id,
    at: r.at,
    actor: r.actor,
    action: r.action,
    targetType: r.target_type,
    targetId: r.target_id,
    details: r.details ? (JSON.parse(r.details) as Record<string, unknown>) : null,
  }));
}

export async function listAdminEmails(db: Db): Promise<string[]> {
  return (await db.selectFrom('admins').select('email').orderBy('email').execute()).map((r) => r.email);
}

/**
 * Names for `admin:<id>` and `apikey:<id>` actors: the admin's email, the key's name. Deleted ones are
 * left out (the event keeps its id).
 */
export async function auditActorNames(db: Db, actors: string[]): Promise<Map<string, string>> {
  const ids = (prefix: string) => [...new Set(actors.filter((a) => a.startsWith(prefix)).map((a) => a.slice(prefix.length)))];
  const names = new Map<string, string>();
  const adminIds = ids('admin:');
  if (adminIds.length > 0) {
    for (const r of await db.selectFrom('admins').select(['id', 'email']).where('id', 'in', adminIds).execute()) names.set(`admin:${r.id}`, r.email);
  }
  const keyIds = ids('apikey:');
  if (keyIds.length > 0) {
    for (const r of await db.selectFrom('api_keys').select(['id', 'name']).where('id', 'in', keyIds).execute()) names.set(`apikey:${r.id}`, `API key “${r.name}”`);
  }
  return names;
}
