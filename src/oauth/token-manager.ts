import type { Config } from '../config/config.ts';
import { diagnose } from '../diagnose/diagnose.ts';
import type { OAuthEvidence } from '../diagnose/evidence.ts';
import { MailroomError, isMailroomError } from '../errors/errors.ts';
import type { Sealer } from '../secrets/sealer.ts';
import type { Db } from '../storage/database.ts';
import {
  findMailServer,
  findToken,
  type MailServerRecord,
  clearMailServerError,
  setMailServerError,
  type StoredError,
  type TokenRecord,
  updateTokenIfVersion,
  withTokenLock,
} from '../storage/mail-server-store.ts';
import type { MailLogin } from '../credentials/auth-method.ts';
import { authMethodOf } from '../credentials/auth-methods.ts';
import { connectLabel, type OAuthApp, type OAuthProvider, type OAuthTokens } from './oauth-provider.ts';
import { oauthProviderOf, requireOAuthProvider } from './oauth-providers.ts';
import { outlookProvider } from './outlook.ts';
import { type ApplicationAccess, ApplicationTokens } from './application-tokens.ts';
import { credentialOf } from './server-credential.ts';

/** Refresh when less than this remains, so a token never expires in the middle of an SMTP session. */
export const REFRESH_MARGIN_MS = 5 * 60_000;

/**
 * Renewals are spread over this last part of a token's lifetime (before the margin): a thousand
 * tokens issued in the same minute are renewed over minutes, not in one burst at their expiry.
 */
export const RENEWAL_SPREAD_FRACTION = 0.25;

export type TokenAction = 'use' | 'refresh' | 'not_connected' | 'reconnect_needed';

/** A stable number in [0, 1) for a server: its place in the renewal window (FNV-1a of the id). */
export function renewalOffset(serverId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < serverId.length; i++) {
    h ^= serverId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) / 0x1_0000_0000;
}

/**
 * When the server's token is renewed: at a point of the last quarter of its lifetime (issued at
 * `refreshedAt`) chosen by the server id, never later than REFRESH_MARGIN_MS before it expires.
 * Deterministic, so every instance agrees and a restart does not move it.
 */
export function renewAt(t: { mailServerId: string; accessTokenExpiresAt: string; refreshedAt?: string | null }): number {
  const expiresAt = Date.parse(t.accessTokenExpiresAt);
  const latest = expiresAt - REFRESH_MARGIN_MS;
  const issuedAt = t.refreshedAt ? Date.parse(t.refreshedAt) : NaN;
  if (!Number.isFinite(issuedAt) || issuedAt >= latest) return latest;
  const spread = Math.max(0, (expiresAt - issuedAt) * RENEWAL_SPREAD_FRACTION - REFRESH_MARGIN_MS);
  return latest - renewalOffset(t.mailServerId) * spread;
}

/** Pure decision: what to do with the stored token right now. */
export function tokenAction(
  t: (Pick<TokenRecord, 'status' | 'accessTokenExpiresAt' | 'refreshTokenSealed' | 'accessTokenSealed'> & Partial<Pick<TokenRecord, 'mailServerId' | 'refreshedAt'>>) | undefined,
  now: Date,
  forceRefresh = false,
): TokenAction {
  if (!t || t.status === 'not_connected') return 'not_connected';
  if (t.status === 'reconnect_needed') return 'reconnect_needed';
  const expiresAt = t.accessTokenExpiresAt ? Date.parse(t.accessTokenExpiresAt) : 0;
  const due = t.accessTokenExpiresAt && t.mailServerId ? renewAt({ mailServerId: t.mailServerId, accessTokenExpiresAt: t.accessTokenExpiresAt, refreshedAt: t.refreshedAt ?? null }) : expiresAt - REFRESH_MARGIN_MS;
  const fresh = t.accessTokenSealed !== null && now.getTime() < due;
  if (fresh && !forceRefresh) return 'use';
  return t.refreshTokenSealed ? 'refresh' : 'reconnect_needed';
}

