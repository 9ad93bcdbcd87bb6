import * as oauth from 'oauth4webapi';
import { z } from 'zod';
import { redirectUri } from '../config/config.ts';
import { diagnose } from '../diagnose/diagnose.ts';
import type { OAuthEvidence } from '../diagnose/evidence.ts';
import { MailroomError } from '../errors/errors.ts';
import type { OAuthApp, OAuthProvider, OAuthTokens } from './oauth-provider.ts';
import { clientAuth } from './client-auth.ts';
import { tokenEndpointFetch } from './token-endpoint.ts';

/**
 * Google's one scope for SMTP and IMAP (the "restricted" full mail scope; gmail.send does not cover
 * SMTP), plus openid email to learn who signed in.
 */
export const GMAIL_SCOPES = ['openid', 'email', 'https://mail.google.com/'] as const;

/** Google names the provider in evidence so the catalogue picks Google's entries (GMAIL_*). */
const PROVIDER = 'gmail';

/**
 * Apps in "Testing" publishing status get refresh tokens that die after 7 days, and Google says so
 * with refresh_token_expires_in (604799). Anything under this is worth a warning at connect time.
 */
const SHORT_LIVED_REFRESH_S = 30 * 86400;

type GoogleApp = OAuthApp & { tokenHost: string };

function authorizationServer(app: Pick<GoogleApp, 'authorityHost' | 'tokenHost'>, issuer?: string): oauth.AuthorizationServer {
  return {
    issuer: issuer ?? app.authorityHost,
    authorization_endpoint: `${app.authorityHost}/o/oauth2/v2/auth`,
    token_endpoint: `${app.tokenHost}/token`,
  };
}

const client = (app: OAuthApp): oauth.Client => ({ client_id: app.clientId });

/** Google's error JSON ({error, error_description}) or callback parameters → evidence. */
export function googleEvidence(stage: OAuthEvidence['stage'], body: Record<string, unknown>, httpStatus?: number): OAuthEvidence {
  const ev: OAuthEvidence = { kind: 'oauth', provider: PROVIDER, stage, error: typeof body.error === 'string' ? body.error : 'invalid_response', errorCodes: [] };
  if (typeof body.error_description === 'string') ev.errorDescription = body.error_description;
  if (httpStatus !== undefined) ev.httpStatus = httpStatus;
  return ev;
}

function providerError(ev: OAuthEvidence): MailroomError {
  const d = diagnose(ev);
  return new MailroomError('MR_OAUTH_PROVIDER_ERROR', d.cause, { fix: d.fix, evidence: { ...ev, diagnosis: d.code, guideStep: d.guideStep } });
}

function unverifiedIssuer(jwt: unknown): string | undefined {
  if (typeof jwt !== 'string') return undefined;
  try {
    const iss = (JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { iss?: unknown }).iss;
    return typeof iss === 'string' ? iss : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Google's id_tokens name the issuer as https://accounts.google.com or, in older answers, as the bare
 * host accounts.google.com; both mean the authority (OpenID Connect Core 3.1.3.7 allows either form
 * for Google per its discovery notes). The id_token comes straight from the token endpoint over TLS.
 */
async function asForResponse(app: GoogleApp, response: Response): Promise<oauth.AuthorizationServer> {
  if (!response.ok) return authorizationServer(app);
  const body = (await response.clone().json().catch(() => ({}))) as Record<string, unknown>;
  const iss = unverifiedIssuer(body.id_token);
  return authorizationServer(app, iss === new URL(app.authorityHost).host ? iss : undefined);
}

function toTokens(r: oauth.TokenEndpointResponse, now: Date): OAuthTokens {
  const expiresIn = typeof r.expires_in === 'number' && r.expires_in > 0 ? r.expires_in : 3600;
  const t: OAuthTokens = { accessToken: r.access_token, refreshToken: r.refresh_token, expiresAt: new Date(now.getTime() + expiresIn * 1000), scope: r.scope };
  if (typeof r.refresh_token_expires_in === 'number') t.refreshTokenExpiresInSeconds = r.refresh_token_expires_in;
  return t;
}

async function asProviderError<T>(stage: OAuthEvidence['stage'], app: GoogleApp, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof MailroomError) throw e;
    if (e instanceof oauth.ResponseBodyError) throw providerError(googleEvidence(stage, e.cause, e.status));
    if (e instanceof oauth.OperationProcessingError || e instanceof oauth.UnsupportedOperationError) {
      throw new MailroomError('MR_OAUTH_RESPONSE_INVALID', `Google's answer failed validation: ${e.message}.`, {
        fix: 'Connect again. If it repeats, check GOOGLE_AUTHORITY_HOST and GOOGLE_TOKEN_HOST.',
        evidence: { kind: 'oauth', provider: PROVIDER, stage, error: 'invalid_response', errorCodes: [], detail: e.message },
      });
    }
    if (e instanceof TypeError && (e as { cause?: unknown }).cause !== undefined) {
      const cause = (e as { cause: { code?: string; message?: string } }).cause;
      const code = cause.code ?? 'ENETWORK';
      throw new MailroomError('MR_OAUTH_UNREACHABLE', `Could not reach Google's sign-in service at ${app.tokenHost} (${code}).`, {
        fix: 'Check that this machine can open HTTPS connections to oauth2.googleapis.com and accounts.google.com (firewall, proxy, DNS); Mailroom retries by itself.',
        evidence: { kind: 'network', code, host: new URL(app.tokenHost).host, message: cause.message ?? e.message },
      });
    }
    throw e;
  }
}

