// A Microsoft-identity-platform-shaped authorization server (oidc-provider 9) for the end-to-end tests.
//
// Browser pages (oidc-provider devInteractions, URLs under /{tenant}/interaction/{uid}):
//   login page   (<h1>Sign-in</h1>):   <form> with hidden input name="prompt" value="login",
//                                       text input name="login" (any login; it becomes the account, e.g.
//                                       alice@example.test), password input name="password" (anything),
//                                       submit button "Sign-in".
//   consent page (<h1>Authorize</h1>): <form> with hidden input name="prompt" value="consent",
//                                       submit button "Continue".
//   both pages:  link "[ Cancel ]" -> redirect to the client with error=access_denied (AADSTS65004).
// The login page shows when the browser has no session here (first sign-in, prompt=login/select_account, or
// after revokeGrants); the consent page shows on every authorization request that asks for offline_access.
// signInAndConsent() below drives these pages with Playwright.
//
// Differences from Microsoft worth knowing: access tokens are opaque and short (43 chars); `sub` is the login
// as typed rather than a pairwise id (use `oid`); a refresh token that was already rotated away is treated as
// replayed and revokes the whole grant (Microsoft does not enforce rotation like that).
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, randomUUID, verify as cryptoVerify } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type {
  Adapter, AdapterPayload, ClientMetadata, Configuration, KoaContext, OidcError,
} from 'oidc-provider';
import type { Page } from 'playwright-core';
import { ClientAssertionVerifier } from './client-assertion.ts';

export const DEFAULT_TENANT_ID = '9188040d-6c67-4c5b-b112-36a304b66dad';
export const OUTLOOK_RESOURCE = 'https://outlook.office.com';
export const OUTLOOK_SCOPES = [`${OUTLOOK_RESOURCE}/SMTP.Send`, `${OUTLOOK_RESOURCE}/IMAP.AccessAsUser.All`] as const;
/** The scope string Mailroom sends to Microsoft. */
export const GRAPH_RESOURCE = 'https://graph.microsoft.com';
export const GRAPH_SCOPES = [`${GRAPH_RESOURCE}/Mail.Send`, `${GRAPH_RESOURCE}/Mail.ReadWrite`, `${GRAPH_RESOURCE}/User.Read`] as const;
/** Exchange Online's resource for app-only SMTP/IMAP (client credentials, scope `${it}/.default`). */
export const OUTLOOK_APP_RESOURCE = 'https://outlook.office365.com';
/** One resource per token request, named by the scope URLs, as at Microsoft. */
const resourceOfScope = (scope: unknown) => {
  const scopes = String(scope ?? '').split(' ');
  if (scopes.some((s) => s.startsWith(`${GRAPH_RESOURCE}/`))) return GRAPH_RESOURCE;
  if (scopes.some((s) => s.startsWith(`${OUTLOOK_APP_RESOURCE}/`))) return OUTLOOK_APP_RESOURCE;
  return OUTLOOK_RESOURCE;
};
export const MAILROOM_SCOPE = ['openid', 'profile', 'email', 'offline_access', ...OUTLOOK_SCOPES].join(' ');

export interface ClientRegistration {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
  /**
   * The application permissions configured on the app registration (Azure › API permissions), by
   * resource: what "Grant admin consent" on the admin-consent page grants.
   */
  applicationPermissions?: Record<string, string[]>;
}

export interface AuthServerOptions {
  tls: { cert: string; key: string };
  clients: ClientRegistration[];
  tenantId?: string;
  /** Tenant domains accepted in place of the tenant id in URLs. Default: ['example.test']. */
  domains?: string[];
  accessTokenTtlSeconds?: number;
}

export interface AccountClaims {
  tid: string;
  oid: string;
  name: string;
  preferred_username: string;
  email: string;
}