/** OAuth errors after which the stored grant is dead and only a new sign-in helps (by the server's provider). */
export function grantIsDead(ev: OAuthEvidence, provider: Pick<OAuthProvider, 'grantIsDead'> = outlookProvider): boolean {
  return provider.grantIsDead(ev);
}

/**
 * A refresh failure recorded on the server since `before` was read, that waiting a moment does not
 * cure and that says nothing about the grant: the token endpoint too slow, answering too much, or
 * out of reach. Null for anything else (a mail server's reply, a dead grant).
 */
function sharedRefreshFailure(before: StoredError | null | undefined, after: StoredError | null | undefined): MailroomError | null {
  if (!after || (before && before.at === after.at && before.code === after.code)) return null;
  const ev = after.evidence as (Partial<OAuthEvidence> & { kind?: string }) | undefined;
  const refused = ev?.kind === 'oauth' && ev.stage === 'refresh' && ev.origin !== undefined;
  if (!refused && after.code !== 'MR_OAUTH_UNREACHABLE') return null;
  return new MailroomError(refused && ev?.error !== 'token_endpoint_timeout' ? 'MR_OAUTH_RESPONSE_INVALID' : 'MR_OAUTH_UNREACHABLE', after.message, {
    ...(after.fix !== undefined && { fix: after.fix }),
    ...(after.evidence !== undefined && { evidence: after.evidence }),
  });
}

export interface AccessToken {
  accessToken: string;
  /** The SASL user: the mailbox on the form. */
  user: string;
  expiresAt: Date;
}

export const tokenAad = (serverId: string, kind: 'access_token' | 'refresh_token') => `mail_server:${serverId}:${kind}`;
export { secretAad } from './server-credential.ts';

/** The permissions a server's connection asks for, as its provider decides (none without OAuth). */
export function scopesOf(server: Pick<MailServerRecord, 'transport' | 'direction' | 'authType'>, config: Config): readonly string[] {
  return oauthProviderOf(server)?.scopes(server, config) ?? [];
}

/**
 * The app a server signs in with: its own registration, or `registration`'s (a personal mailbox's
 * template, see registrationOf) — client id, tenant and credential from there; scopes from the server.
 */
export function appFor(server: MailServerRecord, config: Config, sealer: Sealer, registration: MailServerRecord = server): OAuthApp {
  const provider = requireOAuthProvider(server);
  const signer = registration === server ? server : { ...server, clientId: registration.clientId, tenant: registration.tenant };
  return provider.app(signer, config, credentialOf(registration, config, sealer));
}

/** The server holding the app registration `server` signs in with: its template (appSourceId), or itself. */
export async function registrationOf(db: Db, server: MailServerRecord): Promise<MailServerRecord> {
  if (!server.appSourceId) return server;
  const source = await findMailServer(db, server.appSourceId);
  if (!source) {
    throw new MailroomError('MR_OAUTH_NOT_CONFIGURED', `The mail server whose app registration ${server.username} signs in with no longer exists.`, {
      field: 'clientSecret',
      fix: 'Enter this mailbox\'s own Client ID and Client Secret (or certificate) on its form, or connect the person again through a new connect link.',
    });
  }
  return source;
}

export interface TokenManagerDeps {
  db: Db;
  /** On PostgreSQL a refresh also holds a cluster-wide lock on the server (several instances). */
  dialect?: 'sqlite' | 'postgres';
  sealer: Sealer;
  config: Config;
  now?: () => Date;
  /** Replaces the provider's refresh request (tests). */
  refresh?: (app: OAuthApp, refreshToken: string, now: Date) => Promise<OAuthTokens>;
  /** Replaces the provider's client-credentials request (tests). */
  clientCredentials?: NonNullable<OAuthProvider['clientCredentials']>;
  onEvent?: (e: { type: 'refreshed' | 'refresh_failed' | 'reconnect_needed'; serverId: string; code?: string }) => void;
  /**
   * A token request signed with the server's pending certificate succeeded: the certificate roll
   * promotes it (see servers/certificate-service.ts). Its failure never fails the token.
   */
  onCertificateProven?: (server: MailServerRecord, thumbprintSha256: string) => Promise<void>;
}

