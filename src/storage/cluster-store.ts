import { sql } from 'kysely';
import type { Db } from './database.ts';

/** A value stored once for the whole installation; the first writer wins and every caller gets that value. */
export async function settingOnce(db: Db, name: string, value: string, now: Date): Promise<string> {
  await db.insertInto('cluster_settings').values({ name, value, created_at: now.toISOString() }).onConflict((oc) => oc.column('name').doNothing()).execute();
  const r = await db.selectFrom('cluster_settings').select('value').where('name', '=', name).executeTakeFirstOrThrow();
  return r.value;
}

export interface LeaseRow {
  name: string;
  holder: string;
  acquiredAt: string;
  renewedAt: string;
  expiresAt: string;
}

/**
 * Takes or renews the lease `name` for `holder` until now + ttlMs. One statement: the row is
 * inserted, renewed by its holder, or taken over once expired; otherwise it is left alone and false
 * returned. The row lock (PostgreSQL) or the single writer (SQLite) lets exactly one contender win.
 */
export async function acquireLease(db: Db, name: string, holder: string, ttlMs: number, now: Date): Promise<boolean> {
  const at = now.toISOString();
  const until = new Date(now.getTime() + ttlMs).toISOString();
  const r = await db
    .insertInto('leases')
    .values({ name, holder, acquired_at: at, renewed_at: at, expires_at: until })
    .onConflict((oc) =>
      oc
        .column('name')
        .doUpdateSet({
          acquired_at: sql<string>`case when leases.holder = excluded.holder then leases.acquired_at else excluded.acquired_at end`,
          holder: sql<string>`excluded.holder`,
          renewed_at: sql<string>`excluded.renewed_at`,
          expires_at: sql<string>`excluded.expires_at`,
        })
        .where((eb) => eb.or([eb('leases.holder', '=', holder), eb('leases.expires_at', '<=', at)])),
    )
    .returning('holder')
    .executeTakeFirst();
  return r?.holder === holder;
}

/** Gives the lease up at once (a clean shutdown), so another instance need not wait for it to expire. */
export async function releaseLease(db: Db, name: string, holder: string): Promise<void> {
  await db.deleteFrom('leases').where('name', '=', name).where('holder', '=', holder).execute();
}

/** Gives up every lease of `holder` whose name starts with `prefix` (a clean shutdown). */
export async function releaseLeasesOf(db: Db, holder: string, prefix: string): Promise<void> {
  await db.deleteFrom('leases').where('holder', '=', holder).where('name', 'like', `${prefix}%`).execute();
}

/**
 * Renews the leases `names` that `holder` still holds until now + ttlMs, in one statement; returns
 * the names it renewed (a name missing was lost: it expired and another holder took it).
 */
export async function renewLeases(db: Db, names: string[], holder: string, ttlMs: number, now: Date): Promise<string[]> {
  if (!names.length) return [];
  const rows = await db
    .updateTable('leases')
    .set({ renewed_at: now.toISOString(), expires_at: new Date(now.getTime() + ttlMs).toISOString() })
    .where('holder', '=', holder)
    .where('name', 'in', names)
    .returning('name')
    .execute();
  return rows.map((r) => r.name);
}

export async function listLeases(db: Db, prefix = ''): Promise<LeaseRow[]> {
  const rows = await db.selectFrom('leases').selectAll().where('name', 'like', `${prefix}%`).orderBy('name').execute();
  return rows.map((r) => ({ name: r.name, holder: r.holder, acquiredAt: r.acquired_at, renewedAt: r.renewed_at, expiresAt: r.expires_at }));
}