export interface AuthServer {
  /** `https://127.0.0.1:PORT`, the stand-in for `https://login.microsoftonline.com`. */
  authorityHost: string;
  /** RFC 7662 endpoint for Dovecot (plain HTTP, credentials of an introspection-only client in the userinfo). */
  httpIntrospectionUrl: string;
  tenantId: string;
  /** `${authorityHost}/${tenantId}/v2.0`: the `iss` of every id_token, whichever tenant alias the request used. */
  issuer: string;
  /** The claims the id_token carries for a login. */
  claimsFor(login: string): AccountClaims;
  /** Adds or replaces a client (e.g. once the app under test knows its redirect port); also undoes expireClientSecret. */
  upsertClient(client: ClientRegistration): void;
  /** From now on the token endpoint answers `invalid_client` AADSTS7000222 for this client. */
  expireClientSecret(clientId: string): void;
  /** Invalidates every grant, refresh token, access token and sign-in session of the account. */
  revokeGrants(account: string): Promise<void>;
  /** POSTs received on the token endpoint (any tenant, any grant, success or error) since start. */
  tokenRequestCount(): number;
  /** client_credentials requests received (success or error) since start. */
  clientCredentialsRequestCount(): number;
  /**
   * "Grant admin consent" in Azure: the application permissions of `clientId` on `resource` (e.g.
   * OUTLOOK_APP_RESOURCE with ['SMTP.SendAsApp', 'IMAP.AccessAsApp']) that its app tokens carry in `roles`.
   */
  grantAdminConsent(clientId: string, resource: string, roles: string[]): void;
  /** Exchange's side (Add-MailboxPermission, RBAC for Applications): the mailboxes the app's tokens may use. */
  setMailboxPermissions(clientId: string, mailboxes: string[]): void;
  /** The service principal's object id (`oid` of its app tokens). */
  servicePrincipalId(clientId: string): string;
  /** Plain-HTTP endpoint the mail peers (Graph, Dovecot) ask about an app token: {active, appid, roles, aud, mailboxes}. */
  httpAppTokenUrl: string;
  /**
   * Plain-HTTP endpoint Dovecot's Lua passdb asks "may this app token log in as this mailbox for this
   * service?" (form token, user, service = imap | submission): answers `ok` or `denied: <why>`, as
   * Exchange decides with SMTP.SendAsApp / IMAP.AccessAsApp and Add-MailboxPermission.
   */
  httpMailAccessUrl: string;
  /**
   * The admin's "Upload certificate" in Azure › Certificates & secrets › Certificates: from now on the client
   * may authenticate with a client assertion signed by this certificate's key (PEM or DER). Returns its
   * SHA-1 thumbprint as Azure lists it.
   */
  registerCertificate(clientId: string, certificate: string | Buffer): string;
  /** Deletes an uploaded certificate by thumbprint; true if it was there. */
  removeCertificate(clientId: string, thumbprint: string): boolean;
  /** The thumbprints uploaded for a client. */
  certificateThumbprints(clientId: string): string[];
  /** Every client assertion accepted so far: which certificate and algorithm authenticated each request. */
  acceptedAssertions(): ReadonlyArray<{ clientId: string; thumbprint: string; alg: string }>;
  /** Moves the clock the assertion checks use by this many seconds (AADSTS700024 for a client whose clock is off). */
  setAssertionClockOffset(seconds: number): void;
  close(): Promise<void>;
}

const ROUTES = {
  authorization: '/oauth2/v2.0/authorize',
  token: '/oauth2/v2.0/token',
  jwks: '/discovery/v2.0/keys',
  end_session: '/oauth2/v2.0/logout',
  introspection: '/introspect',
};
const TENANT_ALIASES = new Set(['common', 'organizations', 'consumers']);
const DAY = 24 * 60 * 60;

const normalizeLogin = (login: string) => login.trim().toLowerCase();

function guidFrom(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// ---------------------------------------------------------------------------------------------------------------
// Microsoft error shapes

interface MsError {
  status: number;
  error: string;
  code: number;
  text: string;
  subcode?: string;
}

interface MsTrace {
  traceId: string;
  correlationId: string;
  timestamp: string;
}

function newTrace(): MsTrace {
  // Microsoft's format: "2024-05-01 12:34:56Z"
  const timestamp = new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  return { traceId: randomUUID(), correlationId: randomUUID(), timestamp };
}

function msDescription(e: MsError, t: MsTrace): string {
  return `AADSTS${e.code}: ${e.text}\r\nTrace ID: ${t.traceId}\r\nCorrelation ID: ${t.correlationId}\r\nTimestamp: ${t.timestamp}`;
}

function msErrorBody(authorityHost: string, e: MsError) {
  const t = newTrace();
  return {
    error: e.error,
    error_description: msDescription(e, t),
    error_codes: [e.code],
    timestamp: t.timestamp,
    trace_id: t.traceId,
    correlation_id: t.correlationId,
    error_uri: `${authorityHost}/error?code=${e.code}`,
  };
}

function msErrorPage(e: MsError): string {
  const t = newTrace();
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign in to your account</title></head>
<body>
<h1>Sign in</h1>
<p>Sorry, but we're having trouble signing you in.</p>
<p id="error-message">AADSTS${e.code}: ${escapeHtml(e.text)}</p>
<p>Request Id: ${t.traceId}<br>Correlation Id: ${t.correlationId}<br>Timestamp: ${t.timestamp}</p>
</body></html>`;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const withDetail = (text: string, out: { error_description?: string }, err?: OidcError) =>
  `${text} (${[out.error_description, err?.error_detail].filter(Boolean).join(': ')})`;

function clientNotFound(clientId: string, tenant: string): MsError {
  return {
    status: 400,
    error: 'unauthorized_client',
    code: 700016,
    text: `Application with identifier '${clientId}' was not found in the directory '${tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
  };
}