/**
 * The one place that hands out access tokens. Concurrent callers for one server share a single refresh
 * (single-flight), and the rotated refresh token is written in the same statement as the new access
 * token, guarded by a version number so a slower refresh never overwrites a newer one.
 */
export class TokenManager {
  private readonly inflight = new Map<string, Promise<AccessToken>>();
  private readonly now: () => Date;
  private readonly application: ApplicationTokens;

  constructor(private readonly deps: TokenManagerDeps) {
    this.now = deps.now ?? (() => new Date());
    this.application = new ApplicationTokens({
      db: deps.db,
      dialect: deps.dialect ?? 'sqlite',
      sealer: deps.sealer,
      config: deps.config,
      now: this.now,
      app: (server) => appFor(server, deps.config, deps.sealer),
      ...(deps.onCertificateProven && { onCertificateProven: deps.onCertificateProven }),
      ...(deps.clientCredentials && { clientCredentials: deps.clientCredentials }),
    });
  }

  /**
   * Application access (client credentials) for the server, through its own connection or the one it
   * reuses: "Check application access", Test Connection and the sends all come here. `force` asks
   * Microsoft for a new token (a new admin consent shows only in a new token).
   */
  async getApplicationAccess(serverId: string, opts: { forceRefresh?: boolean } = {}): Promise<ApplicationAccess> {
    const server = await this.server(serverId);
    const source = server.tokenSourceId ? await this.server(server.tokenSourceId) : server;
    if (source.access !== 'application') {
      throw new MailroomError('MR_OAUTH_NOT_CONFIGURED', 'This mail server uses delegated access (a person\'s sign-in).', { field: 'access', fix: 'Set Access to Application, or connect the account.' });
    }
    return this.application.get(server, source, opts.forceRefresh ?? false);
  }

  /**
   * What the server's Authenticate Using logs in with: an access token (OAuth), the opened password,
   * or nothing. SMTP, IMAP and Test Connection take this; Graph takes getAccessToken.
   */
  /** For explanations: the application ids of a server using application access, else undefined. */
  async applicationContext(serverId: string): Promise<import('../diagnose/evidence.ts').ApplicationContext | undefined> {
    const server = await findMailServer(this.deps.db, serverId);
    if (!server) return undefined;
    const source = server.tokenSourceId ? await findMailServer(this.deps.db, server.tokenSourceId) : server;
    if (source?.access !== 'application') return undefined;
    return this.application.context(server, source);
  }

  async getLogin(serverId: string, opts: { forceRefresh?: boolean } = {}): Promise<MailLogin> {
    const server = await this.server(serverId);
    return authMethodOf(server).login(server, { sealer: this.deps.sealer, accessToken: (id, forceRefresh) => this.getAccessToken(id, { forceRefresh }) }, opts.forceRefresh ?? false);
  }

  async getAccessToken(serverId: string, opts: { forceRefresh?: boolean } = {}): Promise<AccessToken> {
    const pending = this.inflight.get(serverId);
    if (pending) return pending;
    const server = await this.server(serverId);
    const source = server.tokenSourceId ? await this.server(server.tokenSourceId) : server;
    if (source.access === 'application') {
      const t = await this.application.get(server, source, opts.forceRefresh ?? false);
      return { accessToken: t.accessToken, user: t.user, expiresAt: t.expiresAt };
    }
    if (server.tokenSourceId) {
      // An incoming server reusing an outgoing server's connection: same token, its own mailbox name.
      const shared = await this.getAccessToken(server.tokenSourceId, opts);
      return { ...shared, user: server.username };
    }
    const token = await findToken(this.deps.db, serverId);
    const action = tokenAction(token, this.now(), opts.forceRefresh);
    if (action === 'use') return this.open(server, token!);
    if (action === 'not_connected') {
      const provider = requireOAuthProvider(server);
      throw new MailroomError('MR_OAUTH_NOT_CONNECTED', `This mail server is not connected to an ${provider.accountName} account yet.`, {
        fix: `Open the mail server and click ${connectLabel(provider)}.`,
      });
    }
    if (action === 'reconnect_needed') throw this.reconnectError(server, token);
    // Re-check after registering: another caller may have started a refresh while we read the row.
    const again = this.inflight.get(serverId);
    if (again) return again;
    const p = this.refreshOnce(server, token!).finally(() => this.inflight.delete(serverId));
    this.inflight.set(serverId, p);
    return p;
  }

