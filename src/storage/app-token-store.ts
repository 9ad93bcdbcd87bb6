import type { Selectable } from 'kysely';
import type { Db } from './database.ts';
import type { AppTokenTable } from './schema.ts';

/** A client-credentials token as stored: sealed, with what Mailroom read from its claims. */
export interface AppTokenRecord {
  cacheKey: string;
  accessTokenSealed: string | null;
  expiresAt: string | null;
  roles: string[];
  tenantId: string | null;
  appId: string | null;
  objectId: string | null;
  version: number;
  requestedAt: string | null;
}

function toRecord(r: Selectable<AppTokenTable>): AppTokenRecord {
  let roles: string[] = [];
  try {
    const parsed: unknown = JSON.parse(r.roles ?? '[]');
    if (Array.isArray(parsed)) roles = parsed.filter((x): x is string => typeof x === 'string');
  } catch {
    roles = [];
  }
  return {
    cacheKey: r.cache_key,
    accessTokenSealed: r.access_token_sealed,
    expiresAt: r.expires_at,
    roles,
    tenantId: r.tenant_id,
    appId: r.app_id,
    objectId: r.object_id,
    version: Number(r.version),
    requestedAt: r.requested_at,
  };
}

export async function findAppToken(db: Db, cacheKey: string): Promise<AppTokenRecord | undefined> {
  const r = await db.selectFrom('app_tokens').selectAll().where('cache_key', '=', cacheKey).executeTakeFirst();
  return r && toRecord(r);
}

export interface AppTokenWrite {
  accessTokenSealed: string;
  expiresAt: string;
  roles: string[];
  tenantId: string | null;
  appId: string | null;
  objectId: string | null;
}

/**
 * Stores a new token if the row is still at `expectedVersion` (undefined: no row yet). A request that
 * lost the race to another instance writes nothing and uses the other's token.
 */
export async function writeAppToken(db: Db, cacheKey: string, expectedVersion: number | undefined, w: AppTokenWrite, now: Date): Promise<boolean> {
  const cols = {
    access_token_sealed: w.accessTokenSealed,
    expires_at: w.expiresAt,
    roles: JSON.stringify(w.roles),
    tenant_id: w.tenantId,
    app_id: w.appId,
    object_id: w.objectId,
    requested_at: now.toISOString(),
    updated_at: now.toISOString(),
  };
  if (expectedVersion === undefined) {
    const r = await db.insertInto('app_tokens').values({ ...cols, cache_key: cacheKey, version: 1 }).onConflict((oc) => oc.column('cache_key').doNothing()).executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
  }
  const r = await db
    .updateTable('app_tokens')
    .set((eb) => ({ ...cols, version: eb('version', '+', 1) }))
    .where('cache_key', '=', cacheKey)
    .where('version', '=', expectedVersion)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/** Forgets a cached token (admin consent changed, a mailbox refused it): the next use asks again. */
export async function forgetAppToken(db: Db, cacheKey: string): Promise<void> {
  await db.updateTable('app_tokens').set((eb) => ({ access_token_sealed: null, expires_at: null, version: eb('version', '+', 1) })).where('cache_key', '=', cacheKey).execute();
}
