import SQLite from 'better-sqlite3';
import { join } from 'node:path';
import { tokenAad } from '../../src/oauth/token-manager.ts';
import { createSealer, loadOrCreateKey } from '../../src/secrets/sealer.ts';
import type { TokenResponse } from '../peers/get-token.ts';

/**
 * Stores tokens for a server in a running Mailroom's SQLite file, as a completed "Connect your Outlook
 * account" would (the browser flow itself is covered by outlook-guide.test.ts).
 */
export function storeTokens(dataDir: string, serverId: string, account: string, t: TokenResponse, tenantId: string): void {
  const sealer = createSealer(loadOrCreateKey(null, dataDir));
  const now = new Date().toISOString();
  const db = new SQLite(join(dataDir, 'mailroom.sqlite'));
  db.pragma('busy_timeout = 5000');
  try {
    db.prepare('delete from oauth_tokens where mail_server_id = ?').run(serverId);
    db.prepare(
      `insert into oauth_tokens (mail_server_id, status, status_reason, account, tenant_id, scope, access_token_sealed,
         access_token_expires_at, refresh_token_sealed, version, connected_at, refreshed_at, updated_at)
       values (?, 'valid', null, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)`,
    ).run(
      serverId,
      account,
      tenantId,
      t.scope,
      sealer.seal(t.access_token, tokenAad(serverId, 'access_token')),
      new Date(Date.now() + t.expires_in * 1000).toISOString(),
      sealer.seal(t.refresh_token, tokenAad(serverId, 'refresh_token')),
      now,
      now,
      now,
    );
  } finally {
    db.close();
  }
}
