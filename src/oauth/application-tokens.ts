import { createHash } from 'node:crypto';
import type { Config } from '../config/config.ts';
import { diagnose } from '../diagnose/diagnose.ts';
import type { ApplicationContext, OAuthEvidence } from '../diagnose/evidence.ts';
import { isMailroomError, MailroomError } from '../errors/errors.ts';
import type { Sealer } from '../secrets/sealer.ts';
import { type AppTokenRecord, findAppToken, forgetAppToken, writeAppToken } from '../storage/app-token-store.ts';
import type { Db } from '../storage/database.ts';
import { clearMailServerError, findToken, type MailServerRecord, replaceToken, setMailServerError, withTokenLock } from '../storage/mail-server-store.ts';
import type { OAuthApp, OAuthProvider } from './oauth-provider.ts';
import { requireOAuthProvider } from './oauth-providers.ts';

/** Renew this long before expiry, as delegated tokens (token-manager REFRESH_MARGIN_MS). */
const RENEW_MARGIN_MS = 5 * 60_000;
/**
 * A cached token without the needed role is asked for again once older than this: admin consent may
 * have come since, and only a new token shows it. Concurrent callers still share one request.
 */
const ROLE_RECHECK_MS = 0;

export interface ApplicationAccess {
  accessToken: string;
  /** The SASL user and Graph mailbox: the server's own Username (one app, many mailboxes). */
  user: string;
  expiresAt: Date;
  roles: string[];
  tenantId: string | null;
  appId: string | null;
  objectId: string | null;
}

/** Shared by every server of one app (authority, tenant, client id) and one resource, whatever its mailbox. */
export function appTokenKey(app: Pick<OAuthApp, 'authorityHost' | 'tenant' | 'clientId'>, scope: string): string {
  return createHash('sha256').update([app.authorityHost, app.tenant.toLowerCase(), app.clientId.toLowerCase(), scope].join('\n')).digest('base64url');
}

const aad = (key: string) => `app_token:${key}`;

/** The error of a token whose roles lack what the transport needs, with the fix in Azure's words. */
export function roleMissingError(role: string, roles: readonly string[], server: Pick<MailServerRecord, 'transport' | 'username' | 'clientId' | 'tenant'>): MailroomError {
  const api = server.transport === 'graph' ? 'Microsoft Graph' : 'Office 365 Exchange Online';
  const ev: OAuthEvidence = { kind: 'oauth', stage: 'token', error: 'role_missing', errorCodes: [], missingRoles: [role], roles: [...roles], application: { clientId: server.clientId, tenant: server.tenant, mailbox: server.username, resource: api } };
  const d = diagnose(ev);
  return new MailroomError('MR_OAUTH_ROLE_MISSING', d.cause, { fix: d.fix, fields: { missingRoles: role }, evidence: { ...ev, diagnosis: d.code, guideStep: d.guideStep } });
}

/**
 * Client-credentials tokens: one request per (tenant, client, resource) at a time in the whole cluster
 * (an in-process single flight, then withTokenLock's advisory lock on PostgreSQL, re-reading the row
 * under it), cached sealed in app_tokens and renewed 5 minutes before expiry. A token counts only with
 * the role its transport needs in `roles`.
 */
export class ApplicationTokens {
  private readonly inflight = new Map<string, Promise<AppTokenRecord & { accessToken: string }>>();

  constructor(
    private readonly deps: {
      db: Db;
      dialect: 'sqlite' | 'postgres';
      sealer: Sealer;
      config: Config;
      now: () => Date;
      app: (server: MailServerRecord) => OAuthApp;
      /** A client-credentials request signed with the pending certificate of a roll succeeded (see the token manager). */
      onCertificateProven?: (server: MailServerRecord, thumbprintSha256: string) => Promise<void>;
      /** Replaces the provider's client-credentials request (tests). */
      clientCredentials?: NonNullable<OAuthProvider['clientCredentials']>;
    },
  ) {}

