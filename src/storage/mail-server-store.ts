import { sql } from 'kysely';
import type { Selectable } from 'kysely';
import type { Db } from './database.ts';
import type { MailServerTable, OAuthTokenTable } from './schema.ts';
import type { SendLimits } from '../servers/send-limits.ts';
import { containsText } from './text-search.ts';

export interface StoredError {
  code: string;
  message: string;
  fix?: string;
  evidence?: Record<string, unknown>;
  at: string;
  /**
   * 'notice': something the admin should know about a connection that works (Google's 7-day
   * "Testing" refresh token) — shown apart from errors, never as the server's Last error.
   */
  severity?: 'notice';
  /** With a notice about a refresh token that dies: when a person must sign in again (ISO). */
  signInBy?: string;
}

/** The stored problem split in two: a real error, or a notice about a connection that works. */
export function errorAndNotice(e: StoredError | null): { lastError: StoredError | null; notice: StoredError | null } {
  return e?.severity === 'notice' ? { lastError: null, notice: e } : { lastError: e, notice: null };
}

export interface MailServerRecord {
  id: string;
  name: string;
  authType: AuthType;
  username: string;
  clientId: string;
  clientSecretSealed: string | null;
  clientSecretExpiresAt: string | null;
  /** Username/Password servers only, sealed like the client secret. */
  passwordSealed: string | null;
  tenant: string;
  smtpHost: string;
  smtpPort: number;
  smtpSecurity: SmtpSecurity;
  priority: number;
  fromFilter: string | null;
  active: boolean;
  lastError: StoredError | null;
  createdAt: string;
  updatedAt: string;
  direction: 'outgoing' | 'incoming';
  imap: ImapSettings | null;
  tokenSourceId: string | null;
  /** The server whose app registration (client id, tenant, secret or certificate) this one signs in with; null: its own. */
  appSourceId: string | null;
  lastFetchAt: string | null;
  secretAlertLevel: number | null;
  reconnectAlertedAt: string | null;
  allowAccountMismatch: boolean;
  loginOkAt: string | null;
  limits: SendLimits;
  /** SMTP or IMAP with XOAUTH2, or Microsoft Graph over HTTPS. */
  transport: Transport;
  /** Outlook OAuth: a person's delegated sign-in, or the application itself (client credentials). */
  access: Access;
  /** Client Credential: what token requests authenticate with. */
  clientCredential: ClientCredentialKind;
  certificate: StoredCertificate | null;
  /** A rolled certificate, used once a token request has proven it (the admin uploaded it). */
  pendingCertificate: StoredCertificate | null;
  certificateAlertLevel: number | null;
  /** The ERP user whose personal mailbox this is; null: a shared mailbox. */
  owner: string | null;
}

export type ClientCredentialKind = 'secret' | 'certificate';

/** A client certificate as stored: the public certificate, its names, and its private key sealed. */
export interface StoredCertificate {
  /** SHA-1 of the DER certificate, upper-case hex (as Azure lists it). */
  thumbprint: string;
  /** SHA-256 of the DER certificate, base64url (the x5t#S256 header). */
  thumbprintSha256: string;
  subject: string;
  notBefore: string;
  notAfter: string;
  source: 'generated' | 'imported';
  createdAt: string;
  certificatePem: string;
  /** PKCS#8 PEM sealed with certificateKeyAad(server id, thumbprintSha256). */
  privateKeySealed: string;
}

function parseCertificate(json: string | null): StoredCertificate | null {
  if (!json) return null;
  try {
    return JSON.parse(json) as StoredCertificate;
  } catch {
    return null;
  }
}

export type Access = 'delegated' | 'application';

export type Transport = 'smtp' | 'imap' | 'graph';

/** Authenticate Using: an OAuth provider, a password, or nothing (a relay that trusts the network). */
export type AuthType = 'outlook_oauth' | 'gmail_oauth' | 'password' | 'none';
export const AUTH_TYPES: readonly AuthType[] = ['outlook_oauth', 'gmail_oauth', 'password', 'none'];

/** `none`: plain text, only for loopback or explicitly allowed hosts. */
export type SmtpSecurity = 'starttls' | 'tls' | 'none';

export interface ImapSettings {
  host: string;
  port: number;
  security: 'tls' | 'starttls';
  folder: string;
  afterFetch: 'mark_read' | 'move' | 'leave';
  moveToFolder: string | null;
  intervalMinutes: number;
}