function tenantNotFound(tenant: string): MsError {
  return {
    status: 400,
    error: 'invalid_tenant',
    code: 90002,
    text: `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
  };
}

function tokenEndpointError(
  out: { error: string; error_description?: string },
  err: OidcError | undefined,
  params: Record<string, unknown>,
  tenant: string,
  revokedRefreshTokens: Set<string>,
): MsError {
  const detail = err?.error_detail ?? '';
  const clientId = str(params.client_id);
  const grantType = str(params.grant_type);
  switch (out.error) {
    case 'invalid_client':
      if (detail === 'client not found') return clientNotFound(clientId, tenant);
      if (detail.includes('client_secret expired')) {
        return {
          status: 401, error: 'invalid_client', code: 7000222,
          text: `The provided client secret keys for app '${clientId}' are expired. Visit the Azure portal to create new keys for your app, or consider using certificate credentials for added security.`,
        };
      }
      if (detail === 'invalid secret provided') {
        return {
          status: 401, error: 'invalid_client', code: 7000215,
          text: `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
        };
      }
      return {
        status: 401, error: 'invalid_client', code: 7000218,
        text: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
      };
    case 'invalid_grant':
      if (grantType === 'refresh_token') {
        if (revokedRefreshTokens.has(str(params.refresh_token)) || detail === 'refresh token already used' || detail.startsWith('grant')) {
          return {
            status: 400, error: 'invalid_grant', code: 50173,
            text: 'The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.',
          };
        }
        if (detail === 'refresh token is expired') {
          return { status: 400, error: 'invalid_grant', code: 700082, text: 'The refresh token has expired due to inactivity.' };
        }
        return { status: 400, error: 'invalid_grant', code: 9002313, text: withDetail('Invalid request. Request is malformed or invalid.', out, err) };
      }
      if (detail === 'authorization code already consumed') {
        return {
          status: 400, error: 'invalid_grant', code: 54005,
          text: 'OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.',
        };
      }
      if (detail === 'PKCE verification failed') {
        return {
          status: 400, error: 'invalid_grant', code: 501481,
          text: 'The Code_Verifier does not match the code_challenge supplied in the authorization request.',
        };
      }
      if (detail === 'authorization code not found' || detail === 'authorization code is expired') {
        return {
          status: 400, error: 'invalid_grant', code: 70008,
          text: 'The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.',
        };
      }
      return { status: 400, error: 'invalid_grant', code: 70000, text: withDetail('Provided grant is invalid or malformed.', out, err) };
    case 'invalid_scope':
      return { status: 400, error: 'invalid_scope', code: 70011, text: withDetail("The provided value for the input parameter 'scope' is not valid.", out, err) };
    case 'unsupported_grant_type':
      return { status: 400, error: 'unsupported_grant_type', code: 70003, text: 'The app requested an unsupported grant type.' };
    case 'unauthorized_client':
      return { status: 400, error: 'unauthorized_client', code: 700025, text: withDetail('The client is not allowed to use this grant type.', out, err) };
    case 'server_error':
      return { status: 500, error: 'server_error', code: 50000, text: 'There was an error issuing a token or an issue with our sign-in service.' };
    default: {
      const missing = /^missing required parameters? '([^']+)'/.exec(out.error_description ?? '')?.[1]
        ?? (out.error_description === 'no client authentication mechanism provided' ? 'client_id' : undefined);
      if (missing) {
        return { status: 400, error: 'invalid_request', code: 900144, text: `The request body must contain the following parameter: '${missing}'.` };
      }
      return { status: 400, error: out.error, code: 9002313, text: withDetail('Invalid request. Request is malformed or invalid.', out, err) };
    }
  }
}