  /**
   * The token for `server` (its transport and mailbox) through the application connection of
   * `source` (the server itself, or the one named by tokenSourceId). `force` asks Microsoft again.
   */
  async get(server: MailServerRecord, source: MailServerRecord, force = false): Promise<ApplicationAccess> {
    const provider = requireOAuthProvider(source);
    if (!provider.clientCredentials || !provider.applicationScope || !provider.requiredRole) {
      throw new MailroomError('MR_OAUTH_NOT_CONFIGURED', `${provider.accountName} offers no application access.`, { field: 'access', fix: 'Set Access to Delegated.' });
    }
    const scope = provider.applicationScope(server, this.deps.config);
    const role = provider.requiredRole(server);
    const app: OAuthApp = { ...this.deps.app(source), scopes: [scope] };
    const key = appTokenKey(app, scope);
    let t = await this.token(key, app, source, force);
    if (!t.roles.includes(role) && !force && this.deps.now().getTime() - Date.parse(t.requestedAt ?? '') >= ROLE_RECHECK_MS) t = await this.token(key, app, source, true);
    const context = { ...server, clientId: source.clientId, tenant: source.tenant };
    if (!t.roles.includes(role)) {
      const e = roleMissingError(role, t.roles, context);
      await this.record([server, source], { status: 'not_connected', reason: e.message, t });
      throw e;
    }
    await this.record([server, source], { status: 'valid', reason: null, t });
    return { accessToken: t.accessToken, user: server.username, expiresAt: new Date(t.expiresAt!), roles: t.roles, tenantId: t.tenantId, appId: t.appId, objectId: t.objectId };
  }

  /** The ids an explanation of this server's failure is filled in with (objectId once a token told it). */
  async context(server: MailServerRecord, source: MailServerRecord): Promise<ApplicationContext> {
    const provider = requireOAuthProvider(source);
    const scope = provider.applicationScope?.(server, this.deps.config);
    const t = scope ? await findAppToken(this.deps.db, appTokenKey(this.deps.app(source), scope)).catch(() => undefined) : undefined;
    return {
      clientId: source.clientId,
      tenant: t?.tenantId ?? source.tenant,
      mailbox: server.username,
      ...(t?.objectId && { objectId: t.objectId }),
      resource: server.transport === 'graph' ? 'Microsoft Graph' : 'Office 365 Exchange Online',
    };
  }

  /** A token that lost its welcome (a 535 for a token believed valid): the next use asks again. */
  async forget(server: MailServerRecord, source: MailServerRecord): Promise<void> {
    const provider = requireOAuthProvider(source);
    if (!provider.applicationScope) return;
    const scope = provider.applicationScope(server, this.deps.config);
    await forgetAppToken(this.deps.db, appTokenKey(this.deps.app(source), scope));
  }

  private usable(t: AppTokenRecord | undefined): t is AppTokenRecord & { accessTokenSealed: string; expiresAt: string } {
    return !!t?.accessTokenSealed && !!t.expiresAt && Date.parse(t.expiresAt) - this.deps.now().getTime() > RENEW_MARGIN_MS;
  }

  private open(t: AppTokenRecord & { accessTokenSealed: string }): AppTokenRecord & { accessToken: string } {
    return { ...t, accessToken: this.deps.sealer.open(t.accessTokenSealed, aad(t.cacheKey)) };
  }