  private async server(serverId: string): Promise<MailServerRecord> {
    const server = await findMailServer(this.deps.db, serverId);
    if (!server) throw new MailroomError('MR_NOT_FOUND', `Mail server ${serverId} does not exist.`);
    return server;
  }

  private open(server: MailServerRecord, t: TokenRecord): AccessToken {
    return {
      accessToken: this.deps.sealer.open(t.accessTokenSealed!, tokenAad(server.id, 'access_token')),
      user: server.username,
      expiresAt: new Date(t.accessTokenExpiresAt!),
    };
  }

  /** The stored access token works for at least 30 s more: enough for a send when a refresh could not be had. */
  private stillUsable(t: TokenRecord): boolean {
    return t.accessTokenSealed !== null && t.accessTokenExpiresAt !== null && Date.parse(t.accessTokenExpiresAt) > this.now().getTime() + 30_000;
  }

  private reconnectError(server: MailServerRecord, t: TokenRecord | undefined): MailroomError {
    const provider = requireOAuthProvider(server);
    return new MailroomError('MR_OAUTH_RECONNECT_NEEDED', t?.statusReason ?? `The ${provider.accountName} connection must be renewed.`, {
      fix: `Open the mail server and click ${connectLabel(provider)} to sign in again.`,
    });
  }

  /**
   * One refresh for the server cluster-wide: under the lock, the row is read again; if another
   * instance refreshed since `seen` was read, its token is used instead of refreshing again.
   */
  private async refreshOnce(server: MailServerRecord, seen: TokenRecord): Promise<AccessToken> {
    const outcome = await withTokenLock(this.deps.db, this.deps.dialect ?? 'sqlite', server.id, async (db): Promise<{ token: AccessToken } | { error: unknown }> => {
      const current = await findToken(db, server.id);
      if (!current) return { error: this.reconnectError(server, current) };
      // Another instance's refresh failed for a passing reason while this one waited for the lock
      // (a token endpoint that did not answer for 20 s): its failure is this caller's too, rather
      // than a second 20 s wait. The next caller tries again.
      if (current.version === seen.version) {
        const failed = sharedRefreshFailure(server.lastError, (await findMailServer(db, server.id))?.lastError);
        if (failed) return this.stillUsable(current) ? { token: this.open(server, current) } : { error: failed };
      }
      if (current.version !== seen.version) {
        const action = tokenAction(current, this.now());
        if (action === 'use') return { token: this.open(server, current) };
        if (action !== 'refresh') return { error: this.reconnectError(server, current) };
      }
      return this.doRefresh(db, server, current);
    });
    if ('error' in outcome) throw outcome.error;
    return outcome.token;
  }