export type TokenStatus = 'not_connected' | 'valid' | 'reconnect_needed';

export interface TokenRecord {
  mailServerId: string;
  status: TokenStatus;
  statusReason: string | null;
  account: string | null;
  tenantId: string | null;
  scope: string | null;
  accessTokenSealed: string | null;
  accessTokenExpiresAt: string | null;
  refreshTokenSealed: string | null;
  version: number;
  connectedAt: string | null;
  refreshedAt: string | null;
}

function toRecord(r: Selectable<MailServerTable>): MailServerRecord {
  return {
    id: r.id,
    name: r.name,
    authType: (AUTH_TYPES as readonly string[]).includes(r.auth_type) ? (r.auth_type as AuthType) : 'outlook_oauth',
    username: r.username,
    clientId: r.client_id,
    clientSecretSealed: r.client_secret_sealed,
    clientSecretExpiresAt: r.client_secret_expires_at,
    passwordSealed: r.password_sealed ?? null,
    tenant: r.tenant,
    smtpHost: r.smtp_host,
    smtpPort: Number(r.smtp_port),
    smtpSecurity: r.smtp_security === 'tls' || r.smtp_security === 'none' ? r.smtp_security : 'starttls',
    priority: Number(r.priority),
    fromFilter: r.from_filter,
    active: Number(r.active) === 1,
    lastError: r.last_error ? (JSON.parse(r.last_error) as StoredError) : null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    direction: r.direction === 'incoming' ? 'incoming' : 'outgoing',
    imap:
      r.direction === 'incoming'
        ? {
            host: r.imap_host ?? '',
            port: Number(r.imap_port),
            security: r.imap_security === 'starttls' ? 'starttls' : 'tls',
            folder: r.folder ?? 'INBOX',
            afterFetch: (r.after_fetch ?? 'mark_read') as ImapSettings['afterFetch'],
            moveToFolder: r.move_to_folder,
            intervalMinutes: Number(r.interval_minutes ?? 5),
          }
        : null,
    tokenSourceId: r.token_source_id,
    appSourceId: r.app_source_id ?? null,
    lastFetchAt: r.last_fetch_at,
    secretAlertLevel: r.secret_alert_level === null ? null : Number(r.secret_alert_level),
    reconnectAlertedAt: r.reconnect_alerted_at,
    allowAccountMismatch: Number(r.allow_account_mismatch) === 1,
    loginOkAt: r.login_ok_at,
    transport: r.transport === 'graph' ? 'graph' : r.direction === 'incoming' ? 'imap' : 'smtp',
    owner: r.owner ?? null,
    access: r.access === 'application' ? 'application' : 'delegated',
    limits: {
      maxConnections: r.max_connections === null ? null : Number(r.max_connections),
      messagesPerMinute: r.messages_per_minute === null ? null : Number(r.messages_per_minute),
      recipientsPerDay: r.recipients_per_day === null ? null : Number(r.recipients_per_day),
      recipientsPerMessage: r.recipients_per_message === null ? null : Number(r.recipients_per_message),
    },
    clientCredential: r.client_credential === 'certificate' ? 'certificate' : 'secret',
    certificate: parseCertificate(r.certificate),
    pendingCertificate: parseCertificate(r.pending_certificate),
    certificateAlertLevel: r.certificate_alert_level === null || r.certificate_alert_level === undefined ? null : Number(r.certificate_alert_level),
  };
}

function toToken(r: Selectable<OAuthTokenTable>): TokenRecord {
  return {
    mailServerId: r.mail_server_id,
    status: r.status as TokenStatus,
    statusReason: r.status_reason,
    account: r.account,
    tenantId: r.tenant_id,
    scope: r.scope,
    accessTokenSealed: r.access_token_sealed,
    accessTokenExpiresAt: r.access_token_expires_at,
    refreshTokenSealed: r.refresh_token_sealed,
    version: Number(r.version),
    connectedAt: r.connected_at,
    refreshedAt: r.refreshed_at,
  };
}

