import { createHash, randomBytes } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import type { Config } from '../config/config.ts';
import { diagnose } from '../diagnose/diagnose.ts';
import type { Evidence } from '../diagnose/evidence.ts';
import { isMailroomError, MailroomError } from '../errors/errors.ts';
import type { Sealer } from '../secrets/sealer.ts';
import type { Db } from '../storage/database.ts';
import { findMailServer, replaceToken, setMailServerError, type StoredError } from '../storage/mail-server-store.ts';
import { consumeOAuthState, deleteStaleOAuthStates, insertOAuthState } from '../storage/oauth-state-store.ts';
import { connectLabel, type OAuthProvider } from './oauth-provider.ts';
import { oauthProviderOf, requireOAuthProvider } from './oauth-providers.ts';
import { appFor, registrationOf, tokenAad } from './token-manager.ts';
import { requestEvidence } from './token-endpoint.ts';

export const STATE_TTL_MS = 10 * 60_000;

const hashState = (state: string) => createHash('sha256').update(state).digest('base64url');

export type CallbackOutcome =
  | { kind: 'connected'; mailServerId: string; direction: 'outgoing' | 'incoming'; account: string | undefined }
  | { kind: 'failed'; mailServerId: string; direction: 'outgoing' | 'incoming'; error: StoredError }
  | { kind: 'admin_consent'; mailServerId: string; direction: 'outgoing' | 'incoming' }
  /** No server to return to: unknown state or another admin's. */
  | { kind: 'rejected'; message: string; fix: string };

export class ConnectFlow {
  constructor(
    private readonly deps: { db: Db; sealer: Sealer; config: Config; now?: () => Date },
  ) {}

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /** Starts "Connect your … account": PKCE S256, a single-use state bound to server and admin, nonce. */
  async start(mailServerId: string, adminId: string): Promise<{ authorizeUrl: string }> {
    const { db, sealer, config } = this.deps;
    const server = await findMailServer(db, mailServerId);
    if (!server) throw new MailroomError('MR_NOT_FOUND', 'This mail server does not exist.');
    const provider = requireOAuthProvider(server);
    const app = appFor(server, config, sealer, await registrationOf(db, server)); // fails early, naming the missing client secret
    const state = randomBytes(32).toString('base64url');
    const nonce = randomBytes(16).toString('base64url');
    const codeVerifier = oauth.generateRandomCodeVerifier();
    const now = this.now();
    await deleteStaleOAuthStates(db, new Date(now.getTime() - 24 * 3600_000));
    await insertOAuthState(
      db,
      {
        stateHash: hashState(state),
        mailServerId,
        adminId,
        codeVerifierSealed: sealer.seal(codeVerifier, `oauth_state:${mailServerId}`),
        nonce,
        expiresAt: new Date(now.getTime() + STATE_TTL_MS),
      },
      now,
    );
    const authorizeUrl = provider.buildAuthorizeUrl(
      { scopes: app.scopes, authorityHost: app.authorityHost, tenant: app.tenant, clientId: app.clientId, redirectUri: app.redirectUri },
      { state, nonce, codeChallenge: await oauth.calculatePKCECodeChallenge(codeVerifier), loginHint: server.username },
    );
    return { authorizeUrl };
  }

