import * as oauth from 'oauth4webapi';
import { z } from 'zod';
import { MailroomError } from '../errors/errors.ts';
import { aadstsCodes, looksLikeGuid, type OAuthEvidence } from '../diagnose/evidence.ts';
import { diagnose } from '../diagnose/diagnose.ts';
import type { Config } from '../config/config.ts';
import { redirectUri } from '../config/config.ts';
import type { MailServerRecord } from '../storage/mail-server-store.ts';
import type { OAuthApp, OAuthProvider, OAuthTokens } from './oauth-provider.ts';
import { clientAuth, secretOf, withClientCredential } from './client-auth.ts';
import { requestEvidence, tokenEndpointFetch } from './token-endpoint.ts';

/** Delegated scopes for SMTP and IMAP on one Outlook token (one resource per token request). */
export const OUTLOOK_SCOPES = [
  'openid',
  'profile',
  'email',
  'offline_access',
  'https://outlook.office.com/SMTP.Send',
  'https://outlook.office.com/IMAP.AccessAsUser.All',
] as const;

/**
 * Microsoft Graph's delegated permissions, on the Graph resource (one resource per token request:
 * Graph needs a token of its own). Sending needs Mail.Send, and Mail.ReadWrite for messages over 4 MB
 * (they are built as a draft with upload sessions); receiving needs Mail.ReadWrite (read, mark as
 * read, move); User.Read lets Test Connection look the mailbox up.
 */
export function graphScopes(graphResource: string, direction: 'outgoing' | 'incoming'): string[] {
  const mail = direction === 'incoming' ? ['Mail.ReadWrite'] : ['Mail.Send', 'Mail.ReadWrite'];
  return ['openid', 'profile', 'email', 'offline_access', ...[...mail, 'User.Read'].map((p) => `${graphResource}/${p}`)];
}

/** The scopes are the Outlook (SMTP/IMAP) or the Graph permissions. */
export type OutlookApp = OAuthApp;

/** Microsoft rotates the refresh token on every use; it is absent only if offline_access was not granted. */
export type OutlookTokens = OAuthTokens;

