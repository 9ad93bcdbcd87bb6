import type { Selectable } from 'kysely';
import type { Db } from './database.ts';
import type { ConnectLinkTable } from './schema.ts';

export type ConnectPurpose = 'send' | 'receive';

export interface ConnectLinkRecord {
  id: string;
  action: 'connect' | 'disconnect';
  templateServerId: string | null;
  owner: string;
  loginHint: string | null;
  purposes: ConnectPurpose[];
  returnUrl: string;
  createdBy: string | null;
  createdAt: string;
  expiresAt: string;
  usedAt: string | null;
  /** What the link did (the result the person was sent back with), once used. */
  result: { status: string; mailbox?: string; message?: string } | null;
  /** The sign-in this link started last (a new click replaces it). */
  codeVerifierSealed: string | null;
  nonce: string | null;
  stateExpiresAt: string | null;
}

function toRecord(r: Selectable<ConnectLinkTable>): ConnectLinkRecord {
  return {
    id: r.id,
    action: r.action === 'disconnect' ? 'disconnect' : 'connect',
    templateServerId: r.template_server_id,
    owner: r.owner,
    loginHint: r.login_hint,
    purposes: JSON.parse(r.purposes) as ConnectPurpose[],
    returnUrl: r.return_url,
    createdBy: r.created_by,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    usedAt: r.used_at,
    result: r.result ? (JSON.parse(r.result) as ConnectLinkRecord['result']) : null,
    codeVerifierSealed: r.code_verifier_sealed,
    nonce: r.nonce,
    stateExpiresAt: r.state_expires_at,
  };
}

export async function insertConnectLink(
  db: Db,
  l: Omit<ConnectLinkRecord, 'usedAt' | 'result' | 'codeVerifierSealed' | 'nonce' | 'stateExpiresAt' | 'createdAt'> & { tokenHash: string },
  now: Date,
): Promise<void> {
  await db
    .insertInto('connect_links')
    .values({
      id: l.id,
      token_hash: l.tokenHash,
      action: l.action,
      template_server_id: l.templateServerId,
      owner: l.owner,
      login_hint: l.loginHint,
      purposes: JSON.stringify(l.purposes),
      return_url: l.returnUrl,
      state_hash: null,
      code_verifier_sealed: null,
      nonce: null,
      state_expires_at: null,
      created_by: l.createdBy,
      created_at: now.toISOString(),
      expires_at: l.expiresAt,
      used_at: null,
      result: null,
    })
    .execute();
}

export async function findConnectLinkByToken(db: Db, tokenHash: string): Promise<ConnectLinkRecord | undefined> {
  const r = await db.selectFrom('connect_links').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
  return r && toRecord(r);
}

export async function findConnectLinkByState(db: Db, stateHash: string): Promise<ConnectLinkRecord | undefined> {
  const r = await db.selectFrom('connect_links').selectAll().where('state_hash', '=', stateHash).executeTakeFirst();
  return r && toRecord(r);
}

/** A click on the page: this sign-in's state replaces the one before (only while the link is unused). */
export async function setConnectLinkState(
  db: Db,
  id: string,
  s: { stateHash: string; codeVerifierSealed: string; nonce: string; stateExpiresAt: string },
): Promise<boolean> {
  const r = await db
    .updateTable('connect_links')
    .set({ state_hash: s.stateHash, code_verifier_sealed: s.codeVerifierSealed, nonce: s.nonce, state_expires_at: s.stateExpiresAt })
    .where('id', '=', id)
    .where('used_at', 'is', null)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/**
 * Single use: of two requests with the same link (or the same sign-in answer) only the one whose
 * conditional update sets used_at goes on.
 */
export async function consumeConnectLink(db: Db, id: string, now: Date): Promise<boolean> {
  const r = await db.updateTable('connect_links').set({ used_at: now.toISOString() }).where('id', '=', id).where('used_at', 'is', null).executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function setConnectLinkResult(db: Db, id: string, result: Record<string, unknown>): Promise<void> {
  await db.updateTable('connect_links').set({ result: JSON.stringify(result) }).where('id', '=', id).execute();
}

/** Links are kept a week past their expiry so a late click is told "expired" or "used", then swept. */
export async function deleteStaleConnectLinks(db: Db, expiredBefore: Date): Promise<void> {
  await db.deleteFrom('connect_links').where('expires_at', '<', expiredBefore.toISOString()).execute();
}