  /**
   * Handles `/oauth2/{provider}/callback` for the admin whose session made the request. The state
   * names the server, and the server its provider: a callback on another provider's path is refused.
   */
  async callback(params: URLSearchParams, adminId: string, via: OAuthProvider): Promise<CallbackOutcome> {
    const { db, sealer, config } = this.deps;
    const again = connectLabel(via);
    const now = this.now();
    const state = params.get('state');
    // The admin consent page returns here too: no code, no tokens; only the outcome to show.
    const consentFor = /^admin-consent\.([\w-]+)$/.exec(state ?? '')?.[1];
    if (consentFor && (params.has('admin_consent') || params.has('error'))) {
      const server = await findMailServer(db, consentFor);
      if (!server) return { kind: 'rejected', message: 'The mail server no longer exists.', fix: 'Create it again.' };
      const authError = via.authorizeErrorEvidence(params);
      if (authError) return this.fail(server.id, this.fromEvidence({ ...authError, ...requestEvidence({ scopes: via.scopes(server, config) }) }));
      await setMailServerError(db, server.id, null);
      return { kind: 'admin_consent', mailServerId: server.id, direction: server.direction };
    }
    if (!state) {
      return { kind: 'rejected', message: 'The sign-in answer has no state parameter.', fix: `Start again from the mail server form with ${again}.` };
    }
    const consumed = await consumeOAuthState(db, hashState(state), now);
    if (!consumed.ok) {
      if (consumed.reason === 'unknown' || consumed.adminId !== adminId) {
        return {
          kind: 'rejected',
          message: 'This sign-in answer does not belong to a connection you started.',
          fix: `Open the mail server form and click ${again}.`,
        };
      }
      const message =
        consumed.reason === 'expired'
          ? 'The sign-in took longer than 10 minutes, so Mailroom no longer accepts its answer.'
          : 'This sign-in answer was already used (the page was reloaded or opened twice).';
      return this.fail(consumed.mailServerId, { code: `OAUTH_STATE_${consumed.reason.toUpperCase()}`, message, fix: `Click ${again} again.` });
    }
    const { mailServerId } = consumed.state;
    if (consumed.state.adminId !== adminId) {
      return { kind: 'rejected', message: 'This sign-in was started by another admin.', fix: `Click ${again} yourself.` };
    }
    const server = await findMailServer(db, mailServerId);
    if (!server) return { kind: 'rejected', message: 'The mail server was deleted during sign-in.', fix: 'Create it again.' };
    const provider = oauthProviderOf(server);
    if (provider !== via) {
      return this.fail(mailServerId, {
        code: 'OAUTH_PROVIDER_MISMATCH',
        message: `This sign-in answer came to the ${via.accountName} redirect URL, but the mail server uses ${provider ? provider.accountName : 'no OAuth'} sign-in.`,
        fix: provider ? `Click ${connectLabel(provider)} again.` : 'Check Authenticate Using on the form.',
      });
    }

    const authError = provider.authorizeErrorEvidence(params);
    // What was asked goes with the refusal: a consent missing for Graph names Graph's permissions.
    if (authError) return this.fail(mailServerId, this.fromEvidence({ ...authError, ...requestEvidence({ scopes: provider.scopes(server, config) }) }));

    try {
      const app = appFor(server, config, sealer, await registrationOf(db, server));
      const codeVerifier = sealer.open(consumed.state.codeVerifierSealed, `oauth_state:${mailServerId}`);
      const { tokens, identity } = await provider.exchangeCode(app, params, { codeVerifier, nonce: consumed.state.nonce, now });
      if (!tokens.refreshToken) {
        return this.fail(mailServerId, {
          code: 'OAUTH_NO_REFRESH_TOKEN',
          message: `${provider.accountName} did not return a refresh token, so the connection would stop working within the hour.`,
          fix: provider.noRefreshTokenFix,
        });
      }
      await replaceToken(
        db,
        mailServerId,
        {
          status: 'valid',
          statusReason: null,
          account: identity.account ?? null,
          tenantId: identity.tenantId,
          scope: tokens.scope ?? null,
          accessTokenSealed: sealer.seal(tokens.accessToken, tokenAad(mailServerId, 'access_token')),
          accessTokenExpiresAt: tokens.expiresAt.toISOString(),
          refreshTokenSealed: sealer.seal(tokens.refreshToken, tokenAad(mailServerId, 'refresh_token')),
          connectedAt: now.toISOString(),
          refreshedAt: now.toISOString(),
        },
        now,
      );
      // The token is stored either way; a different account is worth saying at once, since sending
      // as Username with another account's token fails unless it has Send As rights.
      const mismatch = identity.account && identity.account !== server.username.toLowerCase() && !server.allowAccountMismatch;
      // A grant that works today but will not for long (Google's 7-day "Testing" tokens) is said at once.
      const warning = provider.connectWarning?.(tokens);
      const notice = mismatch
        ? this.fromEvidence({ kind: 'account', expected: server.username, actual: identity.account! })
        : warning
          ? {
              ...this.fromEvidence(warning),
              severity: 'notice' as const,
              ...(tokens.refreshTokenExpiresInSeconds !== undefined && { signInBy: new Date(now.getTime() + tokens.refreshTokenExpiresInSeconds * 1000).toISOString() }),
            }
          : undefined;
      await setMailServerError(db, mailServerId, notice ? { ...notice, at: now.toISOString() } : null);
      return { kind: 'connected', mailServerId, direction: server.direction, account: identity.account };
    } catch (e) {
      if (!isMailroomError(e)) throw e;
      const ev = e.evidence as Evidence | undefined;
      // The provider's error answer, or an answer refused for its size or time (its evidence names the origin).
      if (ev && 'kind' in ev && ev.kind === 'oauth' && ev.errorCodes !== undefined && (e.code === 'MR_OAUTH_PROVIDER_ERROR' || ev.origin !== undefined)) {
        return this.fail(mailServerId, this.fromEvidence(ev));
      }
      return this.fail(mailServerId, {
        code: e.code,
        message: e.message,
        ...(e.fix !== undefined && { fix: e.fix }),
        ...(e.evidence !== undefined && { evidence: e.evidence }),
      });
    }
  }

  private fromEvidence(ev: Evidence): Omit<StoredError, 'at'> {
    const d = diagnose(ev);
    return { code: d.code, message: d.cause, fix: d.fix, evidence: { ...ev, guideStep: d.guideStep } };
  }

  private async fail(mailServerId: string, error: Omit<StoredError, 'at'>): Promise<CallbackOutcome> {
    const stored = { ...error, at: this.now().toISOString() };
    await setMailServerError(this.deps.db, mailServerId, stored);
    const direction = (await findMailServer(this.deps.db, mailServerId))?.direction ?? 'outgoing';
    return { kind: 'failed', mailServerId, direction, error: stored };
  }
}