const asGoogle = (app: OAuthApp) => app as GoogleApp;

export const googleFields = {
  clientId: z
    .string({ error: 'Paste the Client ID of the Google OAuth client (APIs & Services › Credentials)' })
    .trim()
    .regex(/^[0-9]{6,30}-[0-9a-z]{8,64}\.apps\.googleusercontent\.com$/, { error: 'Paste the Client ID from Google Cloud › APIs & Services › Credentials: it ends in .apps.googleusercontent.com' }),
  clientSecret: z
    .string({ error: 'Paste the Client secret of the Google OAuth client' })
    .trim()
    .min(1, { error: 'Paste the Client secret of the Google OAuth client' })
    .max(1024, { error: 'The client secret is too long' }),
};

export const googleProvider: OAuthProvider = {
  id: 'gmail',
  fields: googleFields,
  hosts: { smtp: { host: 'smtp.gmail.com', port: 587, security: 'starttls' }, imap: { host: 'imap.gmail.com', port: 993, security: 'tls' } },
  accountName: 'Gmail',
  tenants: false,
  secretHelp: 'Paste the Client secret of the OAuth client (Google Cloud console › APIs & Services › Credentials › your Web application client) into Client Secret and save.',
  formHelp: {
    redirectUri: 'Add this URL under Authorized redirect URIs of the OAuth client (Google Cloud console → APIs & Services → Credentials → your Web application client).',
    clientId: 'Client ID of the Google OAuth client; it ends in .apps.googleusercontent.com.',
    clientIdPlaceholder: '123456789012-abc123.apps.googleusercontent.com',
    clientSecret: 'Client secret of the same OAuth client (Credentials → your client → Client secrets).',
    username: 'The Gmail or Google Workspace address to send from, e.g. sales@example.com.',
  },
  noRefreshTokenFix: 'Google returns a refresh token only with access_type=offline and prompt=consent, which Mailroom sends: remove Mailroom from https://myaccount.google.com/permissions for this account, then click Connect your Gmail account again.',
  scopes: () => GMAIL_SCOPES,
  app: (server, config, credential): GoogleApp => ({
    scopes: GMAIL_SCOPES,
    authorityHost: config.google.authorityHost,
    tokenHost: config.google.tokenHost,
    tenant: '',
    clientId: server.clientId,
    credential,
    redirectUri: redirectUri(config, 'gmail'),
  }),
  buildAuthorizeUrl(app, p) {
    const url = new URL(authorizationServer(asGoogle(app as OAuthApp)).authorization_endpoint!);
    url.search = new URLSearchParams({
      client_id: app.clientId,
      response_type: 'code',
      redirect_uri: app.redirectUri,
      scope: app.scopes.join(' '),
      state: p.state,
      nonce: p.nonce,
      code_challenge: p.codeChallenge,
      code_challenge_method: 'S256',
      // Google issues a refresh token only for offline access, and again only when consent is shown.
      access_type: 'offline',
      prompt: 'consent',
      login_hint: p.loginHint,
    }).toString();
    return url.href;
  },
  async exchangeCode(app, callback, p) {
    const g = asGoogle(app);
    return asProviderError('token', g, async () => {
      const params = oauth.validateAuthResponse(authorizationServer(g), client(g), callback, oauth.skipStateCheck);
      const response = await oauth.authorizationCodeGrantRequest(authorizationServer(g), client(g), clientAuth(g.credential), params, g.redirectUri, p.codeVerifier, {
        [oauth.customFetch]: tokenEndpointFetch({ stage: 'token', provider: PROVIDER, scopes: g.scopes }),
      });
      const result = await oauth.processAuthorizationCodeResponse(await asForResponse(g, response), client(g), response, { expectedNonce: p.nonce, requireIdToken: true });
      const id = oauth.getValidatedIdTokenClaims(result)!;
      const email = typeof id.email === 'string' && id.email.length > 0 ? id.email.toLowerCase() : undefined;
      return { tokens: toTokens(result, p.now), identity: { account: email, tenantId: null } };
    });
  },
  async refreshTokens(app, refreshToken, now) {
    const g = asGoogle(app);
    return asProviderError('refresh', g, async () => {
      const response = await oauth.refreshTokenGrantRequest(authorizationServer(g), client(g), clientAuth(g.credential), refreshToken, {
        [oauth.customFetch]: tokenEndpointFetch({ stage: 'refresh', provider: PROVIDER, scopes: g.scopes }),
      });
      return toTokens(await oauth.processRefreshTokenResponse(await asForResponse(g, response), client(g), response), now);
    });
  },
  authorizeErrorEvidence(params) {
    return params.get('error') ? googleEvidence('authorize', Object.fromEntries(params)) : undefined;
  },
  // "Token has been expired or revoked." (revoked, password changed, 7-day Testing expiry) and a
  // Workspace policy that now blocks the app: only a new sign-in helps.
  grantIsDead: (ev) => ev.error === 'invalid_grant' || ev.error === 'admin_policy_enforced',
  connectWarning(tokens) {
    const s = tokens.refreshTokenExpiresInSeconds;
    if (s === undefined || s > SHORT_LIVED_REFRESH_S) return undefined;
    return { kind: 'oauth', provider: PROVIDER, stage: 'token', error: 'testing_publishing_status', errorCodes: [], errorDescription: `refresh_token_expires_in: ${s}` };
  },
};