type Columns = Omit<
  MailServerRecord,
  | 'id'
  | 'createdAt'
  | 'updatedAt'
  | 'direction'
  | 'imap'
  | 'tokenSourceId'
  | 'appSourceId'
  | 'lastFetchAt'
  | 'secretAlertLevel'
  | 'reconnectAlertedAt'
  | 'allowAccountMismatch'
  | 'loginOkAt'
  | 'limits'
  | 'transport'
  | 'passwordSealed'
  | 'clientCredential'
  | 'certificate'
  | 'pendingCertificate'
  | 'certificateAlertLevel'
  | 'owner'
  | 'access'
> & {
  access?: Access;
  clientCredential?: ClientCredentialKind;
  owner?: string | null;
  passwordSealed?: string | null;
  transport?: Transport;
  limits?: Partial<SendLimits>;
  direction?: MailServerRecord['direction'];
  imap?: ImapSettings | null;
  tokenSourceId?: string | null;
  appSourceId?: string | null;
  lastFetchAt?: string | null;
  allowAccountMismatch?: boolean;
};

function toColumns(p: Partial<Columns>): Partial<MailServerTable> {
  const c: Partial<MailServerTable> = {};
  if (p.name !== undefined) c.name = p.name;
  if (p.authType !== undefined) c.auth_type = p.authType;
  if (p.username !== undefined) c.username = p.username;
  if (p.clientId !== undefined) c.client_id = p.clientId;
  if (p.clientSecretSealed !== undefined) c.client_secret_sealed = p.clientSecretSealed;
  if (p.clientSecretExpiresAt !== undefined) c.client_secret_expires_at = p.clientSecretExpiresAt;
  if (p.passwordSealed !== undefined) c.password_sealed = p.passwordSealed;
  if (p.tenant !== undefined) c.tenant = p.tenant;
  if (p.smtpHost !== undefined) c.smtp_host = p.smtpHost;
  if (p.smtpPort !== undefined) c.smtp_port = p.smtpPort;
  if (p.smtpSecurity !== undefined) c.smtp_security = p.smtpSecurity;
  if (p.priority !== undefined) c.priority = p.priority;
  if (p.fromFilter !== undefined) c.from_filter = p.fromFilter;
  if (p.active !== undefined) c.active = p.active ? 1 : 0;
  if (p.lastError !== undefined) c.last_error = p.lastError ? JSON.stringify(p.lastError) : null;
  if (p.direction !== undefined) c.direction = p.direction;
  if (p.imap) {
    c.imap_host = p.imap.host;
    c.imap_port = p.imap.port;
    c.imap_security = p.imap.security;
    c.folder = p.imap.folder;
    c.after_fetch = p.imap.afterFetch;
    c.move_to_folder = p.imap.moveToFolder;
    c.interval_minutes = p.imap.intervalMinutes;
  }
  if (p.tokenSourceId !== undefined) c.token_source_id = p.tokenSourceId;
  if (p.appSourceId !== undefined) c.app_source_id = p.appSourceId;
  if (p.access !== undefined) c.access = p.access;
  if (p.transport !== undefined) c.transport = p.transport === 'graph' ? 'graph' : null;
  if (p.lastFetchAt !== undefined) c.last_fetch_at = p.lastFetchAt;
  if (p.allowAccountMismatch !== undefined) c.allow_account_mismatch = p.allowAccountMismatch ? 1 : 0;
  if (p.owner !== undefined) c.owner = p.owner;
  if (p.limits?.maxConnections !== undefined) c.max_connections = p.limits.maxConnections;
  if (p.limits?.messagesPerMinute !== undefined) c.messages_per_minute = p.limits.messagesPerMinute;
  if (p.limits?.recipientsPerDay !== undefined) c.recipients_per_day = p.limits.recipientsPerDay;
  if (p.limits?.recipientsPerMessage !== undefined) c.recipients_per_message = p.limits.recipientsPerMessage;
  if (p.clientCredential !== undefined) c.client_credential = p.clientCredential;
  return c;
}

export async function insertMailServer(db: Db, id: string, values: Columns, now: Date): Promise<MailServerRecord> {
  const ts = now.toISOString();
  await db
    .insertInto('mail_servers')
    .values({ ...(toColumns(values) as MailServerTable), id, created_at: ts, updated_at: ts })
    .execute();
  return (await findMailServer(db, id))!;
}

export async function updateMailServer(db: Db, id: string, patch: Partial<Columns>, now: Date): Promise<MailServerRecord | undefined> {
  await db
    .updateTable('mail_servers')
    .set({ ...toColumns(patch), updated_at: now.toISOString() })
    .where('id', '=', id)
    .execute();
  return findMailServer(db, id);
}

