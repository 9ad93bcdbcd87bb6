import type { Db } from './database.ts';

export interface AdminRow {
  id: string;
  email: string;
  passwordHash: string;
}

export async function countAdmins(db: Db): Promise<number> {
  const r = await db.selectFrom('admins').select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow();
  return Number(r.n);
}

export async function insertAdmin(db: Db, a: AdminRow, now: Date): Promise<void> {
  await db
    .insertInto('admins')
    .values({ id: a.id, email: a.email, password_hash: a.passwordHash, created_at: now.toISOString() })
    .execute();
}

export async function findAdminByEmail(db: Db, email: string): Promise<AdminRow | undefined> {
  const r = await db.selectFrom('admins').selectAll().where('email', '=', email).executeTakeFirst();
  return r && { id: r.id, email: r.email, passwordHash: r.password_hash };
}

/** Emails by admin id (the Audit Log names its actors); ids without an admin are left out. */
export async function findAdminEmails(db: Db, ids: string[]): Promise<Map<string, string>> {
  if (!ids.length) return new Map();
  const rows = await db.selectFrom('admins').select(['id', 'email']).where('id', 'in', ids).execute();
  return new Map(rows.map((r) => [r.id, r.email]));
}

export async function updateAdminPassword(db: Db, id: string, passwordHash: string): Promise<void> {
  await db.updateTable('admins').set({ password_hash: passwordHash }).where('id', '=', id).execute();
}

export interface SessionRow {
  adminId: string;
  email: string;
  csrfToken: string;
  expiresAt: string;
}

export async function insertSession(
  db: Db,
  s: { idHash: string; adminId: string; csrfToken: string; expiresAt: Date },
  now: Date,
): Promise<void> {
  await db
    .insertInto('sessions')
    .values({
      id_hash: s.idHash,
      admin_id: s.adminId,
      csrf_token: s.csrfToken,
      created_at: now.toISOString(),
      expires_at: s.expiresAt.toISOString(),
    })
    .execute();
}

export async function findLiveSession(db: Db, idHash: string, now: Date): Promise<SessionRow | undefined> {
  const r = await db
    .selectFrom('sessions')
    .innerJoin('admins', 'admins.id', 'sessions.admin_id')
    .select(['sessions.admin_id', 'admins.email', 'sessions.csrf_token', 'sessions.expires_at'])
    .where('sessions.id_hash', '=', idHash)
    .where('sessions.expires_at', '>', now.toISOString())
    .executeTakeFirst();
  return r && { adminId: r.admin_id, email: r.email, csrfToken: r.csrf_token, expiresAt: r.expires_at };
}

export async function extendSession(db: Db, idHash: string, expiresAt: Date): Promise<void> {
  await db.updateTable('sessions').set({ expires_at: expiresAt.toISOString() }).where('id_hash', '=', idHash).execute();
}

export async function deleteSession(db: Db, idHash: string): Promise<void> {
  await db.deleteFrom('sessions').where('id_hash', '=', idHash).execute();
}

export async function deleteExpiredSessions(db: Db, now: Date): Promise<void> {
  await db.deleteFrom('sessions').where('expires_at', '<=', now.toISOString()).execute();
}

export async function insertSetupToken(db: Db, tokenHash: string, expiresAt: Date, now: Date): Promise<void> {
  await db
    .insertInto('setup_tokens')
    .values({ token_hash: tokenHash, created_at: now.toISOString(), expires_at: expiresAt.toISOString(), used_at: null })
    .execute();
}

/** Marks the token used; true only for the one caller that found it unused and unexpired. */
export async function consumeSetupToken(db: Db, tokenHash: string, now: Date): Promise<boolean> {
  const r = await db
    .updateTable('setup_tokens')
    .set({ used_at: now.toISOString() })
    .where('token_hash', '=', tokenHash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now.toISOString())
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}