  private async token(key: string, app: OAuthApp, source: MailServerRecord, force: boolean): Promise<AppTokenRecord & { accessToken: string }> {
    const seen = await findAppToken(this.deps.db, key);
    if (!force && this.usable(seen)) return this.open(seen);
    const pending = this.inflight.get(key);
    if (pending) return pending;
    const p = this.request(key, app, source, seen, force).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private async request(key: string, app: OAuthApp, source: MailServerRecord, seen: AppTokenRecord | undefined, force: boolean): Promise<AppTokenRecord & { accessToken: string }> {
    const { sealer, dialect } = this.deps;
    return withTokenLock(this.deps.db, dialect, `app:${key}`, async (db) => {
      // Under the lock: another instance may have fetched a token while this one waited.
      const current = await findAppToken(db, key);
      if (this.usable(current) && (!force || current.version !== seen?.version)) return this.open(current);
      const now = this.deps.now();
      let fresh;
      try {
        fresh = await (this.deps.clientCredentials ?? requireOAuthProvider(source).clientCredentials!)(app, now);
      } catch (caught) {
        let e = caught;
        if (isMailroomError(e) && (e.evidence as Partial<OAuthEvidence> | undefined)?.kind === 'oauth' && !(e.evidence as Partial<OAuthEvidence>).origin) {
          // The same AADSTS code means another thing without a user sign-in: explained with the app's ids.
          const { diagnosis: _d, guideStep: _g, ...raw } = e.evidence as Record<string, unknown>;
          const withApp = { ...(raw as unknown as OAuthEvidence), application: { clientId: source.clientId, tenant: source.tenant, mailbox: source.username } };
          const d = diagnose(withApp);
          e = new MailroomError(e.code, d.cause, { fix: d.fix, evidence: { ...withApp, diagnosis: d.code, guideStep: d.guideStep } });
        }
        if (isMailroomError(e)) {
          const ev = e.evidence as Partial<OAuthEvidence> | undefined;
          const explained = ev?.kind === 'oauth' ? diagnose(ev as OAuthEvidence).code : e.code;
          await setMailServerError(db, source.id, { code: explained, message: e.message, ...(e.fix !== undefined && { fix: e.fix }), ...(e.evidence !== undefined && { evidence: e.evidence }), at: now.toISOString() });
          if (ev?.kind === 'oauth' && !diagnose(ev as OAuthEvidence).temporary) {
            await replaceToken(db, source.id, { status: 'not_connected', statusReason: e.message }, now);
          }
        }
        throw e;
      }
      const write = {
        accessTokenSealed: sealer.seal(fresh.accessToken, aad(key)),
        expiresAt: fresh.expiresAt.toISOString(),
        roles: fresh.roles,
        tenantId: fresh.tenantId,
        appId: fresh.appId,
        objectId: fresh.objectId,
      };
      if (!(await writeAppToken(db, key, current?.version, write, now))) {
        const theirs = await findAppToken(db, key);
        if (this.usable(theirs)) return this.open(theirs);
      }
      await clearMailServerError(db, source.id, source.lastError);
      // The token is good whatever happens there; the next proven request tries the promotion again.
      if (fresh.provenCertificate) await this.deps.onCertificateProven?.(source, fresh.provenCertificate).catch(() => undefined);
      return { cacheKey: key, ...write, version: (current?.version ?? 0) + 1, requestedAt: now.toISOString(), accessToken: fresh.accessToken };
    });
  }

  /** Token Valid (or why not) on each server using the connection, written only when it changes. */
  private async record(servers: MailServerRecord[], s: { status: 'valid' | 'not_connected'; reason: string | null; t: AppTokenRecord }): Promise<void> {
    const now = this.deps.now();
    const scope = s.t.roles.join(' ');
    // The source's own Token Valid is its own transport's to decide: a sharer records only itself.
    for (const server of servers.slice(0, 1)) {
      const row = await findToken(this.deps.db, server.id);
      if (row && row.status === s.status && row.statusReason === s.reason && row.scope === scope && row.tenantId === s.t.tenantId && row.account === server.username) continue;
      const write = { status: s.status, statusReason: s.reason, account: server.username, tenantId: s.t.tenantId, scope, accessTokenSealed: null, refreshTokenSealed: null, accessTokenExpiresAt: s.t.expiresAt, connectedAt: row?.connectedAt ?? now.toISOString(), refreshedAt: now.toISOString() };
      // Concurrent first uses (other instances too) may both insert the row: the loser updates it instead.
      await replaceToken(this.deps.db, server.id, write, now).catch(() => replaceToken(this.deps.db, server.id, write, now));
    }
  }
}
