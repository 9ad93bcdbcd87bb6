import type { Selectable } from 'kysely';
import type { Db } from './database.ts';
import type { ApiKeyTable } from './schema.ts';

export type ApiKeyScope = 'send' | 'outbox:read' | 'inbound:read' | 'connect' | 'admin';

export interface ApiKeyRecord {
  id: string;
  name: string;
  scopes: ApiKeyScope[];
  /** The outgoing servers the key may send through and read the messages of; null: every one. */
  mailServerIds: string[] | null;
  /** The incoming servers whose mail the key may read; null: every one. */
  incomingServerIds: string[] | null;
  prefix: string;
  createdBy: string | null;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

const ids = (json: string | null) => (json === null ? null : (JSON.parse(json) as string[]));

const toRecord = (r: Selectable<ApiKeyTable>): ApiKeyRecord => ({
  id: r.id,
  name: r.name,
  // A row written before 0016 by an instance that did not know scopes yet: nothing, never more.
  scopes: r.scopes ? (JSON.parse(r.scopes) as ApiKeyScope[]) : [],
  mailServerIds: ids(r.mail_server_ids),
  incomingServerIds: ids(r.incoming_server_ids),
  prefix: r.prefix,
  createdBy: r.created_by,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
  revokedAt: r.revoked_at,
});

/**
 * The value of the pre-0016 `scope` column, for an instance still running older code against the same
 * PostgreSQL during an upgrade: `admin` for an admin key, otherwise a value that older code grants
 * nothing (its `send` would let a key read every message).
 */
export const legacyScope = (scopes: ApiKeyScope[]) => (scopes.includes('admin') ? 'admin' : 'scoped');

export async function insertApiKey(db: Db, k: Omit<ApiKeyRecord, 'lastUsedAt' | 'revokedAt'> & { keyHash: string }): Promise<ApiKeyRecord> {
  await db
    .insertInto('api_keys')
    .values({
      id: k.id,
      name: k.name,
      scope: legacyScope(k.scopes),
      scopes: JSON.stringify(k.scopes),
      mail_server_ids: k.mailServerIds && JSON.stringify(k.mailServerIds),
      incoming_server_ids: k.incomingServerIds && JSON.stringify(k.incomingServerIds),
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

export async function findApiKey(db: Db, id: string): Promise<ApiKeyRecord | undefined> {
  const r = await db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
  return r && toRecord(r);
}

/** Names by key id, revoked keys included (the Audit Log names its actors). */
export async function findApiKeyNames(db: Db, ids: string[]): Promise<Map<string, string>> {
  if (!ids.length) return new Map();
  const rows = await db.selectFrom('api_keys').select(['id', 'name']).where('id', 'in', ids).execute();
  return new Map(rows.map((r) => [r.id, r.name]));
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
