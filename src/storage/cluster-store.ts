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

/**
 * acquireLease for many names in one transaction: one commit (one fsync on SQLite) renews a
 * thousand mailboxes' claims instead of a thousand. Returns the names now held by `holder`.
 */
export async function acquireLeases(db: Db, names: readonly string[], holder: string, ttlMs: number, now: Date): Promise<Set<string>> {
  const held = new Set<string>();
  if (!names.length) return held;
  await db.transaction().execute(async (trx) => {
    for (const name of names) if (await acquireLease(trx, name, holder, ttlMs, now)) held.add(name);
  });
  return held;
}

/** The lease `name`, or undefined. */
export async function findLease(db: Db, name: string): Promise<LeaseRow | undefined> {
  const r = await db.selectFrom('leases').selectAll().where('name', '=', name).executeTakeFirst();
  return r && { name: r.name, holder: r.holder, acquiredAt: r.acquired_at, renewedAt: r.renewed_at, expiresAt: r.expires_at };
}

/**
 * Takes one of the leases `<prefix>0` … `<prefix><count - 1>` that nobody holds (or whose holder let
 * it expire) for `holder` until now + ttlMs; returns its number, or null when all are held. One
 * statement picks a free number at random (contenders rarely pick the same) and inserts it; a
 * contender that lost the same number in the meantime gets nothing from ON CONFLICT and tries again.
 * PostgreSQL only (generate_series).
 */
export async function takeNumberedLease(db: Db, prefix: string, count: number, holder: string, ttlMs: number, now: Date): Promise<number | null> {
  const at = now.toISOString();
  const until = new Date(now.getTime() + ttlMs).toISOString();
  for (let attempt = 0; attempt < 3; attempt++) {
    const r = await sql<{ name: string }>`
      with free as (
        select ${prefix} || s.i as name from generate_series(0, ${count - 1}::int) as s(i)
        where not exists (select 1 from leases l where l.name = ${prefix} || s.i and l.expires_at > ${at})
        order by random() limit 1
      )
      insert into leases (name, holder, acquired_at, renewed_at, expires_at)
      select name, ${holder}, ${at}, ${at}, ${until} from free
      on conflict (name) do update set holder = excluded.holder, acquired_at = excluded.acquired_at, renewed_at = excluded.renewed_at, expires_at = excluded.expires_at
      where leases.expires_at <= excluded.acquired_at
      returning name`.execute(db);
    const name = r.rows[0]?.name;
    if (name !== undefined) return Number(name.slice(prefix.length));
    // Nothing free at all, or a contender took the number picked: look once more only in that case.
    const held = await db.selectFrom('leases').select((eb) => eb.fn.countAll<string>().as('n')).where('name', 'like', `${prefix}%`).where('expires_at', '>', at).executeTakeFirstOrThrow();
    if (Number(held.n) >= count) return null;
  }
  return null;
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

/**
 * Sets the lease `name` to run until `until`, unless it already runs longer: a pause that only grows
 * (two instances recording the same throttling keep the later end). One statement.
 */
export async function extendLease(db: Db, name: string, holder: string, until: Date, now: Date): Promise<void> {
  const at = now.toISOString();
  await db
    .insertInto('leases')
    .values({ name, holder, acquired_at: at, renewed_at: at, expires_at: until.toISOString() })
    .onConflict((oc) =>
      oc.column('name').doUpdateSet({
        holder: sql<string>`case when leases.expires_at < excluded.expires_at then excluded.holder else leases.holder end`,
        renewed_at: sql<string>`excluded.renewed_at`,
        expires_at: sql<string>`case when leases.expires_at < excluded.expires_at then excluded.expires_at else leases.expires_at end`,
      }),
    )
    .execute();
}

/** When the lease `name` runs out, if it has not yet at `now`; else null. */
export async function leaseUntil(db: Db, name: string, now: Date): Promise<Date | null> {
  const r = await db.selectFrom('leases').select('expires_at').where('name', '=', name).where('expires_at', '>', now.toISOString()).executeTakeFirst();
  return r ? new Date(r.expires_at) : null;
}