export async function setMailServerError(db: Db, id: string, error: StoredError | null): Promise<void> {
  await db
    .updateTable('mail_servers')
    .set({ last_error: error ? JSON.stringify(error) : null })
    .where('id', '=', id)
    .execute();
}

/** The stored text a success may clear: the error it began with, never a notice (about a connection that works). */
const clearableText = (seen: StoredError | null | undefined): string | null => (seen && seen.severity !== 'notice' ? JSON.stringify(seen) : null);

/**
 * A success clears the error it began with, and only that one: an error or notice written meanwhile
 * (a newer failure, a promoted certificate's notice) stays, and a notice stays until replaced.
 */
export async function clearMailServerError(db: Db, id: string, seen: StoredError | null): Promise<void> {
  const text = clearableText(seen);
  if (text !== null) await clearStoredErrorIf(db, id, text);
}

/** Takes down a notice the admin has acted on, if it is still the one stored. */
export function dismissMailServerNotice(db: Db, id: string, seen: StoredError): Promise<boolean> {
  return clearStoredErrorIf(db, id, JSON.stringify(seen));
}

/** Compare-and-set: clears the server's last error only if its stored text is still `text`. */
async function clearStoredErrorIf(db: Db, id: string, text: string): Promise<boolean> {
  const r = await db.updateTable('mail_servers').set({ last_error: null }).where('id', '=', id).where('last_error', '=', text).executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/** The names of these servers only (the servers of a page of messages), by id. */
export async function mailServerNames(db: Db, ids: readonly string[]): Promise<Map<string, string>> {
  const unique = [...new Set(ids)];
  if (!unique.length) return new Map();
  const rows = await db.selectFrom('mail_servers').select(['id', 'name']).where('id', 'in', unique).execute();
  return new Map(rows.map((r) => [r.id, r.name]));
}

export async function findMailServer(db: Db, id: string): Promise<MailServerRecord | undefined> {
  const r = await db.selectFrom('mail_servers').selectAll().where('id', '=', id).executeTakeFirst();
  return r && toRecord(r);
}

/** These servers, by id (ids that do not exist are left out). */
export async function findMailServers(db: Db, ids: readonly string[]): Promise<Map<string, MailServerRecord>> {
  const unique = [...new Set(ids)];
  if (!unique.length) return new Map();
  const rows = await db.selectFrom('mail_servers').selectAll().where('id', 'in', unique).execute();
  return new Map(rows.map((r) => [r.id, toRecord(r)]));
}

export async function listMailServers(db: Db, direction: MailServerRecord['direction'] = 'outgoing'): Promise<MailServerRecord[]> {
  const rows = await db.selectFrom('mail_servers').selectAll().where('direction', '=', direction).orderBy('priority').orderBy('name').execute();
  return rows.map(toRecord);
}

/**
 * Changes whenever a server of `direction` is added, deleted or saved: a cached list of them is still
 * current while this reads the same. One row, moved by the database's triggers (migration 0025), so
 * two saves in one millisecond or by an instance whose clock is behind are seen too.
 */
export async function mailServersVersion(db: Db, direction: MailServerRecord['direction'] = 'outgoing'): Promise<string> {
  const r = await db.selectFrom('mail_server_revisions').select('n').where('direction', '=', direction).executeTakeFirst();
  return String(r?.n ?? 0);
}

export type ServerState = 'connected' | 'needs_attention' | 'not_connected' | 'disabled';
export const SERVER_STATES: readonly ServerState[] = ['connected', 'needs_attention', 'not_connected', 'disabled'];

/** Methods that sign in without a token: their state is their last error alone. */
const TOKENLESS = ['password', 'none'];

/**
 * The token row that tells whether a server is connected: application access records one per server
 * (Token Valid is per mailbox); a server sharing a delegated connection has its source's.
 */
export function tokenRowId(s: Pick<MailServerRecord, 'id' | 'access' | 'tokenSourceId'>): string {
  return s.access === 'application' ? s.id : (s.tokenSourceId ?? s.id);
}

/**
 * One word for the list: archived; a refusal kept or a dead grant; signed in (or needing no sign-in);
 * else not yet connected. `token` is the server's own or its token source's.
 */
export function serverState(s: Pick<MailServerRecord, 'active' | 'lastError' | 'authType'>, tokenStatus: TokenStatus | undefined): ServerState {
  if (!s.active) return 'disabled';
  if (s.lastError || tokenStatus === 'reconnect_needed') return 'needs_attention';
  if (TOKENLESS.includes(s.authType) || tokenStatus === 'valid') return 'connected';
  return 'not_connected';
}

export interface ServerQuery {
  direction: MailServerRecord['direction'];
  owner?: string | null;
  state?: ServerState;
  q?: string;
  /** Page size; the page after `cursor` (from the previous answer). */
  limit: number;
  cursor?: { priority: number; name: string; id: string };
}

/**
 * A page of servers with the filters applied in SQL (the same rules as serverState), in the list's
 * order (priority, name, id) with a keyset cursor, and the total matching the filters.
 */
export async function queryMailServers(db: Db, q: ServerQuery): Promise<{ items: MailServerRecord[]; total: number; last: boolean }> {
  let base = db
    .selectFrom('mail_servers as ms')
    .leftJoin('oauth_tokens as t', (j) => j.on((eb) => eb('t.mail_server_id', '=', eb.fn.coalesce('ms.token_source_id', 'ms.id'))))
    .where('ms.direction', '=', q.direction);
  if (q.owner !== undefined) base = base.where('ms.owner', q.owner === null ? 'is' : '=', q.owner);
  if (q.q) base = base.where(containsText(['ms.name', 'ms.username'], q.q));
  if (q.state === 'disabled') base = base.where('ms.active', '=', 0);
  else if (q.state) {
    base = base.where('ms.active', '=', 1);
    if (q.state === 'needs_attention') base = base.where((eb) => eb.or([eb('ms.last_error', 'is not', null), eb('t.status', '=', 'reconnect_needed')]));
    else {
      base = base.where('ms.last_error', 'is', null).where((eb) => eb.or([eb('t.status', 'is', null), eb('t.status', '!=', 'reconnect_needed')]));
      base =
        q.state === 'connected'
          ? base.where((eb) => eb.or([eb('ms.auth_type', 'in', TOKENLESS), eb('t.status', '=', 'valid')]))
          : base.where('ms.auth_type', 'not in', TOKENLESS).where((eb) => eb.or([eb('t.status', 'is', null), eb('t.status', '=', 'not_connected')]));
    }
  }
  const { total } = await base.select((eb) => eb.fn.countAll<number | string>().as('total')).executeTakeFirstOrThrow();
  let page = base.selectAll('ms');
  const c = q.cursor;
  if (c) {
    page = page.where((eb) =>
      eb.or([
        eb('ms.priority', '>', c.priority),
        eb.and([eb('ms.priority', '=', c.priority), eb('ms.name', '>', c.name)]),
        eb.and([eb('ms.priority', '=', c.priority), eb('ms.name', '=', c.name), eb('ms.id', '>', c.id)]),
      ]),
    );
  }
  const rows = await page.orderBy('ms.priority').orderBy('ms.name').orderBy('ms.id').limit(q.limit + 1).execute();
  return { items: rows.slice(0, q.limit).map(toRecord), total: Number(total), last: rows.length <= q.limit };
}

export interface OwnerQuery {
  direction?: MailServerRecord['direction'];
  /** Part of the owner, any case. */
  q?: string;
  limit: number;
  /** The page after this owner (the last of the previous page). */
  after?: string;
}

/** Distinct owners of servers with how many servers each has, by owner, a page at a time (the index on owner serves it). */
export async function queryOwners(db: Db, q: OwnerQuery): Promise<{ items: { owner: string; servers: number }[]; last: boolean }> {
  let base = db.selectFrom('mail_servers').where('owner', 'is not', null);
  if (q.direction) base = base.where('direction', '=', q.direction);
  if (q.q) base = base.where(containsText(['owner'], q.q));
  if (q.after !== undefined) base = base.where('owner', '>', q.after);
  const rows = await base
    .select((eb) => ['owner', eb.fn.countAll<number | string>().as('servers')])
    .groupBy('owner')
    .orderBy('owner')
    .limit(q.limit + 1)
    .execute();
  return { items: rows.slice(0, q.limit).map((r) => ({ owner: r.owner!, servers: Number(r.servers) })), last: rows.length <= q.limit };
}

/** The owner's servers in one direction (a personal mailbox is looked up by owner and address). */
export async function listOwnedServers(db: Db, owner: string, direction: MailServerRecord['direction']): Promise<MailServerRecord[]> {
  return (await db.selectFrom('mail_servers').selectAll().where('owner', '=', owner).where('direction', '=', direction).orderBy('priority').orderBy('name').execute()).map(toRecord);
}

/** The first incoming server that reuses `sourceId`'s connection (a template's own inbox settings). */
export async function findIncomingUsing(db: Db, sourceId: string): Promise<MailServerRecord | undefined> {
  const r = await db.selectFrom('mail_servers').selectAll().where('direction', '=', 'incoming').where('token_source_id', '=', sourceId).orderBy('created_at').executeTakeFirst();
  return r && toRecord(r);
}

/**
 * How many other servers use `sourceId`'s connection (`token`: tokenSourceId) or its app registration
 * (`app`: appSourceId, personal mailboxes made from it). One count, not a read of every server.
 */
export async function countServersUsing(db: Db, sourceId: string, what: 'token' | 'app'): Promise<number> {
  const r = await db
    .selectFrom('mail_servers')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where(what === 'token' ? 'token_source_id' : 'app_source_id', '=', sourceId)
    .where('id', '!=', sourceId)
    .executeTakeFirst();
  return Number(r?.n ?? 0);
}

/**
 * Fetches that ended well, each at its `at`: the login was accepted then too, and a connection error
 * it recovered from is cleared. One transaction (one commit) for all of them: a thousand mailboxes
 * fetching at once write their stamps together.
 */
export async function setLastFetch(db: Db, fetches: ReadonlyArray<{ id: string; at: string; clearError?: StoredError | null }>): Promise<void> {
  if (!fetches.length) return;
  await db.transaction().execute(async (trx) => {
    for (const f of fetches) {
      // The error the fetch began with is cleared only if it is still the one stored (see clearMailServerError).
      const seen = clearableText(f.clearError);
      await trx
        .updateTable('mail_servers')
        .set((eb) => ({
          last_fetch_at: f.at,
          login_ok_at: f.at,
          ...(seen !== null && { last_error: eb.case().when('last_error', '=', seen).then(sql<string | null>`null`).else(eb.ref('last_error')).end() }),
        }))
        .where('id', '=', f.id)
        .execute();
    }
  });
}

/** Fetch Now on an instance that does not hold the mailbox: the holder sees it due at its next tick. */
export async function clearLastFetch(db: Db, id: string): Promise<void> {
  await db.updateTable('mail_servers').set({ last_fetch_at: null }).where('id', '=', id).execute();
}

export async function deleteMailServer(db: Db, id: string): Promise<boolean> {
  const r = await db.deleteFrom('mail_servers').where('id', '=', id).executeTakeFirst();
  return Number(r.numDeletedRows) === 1;
}

export async function findToken(db: Db, mailServerId: string): Promise<TokenRecord | undefined> {
  const r = await db.selectFrom('oauth_tokens').selectAll().where('mail_server_id', '=', mailServerId).executeTakeFirst();
  return r && toToken(r);
}

/** The tokens of these servers only (a page of the list), by server id. */
export async function findTokens(db: Db, ids: string[]): Promise<Map<string, TokenRecord>> {
  const unique = [...new Set(ids)];
  if (!unique.length) return new Map();
  const rows = await db.selectFrom('oauth_tokens').selectAll().where('mail_server_id', 'in', unique).execute();
  return new Map(rows.map((r) => [r.mail_server_id, toToken(r)]));
}

export async function listTokens(db: Db): Promise<TokenRecord[]> {
  return (await db.selectFrom('oauth_tokens').selectAll().execute()).map(toToken);
}

export interface TokenWrite {
  status: TokenStatus;
  statusReason: string | null;
  account?: string | null;
  tenantId?: string | null;
  scope?: string | null;
  accessTokenSealed?: string | null;
  accessTokenExpiresAt?: string | null;
  refreshTokenSealed?: string | null;
  connectedAt?: string | null;
  refreshedAt?: string | null;
}

function tokenColumns(w: TokenWrite, now: Date): Partial<OAuthTokenTable> {
  const c: Partial<OAuthTokenTable> = { status: w.status, status_reason: w.statusReason, updated_at: now.toISOString() };
  if (w.account !== undefined) c.account = w.account;
  if (w.tenantId !== undefined) c.tenant_id = w.tenantId;
  if (w.scope !== undefined) c.scope = w.scope;
  if (w.accessTokenSealed !== undefined) c.access_token_sealed = w.accessTokenSealed;
  if (w.accessTokenExpiresAt !== undefined) c.access_token_expires_at = w.accessTokenExpiresAt;
  if (w.refreshTokenSealed !== undefined) c.refresh_token_sealed = w.refreshTokenSealed;
  if (w.connectedAt !== undefined) c.connected_at = w.connectedAt;
  if (w.refreshedAt !== undefined) c.refreshed_at = w.refreshedAt;
  return c;
}

/** A fresh connection replaces whatever tokens the server had (upsert). */
export async function replaceToken(db: Db, mailServerId: string, w: TokenWrite, now: Date): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const existing = await trx.selectFrom('oauth_tokens').select('version').where('mail_server_id', '=', mailServerId).executeTakeFirst();
    if (existing) {
      await trx
        .updateTable('oauth_tokens')
        .set((eb) => ({ ...tokenColumns(w, now), version: eb('version', '+', 1) }))
        .where('mail_server_id', '=', mailServerId)
        .execute();
    } else {
      await trx
        .insertInto('oauth_tokens')
        .values({ ...(tokenColumns(w, now) as OAuthTokenTable), mail_server_id: mailServerId, version: 1 })
        .execute();
    }
  });
}

