import { sql } from 'kysely';
import type { Db } from './database.ts';

export interface AttemptRule {
  /** What is counted, e.g. `login:pair:<address>|<email>`. */
  key: string;
  max: number;
  windowMs: number;
}

export type Reservation = { ok: true } | { ok: false; retryAfterMs: number };

class OverLimit extends Error {
  constructor(readonly retryAfterMs: number) {
    super('over limit');
  }
}

/**
 * Counts one attempt against every rule, or none: if any rule is already at its limit the whole
 * reservation is rolled back, so attempts refused for one rule (a stranger hammering one account
 * from one address) do not use up another (the account-wide allowance the real admin needs).
 *
 * Each counter is one row changed by a single INSERT … ON CONFLICT DO UPDATE: the row lock (PostgreSQL)
 * or the single writer (SQLite) makes concurrent reservations count one after another, so twenty
 * parallel attempts cannot all pass before the first is counted. A window starts with its first
 * attempt and ends `windowMs` later.
 */
export async function reserveAttempt(db: Db, rules: AttemptRule[], now: Date): Promise<Reservation> {
  try {
    await db.transaction().execute(async (trx) => {
      let wait = 0;
      for (const r of rules) {
        const cutoff = new Date(now.getTime() - r.windowMs).toISOString();
        const row = await trx
          .insertInto('attempt_limits')
          .values({ key: r.key, window_started_at: now.toISOString(), attempts: 1 })
          .onConflict((oc) =>
            oc.column('key').doUpdateSet({
              attempts: sql<number>`case when attempt_limits.window_started_at <= ${cutoff} then 1 else attempt_limits.attempts + 1 end`,
              window_started_at: sql<string>`case when attempt_limits.window_started_at <= ${cutoff} then ${now.toISOString()} else attempt_limits.window_started_at end`,
            }),
          )
          .returning(['attempts', 'window_started_at'])
          .executeTakeFirstOrThrow();
        if (Number(row.attempts) > r.max) {
          wait = Math.max(wait, Date.parse(row.window_started_at) + r.windowMs - now.getTime(), 1000);
        }
      }
      if (wait > 0) throw new OverLimit(wait);
    });
    return { ok: true };
  } catch (e) {
    if (e instanceof OverLimit) return { ok: false, retryAfterMs: e.retryAfterMs };
    throw e;
  }
}

/**
 * How long until no rule is at its limit (0: none is), without counting anything. For checks that
 * count only failures: a request that would be refused anyway is refused before it is checked.
 */
export async function limitedFor(db: Db, rules: AttemptRule[], now: Date): Promise<number> {
  const rows = await db.selectFrom('attempt_limits').select(['key', 'attempts', 'window_started_at']).where('key', 'in', rules.map((r) => r.key)).execute();
  let wait = 0;
  for (const row of rows) {
    const r = rules.find((x) => x.key === row.key)!;
    const ends = Date.parse(row.window_started_at) + r.windowMs;
    if (Number(row.attempts) >= r.max && ends > now.getTime()) wait = Math.max(wait, ends - now.getTime(), 1000);
  }
  return wait;
}

/** Takes back one reserved attempt (it succeeded); `forget` keys are cleared altogether. */
export async function releaseAttempt(db: Db, keys: string[], forget: string[]): Promise<void> {
  await db.transaction().execute(async (trx) => {
    if (forget.length) await trx.deleteFrom('attempt_limits').where('key', 'in', forget).execute();
    const rest = keys.filter((k) => !forget.includes(k));
    if (rest.length) {
      await trx
        .updateTable('attempt_limits')
        .set({ attempts: sql<number>`case when attempts > 0 then attempts - 1 else 0 end` })
        .where('key', 'in', rest)
        .execute();
    }
  });
}

/** Drops counters whose window has passed. */
export async function pruneAttempts(db: Db, now: Date, longestWindowMs: number): Promise<void> {
  await db.deleteFrom('attempt_limits').where('window_started_at', '<', new Date(now.getTime() - longestWindowMs).toISOString()).execute();
}