/** Errors the authorization endpoint reports by redirecting to the client (and, without a usable redirect, as a page). */
function authorizationError(out: { error: string; error_description?: string }, err: OidcError | undefined, clientId: string): MsError {
  switch (out.error) {
    case 'access_denied':
      return { status: 400, error: 'access_denied', code: 65004, text: 'User declined to consent to access the app.', subcode: 'cancel' };
    case 'login_required':
      return { status: 400, error: 'login_required', code: 50058, text: 'A silent sign-in request was sent but no user is signed in.' };
    case 'consent_required':
    case 'interaction_required':
      return {
        status: 400, error: out.error, code: 65001,
        text: `The user or administrator has not consented to use the application with ID '${clientId}'. Send an interactive authorization request for this user and resource.`,
      };
    case 'invalid_scope':
      return { status: 400, error: 'invalid_scope', code: 70011, text: withDetail("The provided value for the input parameter 'scope' is not valid.", out, err) };
    case 'unsupported_response_type':
      return { status: 400, error: 'unsupported_response_type', code: 700054, text: withDetail('The response_type is not enabled for the application.', out, err) };
    default:
      return { status: 400, error: out.error, code: 9002313, text: withDetail('Invalid request. Request is malformed or invalid.', out, err) };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Storage: oidc-provider's own memory adapter can't be enumerated, which revokeGrants() needs.

interface StoredEntry {
  model: string;
  payload: AdapterPayload;
  expiresAt: number | undefined;
}

class MemoryStore {
  readonly entries = new Map<string, StoredEntry>();
  /** Refresh tokens destroyed together with their grant: reported as AADSTS50173 rather than "malformed". */
  readonly revokedRefreshTokens = new Set<string>();

  get(model: string, id: string): AdapterPayload | undefined {
    const entry = this.entries.get(`${model}:${id}`);
    if (entry?.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      this.entries.delete(`${model}:${id}`);
      return undefined;
    }
    return entry && structuredClone(entry.payload);
  }

  set(model: string, id: string, payload: AdapterPayload, expiresInSeconds?: number): void {
    this.entries.set(`${model}:${id}`, {
      model,
      payload: structuredClone(payload),
      expiresAt: expiresInSeconds ? Date.now() + expiresInSeconds * 1000 : undefined,
    });
  }

  findBy(model: string, match: (payload: AdapterPayload) => boolean): Array<[string, AdapterPayload]> {
    const found: Array<[string, AdapterPayload]> = [];
    for (const [key, entry] of this.entries) {
      if (entry.model === model && match(entry.payload)) found.push([key.slice(model.length + 1), entry.payload]);
    }
    return found;
  }

  revokeGrant(grantId: string): void {
    for (const [key, entry] of this.entries) {
      if (entry.payload.grantId !== grantId) continue;
      if (entry.model === 'RefreshToken') this.revokedRefreshTokens.add(key.slice('RefreshToken:'.length));
      this.entries.delete(key);
    }
  }

  adapterClass(): new (model: string) => Adapter {
    const store = this;
    return class StoreAdapter implements Adapter {
      constructor(private readonly model: string) {}
      async upsert(id: string, payload: AdapterPayload, expiresIn: number) {
        store.set(this.model, id, payload, expiresIn);
      }
      async find(id: string) {
        return store.get(this.model, id);
      }
      async findByUid(uid: string) {
        const [hit] = store.findBy(this.model, (p) => p.uid === uid);
        return hit && store.get(this.model, hit[0]);
      }
      async findByUserCode(userCode: string) {
        const [hit] = store.findBy(this.model, (p) => p.userCode === userCode);
        return hit && store.get(this.model, hit[0]);
      }
      async consume(id: string) {
        const entry = store.entries.get(`${this.model}:${id}`);
        if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
      }
      async destroy(id: string) {
        store.entries.delete(`${this.model}:${id}`);
      }
      async revokeByGrantId(grantId: string) {
        store.revokeGrant(grantId);
      }
    };
  }
}

// ---------------------------------------------------------------------------------------------------------------

// oidc-provider warns at import time that Node 20 is unsupported (it works) and when devInteractions is on;
// and once that a token request body was already read (the client assertion check below reads it first).
// Not anchored: on a TTY the text is wrapped in colour codes.
const HARMLESS_WARNING = /oidc-provider WARNING: (Unsupported runtime|a quick start development-only feature devInteractions|already parsed request body detected)/;

async function withoutHarmlessWarnings<T>(fn: () => Promise<T> | T): Promise<T> {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (!(typeof args[0] === 'string' && HARMLESS_WARNING.test(args[0]))) warn(...args);
  };
  try {
    return await fn();
  } finally {
    console.warn = warn;
  }
}

let providerModule: Promise<typeof import('oidc-provider')> | undefined;

function listen(server: http.Server | https.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function clientMetadata(c: ClientRegistration): ClientMetadata {
  return {
    client_id: c.clientId,
    client_secret: c.clientSecret,
    redirect_uris: c.redirectUris,
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  };
}

export async function startAuthServer(opts: AuthServerOptions): Promise<AuthServer> {
  providerModule ??= withoutHarmlessWarnings(() => import('oidc-provider'));
  const { default: Provider } = await providerModule;

  const tenantId = opts.tenantId ?? DEFAULT_TENANT_ID;
  const knownTenants = new Set([...TENANT_ALIASES, tenantId, ...(opts.domains ?? ['example.test'])]);
  const accessTokenTtl = opts.accessTokenTtlSeconds ?? 3600;
  const store = new MemoryStore();
  const tenantOfRequest = new WeakMap<http.IncomingMessage, string>();
  const errorOfRequest = new WeakMap<KoaContext, OidcError>();

  // Client secrets expired by expireClientSecret: refused before oidc-provider, so a client assertion of the
  // same app still works (Azure expires one credential, not the app).
  const expiredSecrets = new Set<string>();
  const registrations = new Map<string, ClientRegistration>();
  const upsertClient = (c: ClientRegistration) => {
    expiredSecrets.delete(c.clientId);
    registrations.set(c.clientId, c);
    store.set('Client', c.clientId, { ...clientMetadata(c) });
  };
  for (const c of opts.clients) upsertClient(c);
  const introspector = { id: `dovecot-introspection-${randomBytes(4).toString('hex')}`, secret: randomBytes(24).toString('hex') };
  store.set('Client', introspector.id, {
    client_id: introspector.id,
    client_secret: introspector.secret,
    redirect_uris: [],
    grant_types: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
  });

  let tokenRequests = 0;
  let clientCredentialsRequests = 0;
  // clientId → resource → roles (admin consent); clientId → mailboxes (Exchange's mailbox permissions).
  const adminConsent = new Map<string, Map<string, string[]>>();
  const mailboxPermissions = new Map<string, Set<string>>();
  function grantAdminConsent(clientId: string, resource: string, roles: string[]) {
    const byResource = adminConsent.get(clientId) ?? new Map<string, string[]>();
    byResource.set(resource, [...roles]);
    adminConsent.set(clientId, byResource);
  }
  const servicePrincipalId = (clientId: string) => guidFrom(`${tenantId}/sp/${clientId}`);
  const assertions = new ClientAssertionVerifier();
  const httpsServer = https.createServer({ cert: opts.tls.cert, key: opts.tls.key });
  const httpServer = http.createServer();
  const [httpsPort, httpPort] = await Promise.all([listen(httpsServer), listen(httpServer)]);
  const authorityHost = `https://127.0.0.1:${httpsPort}`;
  const issuer = `${authorityHost}/${tenantId}/v2.0`;

  const claimsFor = (login: string): AccountClaims => {
    const email = normalizeLogin(login);
    const local = email.split('@')[0] ?? email;
    return {
      tid: tenantId,
      oid: guidFrom(`${tenantId}/${email}`),
      name: local.charAt(0).toUpperCase() + local.slice(1),
      preferred_username: email,
      email,
    };
  };

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(16).toString('base64url'), alg: 'RS256', use: 'sig' };

  const configuration: Configuration = {
    adapter: store.adapterClass(),
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    routes: ROUTES,
    async findAccount(_ctx, id) {
      return { accountId: id, claims: async () => ({ sub: id, ver: '2.0', ...claimsFor(id) }) };
    },
    // Microsoft releases oid/name/preferred_username with "profile" and tid with "openid".
    claims: { openid: ['sub', 'tid', 'ver'], profile: ['name', 'preferred_username', 'oid'], email: ['email'] },
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    responseTypes: ['code'],
    conformIdTokenClaims: false,
    rotateRefreshToken: true,
    pkce: { required: () => true },
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? accessTokenTtl,
      AuthorizationCode: 600,
      IdToken: 3600,
      Interaction: 3600,
      Session: 14 * DAY,
      Grant: 90 * DAY,
      RefreshToken: 90 * DAY,
    },
    // App-only tokens as Microsoft issues them: JWTs for the resource with the admin-consented
    // application permissions in `roles`, the tenant in `tid`, the service principal in `oid`, and no `scp`.
    formats: {
      customizers: {
        async jwt(_ctx, token, jwt) {
          if (token.kind !== 'ClientCredentials') return;
          const clientId = String(token.clientId);
          const resource = String(token.resourceServer?.audience ?? '');
          const oid = servicePrincipalId(clientId);
          jwt.header = { ...jwt.header, typ: 'JWT' };
          const { scope: _scope, ...rest } = jwt.payload;
          jwt.payload = { ...rest, sub: oid, oid, tid: tenantId, appid: clientId, idtyp: 'app', ver: '1.0', roles: adminConsent.get(clientId)?.get(resource) ?? [] };
        },
      },
    },
    // Dovecot's oauth2 passdb takes the mailbox from the introspection reply ("username_attribute = email").
    async extraTokenClaims(_ctx, token) {
      return token.accountId ? { email: normalizeLogin(token.accountId) } : undefined;
    },
    async renderError(ctx, out, error) {
      const params = ctx.oidc?.params ?? Object.fromEntries(new URL(ctx.req.url ?? '/', authorityHost).searchParams);
      const clientId = str(params.client_id);
      let e: MsError;
      if (out.error === 'invalid_redirect_uri') {
        e = {
          status: 400, error: out.error, code: 50011,
          text: `The redirect URI '${str(params.redirect_uri)}' specified in the request does not match the redirect URIs configured for the application '${clientId}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.`,
        };
      } else if (out.error === 'invalid_client') {
        e = clientNotFound(clientId, tenantOfRequest.get(ctx.req) ?? tenantId);
      } else {
        e = authorizationError(out, error, clientId);
      }
      ctx.type = 'html';
      ctx.body = msErrorPage(e);
    },
    features: {
      devInteractions: { enabled: true },
      userinfo: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // Only Dovecot may introspect, and only access tokens: a refresh token presented as a bearer token must
        // come back {"active":false} (a clean 535 / NO) instead of "active" without an email (a temporary failure).
        allowedPolicy: async (_ctx, client, token) => client.clientId === introspector.id && token.kind === 'AccessToken',
      },
      resourceIndicators: {
        enabled: true,
        // Microsoft clients name the resource through the scope URLs, never with a resource parameter.
        defaultResource: async (ctx) => resourceOfScope(ctx.oidc?.params?.scope),
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resource) => {
          const appOnly = ctx.oidc?.params?.grant_type === 'client_credentials';
          if (appOnly && (resource === GRAPH_RESOURCE || resource === OUTLOOK_APP_RESOURCE)) {
            return { scope: `${resource}/.default`, audience: resource, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } }, accessTokenTTL: accessTokenTtl };
          }
          if (resource === GRAPH_RESOURCE) return { scope: GRAPH_SCOPES.join(' '), audience: GRAPH_RESOURCE, accessTokenFormat: 'opaque', accessTokenTTL: accessTokenTtl };
          if (resource !== OUTLOOK_RESOURCE) throw new Provider.errors.InvalidTarget();
          return { scope: OUTLOOK_SCOPES.join(' '), audience: OUTLOOK_RESOURCE, accessTokenFormat: 'opaque', accessTokenTTL: accessTokenTtl };
        },
      },
    },
  };

  const provider = await withoutHarmlessWarnings(() => new Provider(issuer, configuration));
  for (const event of ['grant.error', 'authorization.error', 'introspection.error', 'server_error']) {
    provider.on(event, (ctx, err) => errorOfRequest.set(ctx, err));
  }
  // Clients only see "server_error"; the cause is a bug in this peer or its configuration.
  provider.on('server_error', (_ctx, err) => console.error('auth-server: server_error', err));

  provider.use(async (ctx, next) => {
    await next();
    const route = ctx.oidc?.route;
    const tenant = tenantOfRequest.get(ctx.req) ?? tenantId;

    if (route === 'introspection') {
      // Introspecting something that looks like a JWT gives HTTP 400 unsupported_token_type, which Dovecot
      // turns into a temporary failure; an invalid token has to be a permanent one.
      const body = ctx.body as { error?: string } | undefined;
      if (ctx.status === 400 && body?.error === 'unsupported_token_type') {
        ctx.status = 200;
        ctx.body = { active: false };
      }
      return;
    }

    if (route === 'discovery' && ctx.status === 200) {
      const doc = { ...(ctx.body as Record<string, unknown>) };
      // Microsoft's multi-tenant documents carry a placeholder issuer; tokens carry the real tenant.
      if (tenant === 'common' || tenant === 'organizations') doc.issuer = `${authorityHost}/{tenantid}/v2.0`;
      // Not in Microsoft's document: clients must work without them.
      for (const key of [
        'authorization_response_iss_parameter_supported',
        'code_challenge_methods_supported',
        'introspection_endpoint',
        'introspection_endpoint_auth_methods_supported',
        'introspection_endpoint_auth_signing_alg_values_supported',
      ]) delete doc[key];
      ctx.body = doc;
      return;
    }

    if (route === 'token') {
      if ((ctx.oidc?.body as Record<string, unknown> | undefined)?.grant_type === 'client_credentials') clientCredentialsRequests++;
      const body = ctx.body as Record<string, unknown> | undefined;
      if (ctx.status === 200 && body) {
        ctx.body = { ...body, ext_expires_in: body.expires_in };
      } else if (body && typeof body.error === 'string') {
        const e = tokenEndpointError(
          body as { error: string; error_description?: string },
          errorOfRequest.get(ctx),
          ctx.oidc?.body ?? {},
          tenant,
          store.revokedRefreshTokens,
        );
        ctx.status = e.status;
        ctx.body = msErrorBody(authorityHost, e);
      }
      return;
    }

    const redirectUri = str(ctx.oidc?.params?.redirect_uri);
    const location = ctx.status >= 300 && ctx.status < 400 ? ctx.response.get('location') : '';
    if (redirectUri && location.startsWith(redirectUri)) {
      // Authorization responses: Microsoft sends no RFC 9207 "iss" and puts AADSTS codes into error_description.
      const url = new URL(location);
      const inFragment = url.hash.length > 1;
      const params = new URLSearchParams(inFragment ? url.hash.slice(1) : url.search);
      params.delete('iss');
      const error = params.get('error');
      if (error) {
        const e = authorizationError(
          { error, error_description: params.get('error_description') ?? undefined },
          errorOfRequest.get(ctx),
          str(ctx.oidc?.params?.client_id),
        );
        params.set('error_description', msDescription(e, newTrace()));
        if (e.subcode) params.set('error_subcode', e.subcode);
      }
      if (inFragment) url.hash = params.toString();
      else url.search = params.toString();
      ctx.set('Location', url.href);
      return;
    }

    if (typeof ctx.body === 'string' && ctx.type.startsWith('text/html')) {
      // The built-in pages import a web font from Google; the browser under test must not go online.
      ctx.body = ctx.body.replace(/@import url\(https:\/\/fonts\.googleapis\.com[^)]*\);?/g, '');
    }
  });

  const callback = provider.callback();

  httpsServer.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? '/', authorityHost);
    const match = /^\/([^/]+)(\/.*)$/.exec(url.pathname);
    const tenant = match?.[1] ?? '';
    const rest = match?.[2] ?? '';
    let inner: string | undefined;
    if (rest === '/v2.0/.well-known/openid-configuration') inner = '/.well-known/openid-configuration';
    else if (rest.startsWith('/oauth2/v2.0/') || rest === ROUTES.jwks || rest.startsWith('/interaction/')) inner = rest;
    if (inner === ROUTES.token && req.method === 'POST') tokenRequests++;

    if (rest === '/adminconsent' && knownTenants.has(tenant) && !TENANT_ALIASES.has(tenant)) {
      adminConsentPage(req, res, url);
      return;
    }
    if (!inner) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    if (!knownTenants.has(tenant)) {
      const e = tenantNotFound(tenant);
      if (inner === ROUTES.authorization) {
        res.writeHead(e.status, { 'content-type': 'text/html; charset=utf-8' }).end(msErrorPage(e));
      } else {
        res.writeHead(e.status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(msErrorBody(authorityHost, e)));
      }
      return;
    }

    if (inner === ROUTES.authorization && req.method === 'GET') {
      const prompts = new Set((url.searchParams.get('prompt') ?? '').split(' ').filter(Boolean));
      // oidc-provider knows no account picker; a fresh sign-in is the closest thing.
      if (prompts.delete('select_account')) prompts.add('login');
      // oidc-provider (following OIDC Core) drops offline_access unless prompt includes consent, while
      // Microsoft issues a refresh token for offline_access alone.
      if ((url.searchParams.get('scope') ?? '').split(' ').includes('offline_access') && !prompts.has('none')) prompts.add('consent');
      if (prompts.size) url.searchParams.set('prompt', [...prompts].join(' '));
    }

    // oidc-provider derives its mount path (and so every URL it emits) from originalUrl minus url.
    req.url = `${inner}${url.search}`;
    Object.assign(req, { originalUrl: `/${tenant}${req.url}` });
    tenantOfRequest.set(req, tenant);
    if (inner === ROUTES.token && req.method === 'POST') {
      void withClientAssertion(req, res, `${authorityHost}/${tenant}${ROUTES.token}`).then(async (go) => {
        if (go) await withoutHarmlessWarnings(() => callback(req, res));
      });
      return;
    }
    void callback(req, res);
  });

  /**
   * Microsoft's admin-consent endpoint (`/{tenant}/adminconsent?client_id&redirect_uri&state`): a page
   * listing the app registration's application permissions; Accept grants them for the tenant and returns
   * to the redirect URI with admin_consent=True, tenant and state. An unknown app or a redirect URI the app
   * does not list is answered with Microsoft's error page.
   */
  function adminConsentPage(req: http.IncomingMessage, res: http.ServerResponse, url: URL) {
    const clientId = url.searchParams.get('client_id') ?? '';
    const redirectUri = url.searchParams.get('redirect_uri') ?? '';
    const client = store.get('Client', clientId);
    const registration = registrations.get(clientId);
    const page = (e: MsError) => res.writeHead(e.status, { 'content-type': 'text/html; charset=utf-8' }).end(msErrorPage(e));
    if (!client || !registration) return page(clientNotFound(clientId, tenantId));
    if (!(client.redirect_uris as string[]).includes(redirectUri)) {
      return page({ status: 400, error: 'invalid_request', code: 50011, text: `The redirect URI '${redirectUri}' specified in the request does not match the redirect URIs configured for the application '${clientId}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.` });
    }
    const permissions = Object.entries(registration.applicationPermissions ?? {});
    if (req.method === 'POST') {
      for (const [resource, roles] of permissions) grantAdminConsent(clientId, resource, roles);
      const back = new URL(redirectUri);
      back.search = new URLSearchParams({ admin_consent: 'True', tenant: tenantId, state: url.searchParams.get('state') ?? '' }).toString();
      res.writeHead(302, { location: back.href }).end();
      req.resume();
      return;
    }
    const list = permissions.flatMap(([resource, roles]) => roles.map((r) => `<li>${escapeHtml(r)} (${escapeHtml(resource)})</li>`)).join('');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Permissions requested</title></head>
<body>
<h1>Permissions requested</h1>
<p>Accept for your organization: ${escapeHtml(clientId)}</p>
<ul id="permissions">${list}</ul>
<form method="post" action="${escapeHtml(url.pathname + url.search)}"><button type="submit">Accept</button></form>
</body></html>`);
  }

  // The mail peers' question about an app token (its signature checked here, where the key is): which
  // app, which roles for which audience, and which mailboxes Exchange lets it use.
  const publicKey = createPublicKey({ key: signingKey as import('node:crypto').JsonWebKey, format: 'jwk' });
  function appTokenInfo(token: string): Record<string, unknown> {
    const [h, p, sig] = token.split('.');
    if (!h || !p || !sig) return { active: false };
    if (!cryptoVerify('RSA-SHA256', Buffer.from(`${h}.${p}`), publicKey, Buffer.from(sig, 'base64url'))) return { active: false };
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
    if (claims.idtyp !== 'app' || typeof claims.exp !== 'number' || claims.exp * 1000 <= Date.now()) return { active: false };
    const appid = String(claims.appid);
    return { active: true, appid, aud: claims.aud, roles: claims.roles, tid: claims.tid, oid: claims.oid, mailboxes: [...(mailboxPermissions.get(appid) ?? [])] };
  }

  /**
   * Reads the token request body first: a client assertion is checked here, against the certificates
   * uploaded for the client, and answered as Microsoft does when refused; accepted, the request goes on to
   * oidc-provider as the client's own (client_secret_post), since it knows only secrets.
   */
  async function withClientAssertion(req: http.IncomingMessage, res: http.ServerResponse, tokenEndpoint: string): Promise<boolean> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > 56 * 1024) {
        res.writeHead(413, { 'content-type': 'text/plain' }).end('request entity too large');
        return false;
      }
      chunks.push(chunk);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    const form = new URLSearchParams(text);
    const clientId = form.get('client_id') ?? '';
    if (form.has('client_secret') && expiredSecrets.has(clientId)) {
      const e = tokenEndpointError({ error: 'invalid_client' }, { error_detail: 'client_secret expired' } as OidcError, { client_id: clientId }, '', store.revokedRefreshTokens);
      res.writeHead(e.status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(msErrorBody(authorityHost, e)));
      return false;
    }
    if (form.has('client_assertion') || form.has('client_assertion_type')) {
      const outcome = assertions.verify(Object.fromEntries(form), tokenEndpoint);
      if (!('ok' in outcome)) {
        res.writeHead(outcome.status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(msErrorBody(authorityHost, outcome)));
        return false;
      }
      const client = store.get('Client', form.get('client_id') ?? '');
      form.delete('client_assertion');
      form.delete('client_assertion_type');
      form.set('client_secret', str(client?.client_secret));
    }
    Object.assign(req, { body: form.toString() });
    return true;
  }

  const SERVICE_ROLES: Record<string, string> = { imap: 'IMAP.AccessAsApp', submission: 'SMTP.SendAsApp' };
  function mailAccess(form: URLSearchParams): string {
    const info = appTokenInfo(form.get('token') ?? '');
    if (info.active !== true) return 'denied: token not valid';
    if (info.aud !== OUTLOOK_APP_RESOURCE) return 'denied: token not issued for Exchange Online';
    const role = SERVICE_ROLES[form.get('service') ?? ''];
    if (!role || !Array.isArray(info.roles) || !info.roles.includes(role)) return `denied: role ${role ?? '?'} missing`;
    const user = (form.get('user') ?? '').toLowerCase();
    if (!(info.mailboxes as string[]).includes(user)) return `denied: no mailbox permission on ${user}`;
    return 'ok';
  }

  httpServer.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.method === 'POST' && req.url === '/mail-access') {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => {
        body += c;
        if (body.length > 64 * 1024) req.destroy();
      });
      req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end(mailAccess(new URLSearchParams(body))));
      return;
    }
    if (req.method === 'POST' && req.url === '/app-token') {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => { body += c; });
      req.on('end', () => {
        const info = appTokenInfo(new URLSearchParams(body).get('token') ?? '');
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(info));
      });
      return;
    }
    if (req.method === 'POST' && req.url === ROUTES.introspection) {
      void callback(req, res);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  });

  const closeServer = (server: http.Server | https.Server) =>
    new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    });

  return {
    authorityHost,
    httpIntrospectionUrl: `http://${introspector.id}:${introspector.secret}@127.0.0.1:${httpPort}${ROUTES.introspection}`,
    tenantId,
    issuer,
    claimsFor,
    upsertClient,
    expireClientSecret(clientId) {
      if (!store.get('Client', clientId)) throw new Error(`unknown client ${clientId}`);
      expiredSecrets.add(clientId);
    },
    async revokeGrants(account) {
      const target = normalizeLogin(account);
      const ofAccount = (p: AdapterPayload) => typeof p.accountId === 'string' && normalizeLogin(p.accountId) === target;
      for (const [grantId] of store.findBy('Grant', ofAccount)) {
        store.revokeGrant(grantId);
        store.entries.delete(`Grant:${grantId}`);
      }
      for (const [sessionId] of store.findBy('Session', ofAccount)) store.entries.delete(`Session:${sessionId}`);
    },
    tokenRequestCount: () => tokenRequests,
    clientCredentialsRequestCount: () => clientCredentialsRequests,
    grantAdminConsent,
    setMailboxPermissions(clientId, mailboxes) {
      mailboxPermissions.set(clientId, new Set(mailboxes.map((m) => m.toLowerCase())));
    },
    servicePrincipalId,
    httpAppTokenUrl: `http://127.0.0.1:${httpPort}/app-token`,
    httpMailAccessUrl: `http://127.0.0.1:${httpPort}/mail-access`,
    registerCertificate: (clientId, certificate) => assertions.register(clientId, certificate).thumbprint,
    removeCertificate: (clientId, thumbprint) => assertions.remove(clientId, thumbprint),
    certificateThumbprints: (clientId) => assertions.thumbprints(clientId),
    acceptedAssertions: () => assertions.accepted,
    setAssertionClockOffset(seconds) {
      assertions.clockOffsetSeconds = seconds;
    },
    async close() {
      await Promise.all([closeServer(httpsServer), closeServer(httpServer)]);
    },
  };
}

/**
 * Completes the sign-in pages in a browser that is on its way to (or already at) this server's authorize
 * endpoint: fills the login form with `login` when it shows, accepts the consent form when it shows, and
 * returns once the browser has left the sign-in pages (normally at the client's redirect URI).
 */
export async function signInAndConsent(page: Page, login: string, timeoutMs = 30_000): Promise<void> {
  const onSignInPage = (url: URL) => url.pathname.includes('/interaction/');
  await page.waitForURL(onSignInPage, { timeout: timeoutMs });
  while (onSignInPage(new URL(page.url()))) {
    const current = page.url();
    const prompt = await page.locator('input[name="prompt"]').getAttribute('value', { timeout: timeoutMs });
    if (prompt === 'login') {
      await page.fill('input[name="login"]', login, { timeout: timeoutMs });
      await page.fill('input[name="password"]', 'any-password', { timeout: timeoutMs });
      await page.click('button:has-text("Sign-in")', { timeout: timeoutMs });
    } else {
      await page.click('button:has-text("Continue")', { timeout: timeoutMs });
    }
    await page.waitForURL((url) => url.href !== current, { waitUntil: 'commit', timeout: timeoutMs });
  }
}