/**
 * Writes refreshed tokens only if the row is still at `expectedVersion`: the new access token and the
 * rotated refresh token land in one statement, and a refresh that lost a race never overwrites a newer
 * refresh token with an older one.
 */
export async function updateTokenIfVersion(
  db: Db,
  mailServerId: string,
  expectedVersion: number,
  w: TokenWrite,
  now: Date,
): Promise<boolean> {
  const r = await db
    .updateTable('oauth_tokens')
    .set((eb) => ({ ...tokenColumns(w, now), version: eb('version', '+', 1) }))
    .where('mail_server_id', '=', mailServerId)
    .where('version', '=', expectedVersion)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/**
 * Forgets the cached access token but keeps the grant: after a change of transport the next token is
 * refreshed for the other resource (Graph or Outlook) from the same refresh token.
 */
export async function forgetAccessToken(db: Db, mailServerId: string, now: Date): Promise<void> {
  await db
    .updateTable('oauth_tokens')
    .set((eb) => ({ access_token_sealed: null, access_token_expires_at: null, updated_at: now.toISOString(), version: eb('version', '+', 1) }))
    .where('mail_server_id', '=', mailServerId)
    .execute();
}

/**
 * Runs a token refresh as the only one for this server in the whole cluster. On PostgreSQL the
 * transaction takes an advisory lock on the server id: an instance that comes second waits here and
 * then reads the token the first one stored, so a rotated refresh token is never sent twice. The lock
 * ends with the transaction, also when the instance dies. SQLite has one process: the in-process
 * single-flight is enough, and a write transaction must not stay open across an HTTP request.
 */
export async function withTokenLock<T>(db: Db, dialect: 'sqlite' | 'postgres', mailServerId: string, run: (db: Db) => Promise<T>): Promise<T> {
  if (dialect === 'sqlite') return run(db);
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtextextended(${`oauth_token:${mailServerId}`}, 0))`.execute(trx);
    return run(trx);
  });
}

export async function deleteToken(db: Db, mailServerId: string): Promise<void> {
  await db.deleteFrom('oauth_tokens').where('mail_server_id', '=', mailServerId).execute();
}

export async function setAlertState(db: Db, id: string, p: { secretAlertLevel?: number | null; reconnectAlertedAt?: string | null; loginOkAt?: string }): Promise<void> {
  await db
    .updateTable('mail_servers')
    .set({
      ...(p.secretAlertLevel !== undefined && { secret_alert_level: p.secretAlertLevel }),
      ...(p.reconnectAlertedAt !== undefined && { reconnect_alerted_at: p.reconnectAlertedAt }),
      ...(p.loginOkAt !== undefined && { login_ok_at: p.loginOkAt }),
    })
    .where('id', '=', id)
    .execute();
}

/**
 * Claims the secret-expiry warning `level` for one server: a compare-and-set on the level last sent,
 * so of several instances that saw the same old level exactly one moves it on and sends the warning.
 */
export async function claimSecretAlert(db: Db, id: string, lastSent: number | null, level: number): Promise<boolean> {
  const r = await db
    .updateTable('mail_servers')
    .set({ secret_alert_level: level })
    .where('id', '=', id)
    .where((eb) => (lastSent === null ? eb('secret_alert_level', 'is', null) : eb('secret_alert_level', '=', lastSent)))
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/** Claims the one reconnect alert of a server: only the instance that sets reconnect_alerted_at from null sends it. */
export async function claimReconnectAlert(db: Db, id: string, at: string): Promise<boolean> {
  const r = await db.updateTable('mail_servers').set({ reconnect_alerted_at: at }).where('id', '=', id).where('reconnect_alerted_at', 'is', null).executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function listAllMailServers(db: Db): Promise<MailServerRecord[]> {
  return (await db.selectFrom('mail_servers').selectAll().orderBy('direction', 'desc').orderBy('name').execute()).map(toRecord);
}

/**
 * Stores a first certificate: only while the server has none (of several admins or instances that
 * generate at once, one wins; the others get false and answer "already exists").
 */
export async function setFirstCertificate(db: Db, id: string, cert: StoredCertificate, now: Date): Promise<boolean> {
  const r = await db
    .updateTable('mail_servers')
    .set({ certificate: JSON.stringify(cert), pending_certificate: null, certificate_alert_level: null, updated_at: now.toISOString() })
    .where('id', '=', id)
    .where('certificate', 'is', null)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/** Replaces the certificate in use outright (an import), dropping any pending one. */
export async function replaceCertificate(db: Db, id: string, cert: StoredCertificate, now: Date): Promise<void> {
  await db
    .updateTable('mail_servers')
    .set({ certificate: JSON.stringify(cert), pending_certificate: null, certificate_alert_level: null, updated_at: now.toISOString() })
    .where('id', '=', id)
    .execute();
}

/** Sets (or replaces) the pending certificate of a server that has one in use. */
export async function setPendingCertificate(db: Db, id: string, cert: StoredCertificate, now: Date): Promise<boolean> {
  const r = await db
    .updateTable('mail_servers')
    .set({ pending_certificate: JSON.stringify(cert), updated_at: now.toISOString() })
    .where('id', '=', id)
    .where('certificate', 'is not', null)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/**
 * The pending certificate (named by its SHA-256 thumbprint) becomes the one in use and the old one is
 * dropped, in one conditional UPDATE of the server's row: of several instances that proved it at
 * once exactly one gets true (and tells the admin); the others find it already done.
 */
export async function promotePendingCertificate(
  db: Db,
  id: string,
  thumbprintSha256: string,
  now: Date,
  notice?: (current: StoredCertificate, dropped: StoredCertificate | null) => StoredError | null,
): Promise<{ current: StoredCertificate; dropped: StoredCertificate | null } | null> {
  const row = await db.selectFrom('mail_servers').select(['certificate', 'pending_certificate']).where('id', '=', id).executeTakeFirst();
  const pending = parseCertificate(row?.pending_certificate ?? null);
  if (!row || !pending || pending.thumbprintSha256 !== thumbprintSha256) return null;
  const dropped = parseCertificate(row.certificate);
  // The notice (delete the old one in Azure) is written with the promotion: a reader never sees one without the other.
  const told = notice?.(pending, dropped) ?? null;
  const r = await db
    .updateTable('mail_servers')
    .set({ certificate: row.pending_certificate, pending_certificate: null, certificate_alert_level: null, updated_at: now.toISOString(), ...(told && { last_error: JSON.stringify(told) }) })
    .where('id', '=', id)
    .where('pending_certificate', '=', row.pending_certificate)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1 ? { current: pending, dropped } : null;
}

/** Claims a certificate-expiry warning level, as claimSecretAlert does for the secret. */
export async function claimCertificateAlert(db: Db, id: string, lastSent: number | null, level: number): Promise<boolean> {
  const r = await db
    .updateTable('mail_servers')
    .set({ certificate_alert_level: level })
    .where('id', '=', id)
    .where((eb) => (lastSent === null ? eb('certificate_alert_level', 'is', null) : eb('certificate_alert_level', '=', lastSent)))
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}
