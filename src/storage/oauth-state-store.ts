import type { Db } from './database.ts';

export interface OAuthStateRecord {
  mailServerId: string;
  adminId: string;
  codeVerifierSealed: string;
  nonce: string;
}

export async function insertOAuthState(
  db: Db,
  s: OAuthStateRecord & { stateHash: string; expiresAt: Date },
  now: Date,
): Promise<void> {
  await db
    .insertInto('oauth_states')
    .values({
      state_hash: s.stateHash,
      mail_server_id: s.mailServerId,
      admin_id: s.adminId,
      code_verifier_sealed: s.codeVerifierSealed,
      nonce: s.nonce,
      created_at: now.toISOString(),
      expires_at: s.expiresAt.toISOString(),
      used_at: null,
    })
    .execute();
}

export type ConsumeResult =
  | { ok: true; state: OAuthStateRecord }
  | { ok: false; reason: 'unknown' }
  | { ok: false; reason: 'used' | 'expired'; mailServerId: string; adminId: string };

/**
 * Single use: the state is marked used by a conditional update, so of two concurrent callbacks with the
 * same state only one proceeds.
 */
export async function consumeOAuthState(db: Db, stateHash: string, now: Date): Promise<ConsumeResult> {
  const row = await db.selectFrom('oauth_states').selectAll().where('state_hash', '=', stateHash).executeTakeFirst();
  if (!row) return { ok: false, reason: 'unknown' };
  const owner = { mailServerId: row.mail_server_id, adminId: row.admin_id };
  if (row.used_at !== null) return { ok: false, reason: 'used', ...owner };
  if (row.expires_at <= now.toISOString()) return { ok: false, reason: 'expired', ...owner };
  const r = await db
    .updateTable('oauth_states')
    .set({ used_at: now.toISOString() })
    .where('state_hash', '=', stateHash)
    .where('used_at', 'is', null)
    .executeTakeFirst();
  if (Number(r.numUpdatedRows) !== 1) return { ok: false, reason: 'used', ...owner };
  return {
    ok: true,
    state: { mailServerId: row.mail_server_id, adminId: row.admin_id, codeVerifierSealed: row.code_verifier_sealed, nonce: row.nonce },
  };
}

/** Used states are kept a day so a replay is reported as a replay, then swept. */
export async function deleteStaleOAuthStates(db: Db, olderThan: Date): Promise<void> {
  await db.deleteFrom('oauth_states').where('expires_at', '<', olderThan.toISOString()).execute();
}
