import type { Selectable } from 'kysely';
import type { Db } from './database.ts';
import type { ApiKeyTable } from './schema.ts';

export type ApiKeyScope = 'send' | 'read' | 'admin';

export interface ApiKeyRecord {
  id: string;
  name: string;
  scope: ApiKeyScope;
  prefix: string;
  createdBy: string | null;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

const toRecord = (r: Selectable<ApiKeyTable>): ApiKeyRecord => ({
  id: r.id,
  name: r.name,
  scope: r.scope as ApiKeyScope,
  prefix: r.prefix,
  createdBy: r.created_by,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
  revokedAt: r.revoked_at,
});

export async function insertApiKey(db: Db, k: Omit<ApiKeyRecord, 'lastUsedAt' | 'revokedAt'> & { keyHash: string }): Promise<ApiKeyRecord> {
  await db
    .insertInto('api_keys')
    .values({
      id: k.id,
      name: k.name,
      scope: k.scope,
      prefix: k.prefix,
      key_hash: k.keyHash,
      created_by: k.createdBy,
      created_at: k.createdAt,
      last_used_at: null,
      revoked_at: null,
    })
    .execute();
  return { ...k, lastUsedAt: null, revokedAt: null };
}

export async function listApiKeys(db: Db): Promise<ApiKeyRecord[]> {
  return (await db.selectFrom('api_keys').selectAll().orderBy('created_at', 'desc').execute()).map(toRecord);
}

export async function findActiveApiKeyByHash(db: Db, keyHash: string): Promise<ApiKeyRecord | undefined> {
  const r = await db.selectFrom('api_keys').selectAll().where('key_hash', '=', keyHash).where('revoked_at', 'is', null).executeTakeFirst();
  return r && toRecord(r);
}

export async function touchApiKey(db: Db, id: string, at: string): Promise<void> {
  await db.updateTable('api_keys').set({ last_used_at: at }).where('id', '=', id).execute();
}

export async function revokeApiKey(db: Db, id: string, at: string): Promise<boolean> {
  const r = await db.updateTable('api_keys').set({ revoked_at: at }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}