  private async doRefresh(db: Db, server: MailServerRecord, token: TokenRecord): Promise<{ token: AccessToken } | { error: unknown }> {
    const { sealer } = this.deps;
    const now = this.now();
    // A personal mailbox refreshes with its template's registration; a roll it proves is the template's.
    const registration = await registrationOf(db, server);
    const app = appFor(server, this.deps.config, sealer, registration);
    const refreshToken = sealer.open(token.refreshTokenSealed!, tokenAad(server.id, 'refresh_token'));
    const refresh = this.deps.refresh ?? requireOAuthProvider(server).refreshTokens;
    let fresh: OAuthTokens;
    try {
      fresh = await refresh(app, refreshToken, now);
    } catch (e) {
      const outcome = await this.refreshFailed(db, server, token, e);
      if ('fallback' in outcome) return { token: outcome.fallback };
      return outcome;
    }
    const written = await updateTokenIfVersion(
      db,
      server.id,
      token.version,
      {
        status: 'valid',
        statusReason: null,
        accessTokenSealed: sealer.seal(fresh.accessToken, tokenAad(server.id, 'access_token')),
        accessTokenExpiresAt: fresh.expiresAt.toISOString(),
        // Microsoft rotates refresh tokens, Google does not: keep the old one if none came back.
        ...(fresh.refreshToken !== undefined && { refreshTokenSealed: sealer.seal(fresh.refreshToken, tokenAad(server.id, 'refresh_token')) }),
        ...(fresh.scope !== undefined && { scope: fresh.scope }),
        refreshedAt: now.toISOString(),
      },
      now,
    );
    if (!written) {
      // Another process refreshed (or the admin reconnected) meanwhile: theirs is newer, use it.
      const current = await findToken(db, server.id);
      if (tokenAction(current, this.now()) === 'use') return { token: this.open(server, current!) };
      return { error: this.reconnectError(server, current) };
    }
    if (server.lastError?.code.startsWith('AADSTS') || server.lastError?.code.startsWith('OAUTH_')) await clearMailServerError(db, server.id, server.lastError);
    this.deps.onEvent?.({ type: 'refreshed', serverId: server.id });
    if (fresh.provenCertificate) {
      // The token is good whatever happens here; the next proven request tries the promotion again.
      await this.deps.onCertificateProven?.(registration, fresh.provenCertificate).catch(() => undefined);
    }
    return { token: { accessToken: fresh.accessToken, user: server.username, expiresAt: fresh.expiresAt } };
  }

  private async refreshFailed(db: Db, server: MailServerRecord, token: TokenRecord, e: unknown): Promise<{ error: unknown } | { fallback: AccessToken }> {
    const now = this.now();
    const ev = isMailroomError(e, 'MR_OAUTH_PROVIDER_ERROR') ? (e.evidence as unknown as OAuthEvidence) : undefined;
    if (ev && grantIsDead(ev, requireOAuthProvider(server))) {
      const d = diagnose(ev);
      await updateTokenIfVersion(db, server.id, token.version, { status: 'reconnect_needed', statusReason: d.cause }, now);
      await setMailServerError(db, server.id, { code: d.code, message: d.cause, fix: d.fix, evidence: { ...ev }, at: now.toISOString() });
      this.deps.onEvent?.({ type: 'reconnect_needed', serverId: server.id, code: d.code });
      return { error: new MailroomError('MR_OAUTH_RECONNECT_NEEDED', d.cause, { fix: d.fix, evidence: { ...ev } }) };
    }
    if (isMailroomError(e)) {
      // Provider errors and answers refused for their time or size (evidence naming the origin): the catalogue names them.
      const refused = e.evidence as Partial<OAuthEvidence> | undefined;
      const explained = ev ?? (refused?.kind === 'oauth' && refused.origin !== undefined ? (refused as OAuthEvidence) : undefined);
      await setMailServerError(db, server.id, {
        code: explained ? diagnose(explained).code : e.code,
        message: e.message,
        ...(e.fix !== undefined && { fix: e.fix }),
        ...(e.evidence !== undefined && { evidence: e.evidence }),
        at: now.toISOString(),
      });
      this.deps.onEvent?.({ type: 'refresh_failed', serverId: server.id, code: e.code });
      // A transient failure (the network, a token endpoint too slow or answering too much) while the
      // current access token still works is not worth failing a send.
      if ((!ev || diagnose(ev).temporary) && this.stillUsable(token)) return { fallback: this.open(server, token) };
    }
    return { error: e };
  }
}