export interface OutlookIdentity {
  /** preferred_username (the UPN, usually the mailbox address), else email. */
  account: string | undefined;
  tenantId: string;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function authorizationServer(app: Pick<OutlookApp, 'authorityHost' | 'tenant'>, issuer?: string): oauth.AuthorizationServer {
  const base = `${app.authorityHost}/${encodeURIComponent(app.tenant)}`;
  return {
    // Multi-tenant metadata uses the literal template; the real issuer is per token (see tenantIssuer).
    issuer: issuer ?? `${app.authorityHost}/{tenantid}/v2.0`,
    authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
    token_endpoint: `${base}/oauth2/v2.0/token`,
  };
}

const client = (app: OutlookApp): oauth.Client => ({ client_id: app.clientId });

export function buildAuthorizeUrl(
  app: Omit<OutlookApp, 'credential'>,
  p: { state: string; nonce: string; codeChallenge: string; loginHint: string },
): string {
  const url = new URL(authorizationServer(app).authorization_endpoint!);
  url.search = new URLSearchParams({
    client_id: app.clientId,
    response_type: 'code',
    redirect_uri: app.redirectUri,
    response_mode: 'query',
    scope: app.scopes.join(' '),
    state: p.state,
    nonce: p.nonce,
    code_challenge: p.codeChallenge,
    code_challenge_method: 'S256',
    ...(p.loginHint && { login_hint: p.loginHint }),
    prompt: 'select_account',
  }).toString();
  return url.href;
}

/** Microsoft's error JSON → evidence, whatever the HTTP layer wrapped it in. */
export function oauthEvidence(stage: OAuthEvidence['stage'], body: Record<string, unknown>, httpStatus?: number): OAuthEvidence {
  const description = typeof body.error_description === 'string' ? body.error_description : undefined;
  const ev: OAuthEvidence = {
    kind: 'oauth',
    stage,
    error: typeof body.error === 'string' ? body.error : 'invalid_response',
    errorCodes: aadstsCodes(body.error_codes, description),
  };
  if (description !== undefined) ev.errorDescription = description;
  if (httpStatus !== undefined) ev.httpStatus = httpStatus;
  const trace = body.trace_id ?? /Trace ID: ([\w-]+)/.exec(description ?? '')?.[1];
  const corr = body.correlation_id ?? /Correlation ID: ([\w-]+)/.exec(description ?? '')?.[1];
  if (typeof trace === 'string') ev.traceId = trace;
  if (typeof corr === 'string') ev.correlationId = corr;
  return ev;
}

export function providerError(ev: OAuthEvidence): MailroomError {
  const d = diagnose(ev);
  return new MailroomError('MR_OAUTH_PROVIDER_ERROR', d.cause, { fix: d.fix, evidence: { ...ev, diagnosis: d.code, guideStep: d.guideStep } });
}

function networkError(e: unknown, app: OutlookApp): MailroomError {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? (e as { code?: string }).code ?? 'ENETWORK';
  const message = cause?.message ?? (e as Error).message;
  return new MailroomError('MR_OAUTH_UNREACHABLE', `Could not reach Microsoft's sign-in service at ${app.authorityHost} (${code}).`, {
    fix: 'Check that this machine can open HTTPS connections to the sign-in host (firewall, proxy, DNS); Mailroom retries by itself.',
    evidence: { kind: 'network', code, host: new URL(app.authorityHost).host, message },
  });
}

/**
 * Microsoft multi-tenant rule: on common/organizations/consumers the id_token's issuer is
 * `{authority}/{tid}/v2.0` with the user's own tenant; we accept exactly that, and a GUID tenant on
 * the form must be the tenant that signed in.
 */
export function tenantIssuer(app: Pick<OutlookApp, 'authorityHost' | 'tenant'>, tid: unknown): string {
  if (typeof tid !== 'string' || !GUID.test(tid)) {
    throw new MailroomError('MR_OAUTH_RESPONSE_INVALID', 'The sign-in answer has no valid tenant id (tid).', {
      fix: 'Check that MICROSOFT_AUTHORITY_HOST points at the Microsoft identity platform, then connect again.',
      evidence: { kind: 'oauth', stage: 'id_token', error: 'invalid_tid', errorCodes: [] },
    });
  }
  if (GUID.test(app.tenant) && app.tenant.toLowerCase() !== tid.toLowerCase()) {
    throw new MailroomError('MR_OAUTH_RESPONSE_INVALID', `The account signed in to tenant ${tid}, but Tenant on this form is ${app.tenant}.`, {
      fix: 'Sign in with an account of the configured tenant, or correct Tenant.',
      evidence: { kind: 'oauth', stage: 'id_token', error: 'tenant_mismatch', errorCodes: [] },
    });
  }
  return `${app.authorityHost}/${tid}/v2.0`;
}

function unverifiedPayload(jwt: unknown): Record<string, unknown> {
  if (typeof jwt !== 'string') return {};
  try {
    return JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/**
 * The issuer to check depends on the tenant the user signed in to: read tid from the id_token first,
 * then let oauth4webapi validate iss, aud, exp, iat and nonce against `{authority}/{tid}/v2.0`.
 * The id_token comes straight from the token endpoint over TLS, so its signature need not be checked
 * (OpenID Connect Core 3.1.3.7).
 */
async function asForResponse(app: OutlookApp, response: Response): Promise<oauth.AuthorizationServer> {
  if (!response.ok) return authorizationServer(app);
  const body = (await response.clone().json().catch(() => ({}))) as Record<string, unknown>;
  if (typeof body.id_token !== 'string') return authorizationServer(app);
  return authorizationServer(app, tenantIssuer(app, unverifiedPayload(body.id_token).tid));
}

function toTokens(r: oauth.TokenEndpointResponse, now: Date): OutlookTokens {
  const expiresIn = typeof r.expires_in === 'number' && r.expires_in > 0 ? r.expires_in : 3600;
  return { accessToken: r.access_token, refreshToken: r.refresh_token, expiresAt: new Date(now.getTime() + expiresIn * 1000), scope: r.scope };
}

async function asProviderError<T>(stage: OAuthEvidence['stage'], app: OutlookApp, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof MailroomError) throw e;
    if (e instanceof oauth.ResponseBodyError) {
      // What was asked goes with the answer: a consent missing for Graph names Graph's permissions.
      const ev = { ...oauthEvidence(stage, e.cause, e.status), ...requestEvidence({ scopes: app.scopes }) };
      // A GUID-shaped secret rejected as invalid is almost always the Secret ID pasted for the Value.
      const secret = secretOf(app.credential);
      if (ev.error === 'invalid_client' && secret !== undefined && looksLikeGuid(secret)) ev.secretLooksLikeGuid = true;
      // A refused assertion names the certificate it was signed with: the one to upload in Azure.
      if (app.credential.kind === 'certificate') ev.certificateThumbprint = app.credential.current.thumbprint;
      throw providerError(ev);
    }
    if (e instanceof oauth.OperationProcessingError || e instanceof oauth.UnsupportedOperationError) {
      throw new MailroomError('MR_OAUTH_RESPONSE_INVALID', `Microsoft's answer failed validation: ${e.message}.`, {
        fix: 'Connect again. If it repeats, check Tenant and MICROSOFT_AUTHORITY_HOST.',
        evidence: { kind: 'oauth', stage, error: 'invalid_response', errorCodes: [], detail: e.message },
      });
    }
    // fetch() fails with "fetch failed" and the socket/TLS error as its cause; anything else is a bug.
    if (e instanceof TypeError && (e as { cause?: unknown }).cause !== undefined) throw networkError(e, app);
    throw e;
  }
}

/** Exchanges the authorization code (client secret or certificate assertion) and validates the id_token. */
export async function exchangeCode(
  app: OutlookApp,
  callback: URLSearchParams,
  p: { codeVerifier: string; nonce: string; now: Date },
): Promise<{ tokens: OutlookTokens; identity: OutlookIdentity }> {
  return asProviderError('token', app, async () => {
    // State was already checked (hashed, single use) by the connect flow.
    const params = oauth.validateAuthResponse(authorizationServer(app), client(app), callback, oauth.skipStateCheck);
    const response = await oauth.authorizationCodeGrantRequest(
      authorizationServer(app),
      client(app),
      clientAuth(app.credential),
      params,
      app.redirectUri,
      p.codeVerifier,
      { [oauth.customFetch]: tokenEndpointFetch({ stage: 'token', scopes: app.scopes }) },
    );
    const as = await asForResponse(app, response);
    const result = await oauth.processAuthorizationCodeResponse(as, client(app), response, { expectedNonce: p.nonce, requireIdToken: true });
    const id = oauth.getValidatedIdTokenClaims(result)!;
    const account = [id.preferred_username, id.email, id.upn].find((v): v is string => typeof v === 'string' && v.length > 0);
    return { tokens: toTokens(result, p.now), identity: { account: account?.toLowerCase(), tenantId: String(id.tid) } };
  });
}

/**
 * Redeems the refresh token. With a rolled certificate pending, the request is made with it first
 * and, if refused, with the current one (client authentication fails before the grant is looked at,
 * so the refresh token is not spent); tokens say which certificate proved itself.
 */
export async function refreshTokens(app: OutlookApp, refreshToken: string, now: Date): Promise<OutlookTokens> {
  const outcome = await withClientCredential(app.credential, (auth) =>
    asProviderError('refresh', app, async () => {
      const response = await oauth.refreshTokenGrantRequest(authorizationServer(app), client(app), auth, refreshToken, {
        additionalParameters: { scope: app.scopes.join(' ') },
        [oauth.customFetch]: tokenEndpointFetch({ stage: 'refresh', scopes: app.scopes }),
      });
      const result = await oauth.processRefreshTokenResponse(await asForResponse(app, response), client(app), response);
      return toTokens(result, now);
    }),
  );
  return {
    ...outcome.value,
    ...(outcome.proven && { provenCertificate: outcome.proven.thumbprintSha256 }),
    ...(outcome.pendingFailed !== undefined && { pendingCertificateFailure: outcome.pendingFailed }),
  };
}

/**
 * Exchange Online's resource for app-only SMTP, IMAP and POP ("Authenticate an IMAP, POP or SMTP
 * connection using OAuth": scope https://outlook.office365.com/.default), in the cloud of the
 * configured sign-in host: each national cloud has its own Exchange host.
 */
export function outlookAppResource(authorityHost: string): string {
  const host = new URL(authorityHost).hostname.toLowerCase();
  if (host === 'login.microsoftonline.us') return 'https://outlook.office365.us';
  if (host === 'login.partner.microsoftonline.cn') return 'https://partner.outlook.cn';
  return 'https://outlook.office365.com';
}

/** The one `.default` scope of an application token: Exchange's resource for SMTP/IMAP, Graph's for Graph. */
export function applicationScope(server: Pick<MailServerRecord, 'transport'>, config: Pick<Config, 'microsoftAuthorityHost' | 'microsoftGraph'>): string {
  return `${server.transport === 'graph' ? config.microsoftGraph.resource : outlookAppResource(config.microsoftAuthorityHost)}/.default`;
}

/** The application permission (the token's `roles`) a transport needs, as Microsoft names it. */
export function requiredRole(server: Pick<MailServerRecord, 'transport' | 'direction'>): string {
  if (server.transport === 'graph') return server.direction === 'incoming' ? 'Mail.ReadWrite' : 'Mail.Send';
  return server.transport === 'imap' || server.direction === 'incoming' ? 'IMAP.AccessAsApp' : 'SMTP.SendAsApp';
}

/** What Mailroom reads from an app-only access token. */
export interface ApplicationToken {
  accessToken: string;
  expiresAt: Date;
  /** Application permissions granted by admin consent (the `roles` claim). */
  roles: string[];
  tenantId: string | null;
  appId: string | null;
  /** The service principal's object id in the tenant (Enterprise application), for New-ServicePrincipal. */
  objectId: string | null;
}

/**
 * The claims of an access token issued for Exchange or Graph. The token is theirs, not Mailroom's:
 * Mailroom cannot and does not verify its signature; it reads what was granted to explain failures
 * before the first send (roles), and the ids that fill the PowerShell fixes (tid, appid, oid).
 */
export function applicationClaims(accessToken: string): Pick<ApplicationToken, 'roles' | 'tenantId' | 'appId' | 'objectId'> {
  const p = unverifiedPayload(accessToken);
  const text = (v: unknown) => (typeof v === 'string' && v.length > 0 && v.length <= 200 ? v : null);
  const roles = Array.isArray(p.roles) ? p.roles.filter((r): r is string => typeof r === 'string' && r.length <= 200).slice(0, 100) : [];
  return { roles, tenantId: text(p.tid), appId: text(p.appid) ?? text(p.azp), objectId: text(p.oid) };
}

/** Microsoft refuses common/organizations/consumers for client credentials: the app must act in one tenant. */
export const TENANT_ALIASES: ReadonlySet<string> = new Set(['common', 'organizations', 'consumers']);

/**
 * The client-credentials grant (RFC 6749 4.4) as Microsoft's v2.0 endpoint takes it: one `.default`
 * scope, the app authenticated by its Client Credential (secret, or certificate with a pending one of a
 * roll tried first: the request is repeatable, so a certificate not yet uploaded never fails it).
 */
export async function clientCredentialsToken(app: OutlookApp, now: Date): Promise<ApplicationToken & { provenCertificate?: string; pendingCertificateFailure?: unknown }> {
  const outcome = await withClientCredential(app.credential, (auth) =>
    asProviderError('token', app, async () => {
      const response = await oauth.clientCredentialsGrantRequest(authorizationServer(app), client(app), auth, { scope: app.scopes.join(' ') }, {
        [oauth.customFetch]: tokenEndpointFetch({ stage: 'token', scopes: app.scopes }),
      });
      const result = await oauth.processClientCredentialsResponse(authorizationServer(app), client(app), response);
      const expiresIn = typeof result.expires_in === 'number' && result.expires_in > 0 ? result.expires_in : 3600;
      return { accessToken: result.access_token, expiresAt: new Date(now.getTime() + expiresIn * 1000), ...applicationClaims(result.access_token) };
    }),
  );
  return {
    ...outcome.value,
    ...(outcome.proven && { provenCertificate: outcome.proven.thumbprintSha256 }),
    ...(outcome.pendingFailed !== undefined && { pendingCertificateFailure: outcome.pendingFailed }),
  };
}

/** The callback's `error` parameters (consent declined, AADSTS errors) → evidence. */
export function authorizeErrorEvidence(params: URLSearchParams): OAuthEvidence | undefined {
  const error = params.get('error');
  if (!error) return undefined;
  return oauthEvidence('authorize', Object.fromEntries(params));
}

/**
 * Microsoft's admin consent endpoint, for tenants where users may not consent themselves. A tenant
 * administrator opens it once; Microsoft returns to the redirect URL with admin_consent=True.
 */
export function adminConsentUrl(authorityHost: string, tenant: string, clientId: string, redirect: string, serverId: string, scopes: readonly string[] = OUTLOOK_SCOPES): string {
  // "common" cannot take admin consent; "organizations" lets the admin's own tenant stand in.
  const t = ['common', 'consumers'].includes(tenant.toLowerCase()) ? 'organizations' : tenant;
  const url = new URL(`${authorityHost}/${encodeURIComponent(t)}/v2.0/adminconsent`);
  url.search = new URLSearchParams({
    client_id: clientId,
    scope: scopes.filter((s) => s.startsWith('https://')).join(' '),
    redirect_uri: redirect,
    state: `admin-consent.${serverId}`,
  }).toString();
  return url.href;
}

/**
 * The admin consent page for application access: the tenant's administrator grants the app's
 * application permissions (roles) as configured on the app registration (Microsoft's
 * `{authority}/{tenant}/adminconsent?client_id=…&redirect_uri=…`, no scope: application permissions
 * are granted as listed in Azure). Microsoft returns to the redirect URL with admin_consent=True.
 */
export function applicationConsentUrl(app: Pick<OAuthApp, 'authorityHost' | 'tenant' | 'clientId' | 'redirectUri'>, serverId: string): string {
  const url = new URL(`${app.authorityHost}/${encodeURIComponent(app.tenant)}/adminconsent`);
  url.search = new URLSearchParams({ client_id: app.clientId, redirect_uri: app.redirectUri, state: `admin-consent.${serverId}` }).toString();
  return url.href;
}

/** Microsoft's SMTP/IMAP permissions, or Graph's for a server that uses Graph. */
export function outlookScopes(server: Pick<MailServerRecord, 'transport' | 'direction'>, config: Pick<Config, 'microsoftGraph'>): readonly string[] {
  return server.transport === 'graph' ? graphScopes(config.microsoftGraph.resource, server.direction) : OUTLOOK_SCOPES;
}


export const outlookFields = {
  clientId: z
    .string({ error: 'Paste the Application (client) ID from the app\'s Overview page in Azure' })
    .trim()
    .regex(GUID, { error: 'Paste the Application (client) ID from Azure: a GUID like 1b2c3d4e-0000-1111-2222-333344445555' }),
  clientSecret: z
    .string({ error: 'Paste the client secret Value from Azure > Certificates & secrets' })
    .trim()
    .min(1, { error: 'Paste the client secret Value from Azure > Certificates & secrets' })
    .max(1024, { error: 'The client secret is too long' })
    .refine((v) => !GUID.test(v), {
      error: 'This looks like the Secret ID. Paste the secret\'s Value instead (the column next to it in Azure > Certificates & secrets)',
    }),
};

export const outlookProvider: OAuthProvider = {
  id: 'outlook',
  // The identity platform has no endpoint that revokes one refresh token: only all of a user's
  // sessions (Graph revokeSignInSessions), which would sign the person out everywhere.
  revokeHelp:
    'Microsoft has no way to revoke one grant: Mailroom forgot the tokens, and the grant ends after 90 days unused. To end it now, the user removes the app at https://myapps.microsoft.com, or an administrator removes the user\'s consent in Microsoft Entra admin center › Enterprise applications › the app › Permissions.',
  fields: outlookFields,
  hosts: { smtp: { host: 'smtp.office365.com', port: 587, security: 'starttls' }, imap: { host: 'outlook.office365.com', port: 993, security: 'tls' } },
  accountName: 'Outlook',
  tenants: true,
  secretHelp: 'Paste the client secret Value from Azure > Certificates & secrets into Client Secret and save.',
  formHelp: {
    redirectUri: 'Add this URL as a Web redirect URI of the app registration (Microsoft Entra admin center → App registrations → Authentication).',
    clientId: 'Application (client) ID of the app registration.',
    clientIdPlaceholder: '00000000-0000-0000-0000-000000000000',
    clientSecret: 'The secret’s Value (not its Secret ID), from Certificates & secrets.',
    username: 'The Microsoft 365 mailbox to send from, e.g. sales@contoso.com.',
  },
  formOptions: {
    secretExpiryHelp: 'The expiry date shown in Certificates & secrets; a warning appears 30 days before.',
    sharedMailbox: true,
    applicationAccess: true,
    sendingLimitHints: {
      maxConnections: 'Exchange Online: 3.',
      messagesPerMinute: 'Exchange Online: 30.',
      recipientsPerDay: 'Exchange Online: 10,000.',
      recipientsPerMessage: 'Exchange Online: 500.',
    },
  },
  noRefreshTokenFix: 'Add the offline_access permission in Azure > API permissions, then connect again.',
  scopes: outlookScopes,
  certificates: true,
  app: (server, config, credential) => ({
    scopes: outlookScopes(server, config),
    authorityHost: config.microsoftAuthorityHost,
    tenant: server.tenant,
    clientId: server.clientId,
    credential,
    redirectUri: redirectUri(config, 'outlook'),
  }),
  buildAuthorizeUrl,
  exchangeCode,
  refreshTokens,
  clientCredentials: clientCredentialsToken,
  applicationScope,
  requiredRole,
  authorizeErrorEvidence,
  adminConsentUrl: (app, serverId) => adminConsentUrl(app.authorityHost, app.tenant, app.clientId, app.redirectUri, serverId, app.scopes),
  grantIsDead: (ev) => ev.error === 'invalid_grant' || ev.error === 'interaction_required' || ev.error === 'consent_required',
};
