// A Google-shaped OAuth 2.0 authorization server for the end-to-end tests, on two HTTPS hosts as at Google:
// the sign-in host (accounts.google.com: /o/oauth2/v2/auth) and the token host (oauth2.googleapis.com: /token).
//
// What it does as Google does (https://developers.google.com/identity/protocols/oauth2/web-server):
//   - a refresh token only for access_type=offline, and then only on the first grant of a client and account
//     or when prompt=consent asked for the consent screen again;
//   - no refresh-token rotation: a refresh answer carries a new access token and no refresh_token;
//   - Google's error JSON ({"error":"invalid_grant","error_description":"Token has been expired or revoked."})
//     and its error pages for a client or redirect URI it does not know (Error 400: redirect_uri_mismatch);
//   - an app in "Testing" publishing status gets refresh tokens that die after 7 days, announced by
//     refresh_token_expires_in: 604799 in every token response (setPublishingStatus('testing'));
//   - id_tokens signed RS256 with iss = the sign-in host, aud = azp = the client id, email and sub;
//   - the granted scope string names userinfo.email for "email", as Google's answers do.
//
// Browser page at the sign-in host (GET /o/oauth2/v2/auth): <h1>Sign in with Google</h1>, an input labelled
// "Email or phone" (name="login", pre-filled from login_hint) and the buttons "Allow" and "Cancel" (Cancel
// redirects with error=access_denied). googleSignIn() below drives it.
//
// For Dovecot: an RFC 7662 introspection endpoint on plain HTTP (introspector credentials in the userinfo),
// answering with the fields of Google's tokeninfo (aud, azp, scope, email, exp) for a live access token and
// {"active":false} for anything else. Dovecot is a resource server for one audience (the `audience` option,
// the Mailroom client id): a token issued to any other client introspects as inactive (RFC 7662 §2.2 lets
// the server answer per protected resource), so Dovecot accepts only Google tokens meant for Mailroom.
import { createHash, generateKeyPairSync, randomBytes, sign, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Page } from 'playwright-core';
import type { ClientRegistration } from './auth-server.ts';

export const GOOGLE_MAIL_SCOPE = 'https://mail.google.com/';
/** Google answers "email" with its long name in the granted scope. */
const EMAIL_SCOPE = 'https://www.googleapis.com/auth/userinfo.email';
/** Google's value for apps in Testing publishing status: 7 days less a second. */
export const TESTING_REFRESH_TOKEN_SECONDS = 604_799;

export interface GoogleAuthServerOptions {
  tls: { cert: string; key: string };
  clients?: ClientRegistration[];
  accessTokenTtlSeconds?: number;
  /** The client id whose tokens the introspecting resource server (Dovecot) accepts. Default: any client's. */
  audience?: string;
}

export interface GoogleAuthServer {
  /** Stand-in for https://accounts.google.com (GOOGLE_AUTHORITY_HOST): authorize page, iss of id_tokens. */
  authorityHost: string;
  /** Stand-in for https://oauth2.googleapis.com (GOOGLE_TOKEN_HOST): the token endpoint. */
  tokenHost: string;
  /** RFC 7662 endpoint for Dovecot, with the introspector's credentials in the userinfo. */
  httpIntrospectionUrl: string;
  upsertClient(client: ClientRegistration): void;
  /** "testing": refresh tokens die after 7 days and token responses say so; "in_production": they don't. */
  setPublishingStatus(status: 'testing' | 'in_production'): void;
  /** What the account sees at myaccount.google.com/permissions › Remove access: every token of the account dies. */
  revokeGrants(account: string): void;
  /** The query of the last authorization request that reached the sign-in page. */
  lastAuthorizeRequest(): URLSearchParams | undefined;
  /** POSTs on the token endpoint since start (any grant, success or error). */
  tokenRequestCount(): number;
  /** Accounts whose grant was ended through the revocation endpoint, in order. */
  revocations(): string[];
  close(): Promise<void>;
}

interface Client extends ClientRegistration {}

interface PendingAuthorization {
  params: URLSearchParams;
  client: Client;
}

interface AuthCode {
  clientId: string;
  redirectUri: string;
  account: string;
  scope: string;
  nonce: string | undefined;
  codeChallenge: string | undefined;
  codeChallengeMethod: string;
  issueRefreshToken: boolean;
  expiresAt: number;
  used: boolean;
}

interface RefreshToken {
  clientId: string;
  account: string;
  scope: string;
  /** Only for Testing apps. */
  expiresAt: number | undefined;
  revoked: boolean;
}

interface AccessToken {
  clientId: string;
  account: string;
  scope: string;
  expiresAt: number;
  revoked: boolean;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const token = (prefix: string) => `${prefix}${randomBytes(32).toString('base64url')}`;
const now = () => Math.floor(Date.now() / 1000);
/** Google's subject: a stable decimal number per account. */
const subjectOf = (account: string) => BigInt(`0x${createHash('sha256').update(account).digest('hex').slice(0, 15)}`).toString();

function listen(server: http.Server | https.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
      if (body.length > 64 * 1024) req.destroy();
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

function json(res: http.ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

/** Google's error page for a request it cannot send back to the client ("Access blocked: ... Error 400: ..."). */
function errorPage(res: http.ServerResponse, status: number, error: string, text: string) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' }).end(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Error ${status} (${escapeHtml(error)})</title></head>
<body><h1>Access blocked: This app's request is invalid</h1>
<p>${escapeHtml(text)}</p>
<p id="error-code">Error ${status}: ${escapeHtml(error)}</p></body></html>`);
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export async function startGoogleAuthServer(opts: GoogleAuthServerOptions): Promise<GoogleAuthServer> {
  const clients = new Map<string, Client>();
  const upsertClient = (c: ClientRegistration) => void clients.set(c.clientId, { ...c });
  for (const c of opts.clients ?? []) upsertClient(c);
  const accessTtl = opts.accessTokenTtlSeconds ?? 3599;
  let publishing: 'testing' | 'in_production' = 'in_production';
  const pending = new Map<string, PendingAuthorization>();
  const codes = new Map<string, AuthCode>();
  const refreshTokens = new Map<string, RefreshToken>();
  const accessTokens = new Map<string, AccessToken>();
  /** client:account pairs that granted offline access once: later sign-ins get a refresh token only with prompt=consent. */
  const offlineGrants = new Set<string>();
  let lastAuthorize: URLSearchParams | undefined;
  let tokenRequests = 0;
  const revocations: string[] = [];
  const introspector = { id: `dovecot-${randomBytes(4).toString('hex')}`, secret: randomBytes(24).toString('hex') };

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomBytes(8).toString('hex');

  const authServer = https.createServer({ cert: opts.tls.cert, key: opts.tls.key });
  const tokenServer = https.createServer({ cert: opts.tls.cert, key: opts.tls.key });
  const introspectionServer = http.createServer();
  const [authPort, tokenPort, introspectionPort] = await Promise.all([listen(authServer), listen(tokenServer), listen(introspectionServer)]);
  const authorityHost = `https://127.0.0.1:${authPort}`;
  const tokenHost = `https://127.0.0.1:${tokenPort}`;

  function idToken(clientId: string, account: string, accessToken: string, nonce: string | undefined): string {
    const header = { alg: 'RS256', kid, typ: 'JWT' };
    const digest = createHash('sha256').update(accessToken).digest();
    const claims = {
      iss: authorityHost,
      azp: clientId,
      aud: clientId,
      sub: subjectOf(account),
      email: account,
      email_verified: true,
      at_hash: digest.subarray(0, 16).toString('base64url'),
      ...(nonce !== undefined && { nonce }),
      iat: now(),
      exp: now() + 3600,
    };
    const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
  }

  function issueAccess(clientId: string, account: string, scope: string): string {
    const t = token('ya29.');
    accessTokens.set(t, { clientId, account, scope, expiresAt: now() + accessTtl, revoked: false });
    return t;
  }

  const testingExpiry = () => (publishing === 'testing' ? { refresh_token_expires_in: TESTING_REFRESH_TOKEN_SECONDS } : {});

  // ── Sign-in host ─────────────────────────────────────────────────────────────────────────────────────
  authServer.on('request', (req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', authorityHost);
      if (url.pathname === '/o/oauth2/v2/auth' && req.method === 'GET') {
        const p = url.searchParams;
        lastAuthorize = new URLSearchParams(p);
        const client = clients.get(p.get('client_id') ?? '');
        if (!client) {
          errorPage(res, 401, 'invalid_client', 'The OAuth client was not found.');
          return;
        }
        const redirectUri = p.get('redirect_uri') ?? '';
        if (!client.redirectUris.includes(redirectUri)) {
          errorPage(res, 400, 'redirect_uri_mismatch', `You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy. If you're the app developer, register the redirect URI in the Google Cloud Console. Request details: redirect_uri=${redirectUri}`);
          return;
        }
        const back = (params: Record<string, string>) => {
          const to = new URL(redirectUri);
          for (const [k, v] of Object.entries(params)) to.searchParams.set(k, v);
          const state = p.get('state');
          if (state !== null) to.searchParams.set('state', state);
          res.writeHead(302, { location: to.href }).end();
        };
        if (p.get('response_type') !== 'code') {
          back({ error: 'unsupported_response_type' });
          return;
        }
        const scopes = (p.get('scope') ?? '').split(' ').filter(Boolean);
        if (scopes.length === 0) {
          errorPage(res, 400, 'invalid_request', 'Missing required parameter: scope');
          return;
        }
        const challengeMethod = p.get('code_challenge_method') ?? 'plain';
        if (p.get('code_challenge') !== null && challengeMethod !== 'S256' && challengeMethod !== 'plain') {
          errorPage(res, 400, 'invalid_request', `Invalid code_challenge_method: ${challengeMethod}`);
          return;
        }
        const txn = token('');
        pending.set(txn, { params: new URLSearchParams(p), client });
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign in - Google Accounts</title></head>
<body><h1>Sign in with Google</h1>
<p>Mailroom wants to access your Google Account: Read, compose, send, and permanently delete all your email from Gmail.</p>
<form method="post" action="/o/oauth2/v2/auth/approve">
<input type="hidden" name="txn" value="${escapeHtml(txn)}">
<label for="identifier">Email or phone</label>
<input id="identifier" name="login" type="email" value="${escapeHtml(p.get('login_hint') ?? '')}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Cancel</button>
</form></body></html>`);
        return;
      }
      if (url.pathname === '/o/oauth2/v2/auth/approve' && req.method === 'POST') {
        const form = new URLSearchParams(await readBody(req));
        const txn = form.get('txn') ?? '';
        const pend = pending.get(txn);
        pending.delete(txn);
        if (!pend) {
          errorPage(res, 400, 'invalid_request', 'This sign-in page has expired.');
          return;
        }
        const p = pend.params;
        const to = new URL(p.get('redirect_uri')!);
        const state = p.get('state');
        if (form.get('decision') !== 'allow') {
          to.searchParams.set('error', 'access_denied');
        } else {
          const account = (form.get('login') ?? '').trim().toLowerCase();
          const scope = (p.get('scope') ?? '').split(' ').filter(Boolean).map((s) => (s === 'email' ? EMAIL_SCOPE : s)).join(' ');
          const offline = p.get('access_type') === 'offline';
          const consent = (p.get('prompt') ?? '').split(' ').includes('consent');
          const grantKey = `${pend.client.clientId}:${account}`;
          const issueRefreshToken = offline && (consent || !offlineGrants.has(grantKey));
          if (offline) offlineGrants.add(grantKey);
          const code = token('4/0A');
          codes.set(code, {
            clientId: pend.client.clientId,
            redirectUri: p.get('redirect_uri')!,
            account,
            scope,
            nonce: p.get('nonce') ?? undefined,
            codeChallenge: p.get('code_challenge') ?? undefined,
            codeChallengeMethod: p.get('code_challenge_method') ?? 'plain',
            issueRefreshToken,
            expiresAt: now() + 600,
            used: false,
          });
          to.searchParams.set('code', code);
          to.searchParams.set('scope', scope);
          to.searchParams.set('authuser', '0');
          to.searchParams.set('prompt', 'consent');
        }
        if (state !== null) to.searchParams.set('state', state);
        res.writeHead(302, { location: to.href }).end();
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
    })().catch((e: unknown) => {
      console.error('google-auth-server:', e);
      if (!res.headersSent) json(res, 500, { error: 'internal_failure', error_description: 'Internal error' });
    });
  });

  // ── Token host ───────────────────────────────────────────────────────────────────────────────────────
  tokenServer.on('request', (req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', tokenHost);
      // https://developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke: a refresh (or
      // access) token in the form; the whole grant ends; an unknown token is 400 invalid_token.
      if (url.pathname === '/revoke' && req.method === 'POST') {
        const token = new URLSearchParams(await readBody(req)).get('token') ?? '';
        const rt = refreshTokens.get(token) ?? accessTokens.get(token);
        if (!rt || rt.revoked) return json(res, 400, { error: 'invalid_token', error_description: 'Token expired or revoked' });
        for (const t of [...refreshTokens.values(), ...accessTokens.values()]) if (t.account === rt.account && t.clientId === rt.clientId) t.revoked = true;
        revocations.push(rt.account);
        return json(res, 200, {});
      }
      if (url.pathname !== '/token' || req.method !== 'POST') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
        return;
      }
      tokenRequests++;
      const form = new URLSearchParams(await readBody(req));
      let clientId = form.get('client_id') ?? '';
      let clientSecret = form.get('client_secret') ?? '';
      const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
      if (basic) {
        const [id = '', secret = ''] = Buffer.from(basic[1]!, 'base64').toString('utf8').split(':').map(decodeURIComponent);
        clientId = id;
        clientSecret = secret;
      }
      const client = clients.get(clientId);
      if (!client) return json(res, 401, { error: 'invalid_client', error_description: 'The OAuth client was not found.' });
      if (!sameSecret(clientSecret, client.clientSecret)) return json(res, 401, { error: 'invalid_client', error_description: 'Unauthorized' });

      const grantType = form.get('grant_type');
      if (grantType === 'authorization_code') {
        const code = codes.get(form.get('code') ?? '');
        if (!code || code.clientId !== clientId) return json(res, 400, { error: 'invalid_grant', error_description: 'Malformed auth code.' });
        if (code.used || code.expiresAt < now()) return json(res, 400, { error: 'invalid_grant', error_description: 'Bad Request' });
        code.used = true;
        if (form.get('redirect_uri') !== code.redirectUri) return json(res, 400, { error: 'redirect_uri_mismatch', error_description: 'Bad Request' });
        if (code.codeChallenge !== undefined) {
          const verifier = form.get('code_verifier');
          if (!verifier) return json(res, 400, { error: 'invalid_grant', error_description: 'Missing code verifier.' });
          const computed = code.codeChallengeMethod === 'S256' ? createHash('sha256').update(verifier).digest('base64url') : verifier;
          if (computed !== code.codeChallenge) return json(res, 400, { error: 'invalid_grant', error_description: 'Invalid code verifier.' });
        }
        const accessToken = issueAccess(clientId, code.account, code.scope);
        const body: Record<string, unknown> = { access_token: accessToken, expires_in: accessTtl, scope: code.scope, token_type: 'Bearer' };
        if (code.issueRefreshToken) {
          const rt = token('1//0g');
          refreshTokens.set(rt, {
            clientId,
            account: code.account,
            scope: code.scope,
            expiresAt: publishing === 'testing' ? now() + TESTING_REFRESH_TOKEN_SECONDS : undefined,
            revoked: false,
          });
          body.refresh_token = rt;
          Object.assign(body, testingExpiry());
        }
        if (code.scope.split(' ').includes('openid')) body.id_token = idToken(clientId, code.account, accessToken, code.nonce);
        return json(res, 200, body);
      }
      if (grantType === 'refresh_token') {
        const rt = refreshTokens.get(form.get('refresh_token') ?? '');
        if (!rt || rt.clientId !== clientId || rt.revoked || (rt.expiresAt !== undefined && rt.expiresAt < now())) {
          return json(res, 400, { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' });
        }
        const accessToken = issueAccess(clientId, rt.account, rt.scope);
        // No rotation: the same refresh token keeps working, and none is returned.
        const body: Record<string, unknown> = { access_token: accessToken, expires_in: accessTtl, scope: rt.scope, token_type: 'Bearer' };
        if (rt.expiresAt !== undefined) body.refresh_token_expires_in = Math.max(0, rt.expiresAt - now());
        if (rt.scope.split(' ').includes('openid')) body.id_token = idToken(clientId, rt.account, accessToken, undefined);
        return json(res, 200, body);
      }
      return json(res, 400, { error: 'unsupported_grant_type', error_description: `Invalid grant_type: ${grantType ?? ''}` });
    })().catch((e: unknown) => {
      console.error('google-auth-server:', e);
      if (!res.headersSent) json(res, 500, { error: 'internal_failure', error_description: 'Internal error' });
    });
  });

  // ── Introspection for Dovecot ────────────────────────────────────────────────────────────────────────
  introspectionServer.on('request', (req, res) => {
    void (async () => {
      if (req.method !== 'POST' || req.url !== '/introspect') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
        return;
      }
      const expected = `Basic ${Buffer.from(`${introspector.id}:${introspector.secret}`).toString('base64')}`;
      if (!sameSecret(req.headers.authorization ?? '', expected)) return json(res, 401, { error: 'invalid_client' });
      const t = accessTokens.get(new URLSearchParams(await readBody(req)).get('token') ?? '');
      if (!t || t.revoked || t.expiresAt < now() || (opts.audience !== undefined && t.clientId !== opts.audience)) return json(res, 200, { active: false });
      // Google's tokeninfo fields (https://oauth2.googleapis.com/tokeninfo) under RFC 7662's "active".
      return json(res, 200, {
        active: true,
        aud: t.clientId,
        azp: t.clientId,
        sub: subjectOf(t.account),
        scope: t.scope,
        email: t.account,
        email_verified: 'true',
        exp: String(t.expiresAt),
        expires_in: String(t.expiresAt - now()),
        access_type: 'offline',
      });
    })().catch(() => {
      if (!res.headersSent) json(res, 500, { error: 'internal_failure' });
    });
  });

  const closeServer = (server: http.Server | https.Server) =>
    new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    });

  return {
    authorityHost,
    tokenHost,
    httpIntrospectionUrl: `http://${introspector.id}:${introspector.secret}@127.0.0.1:${introspectionPort}/introspect`,
    upsertClient,
    setPublishingStatus(status) {
      publishing = status;
    },
    revokeGrants(account) {
      const a = account.trim().toLowerCase();
      for (const t of refreshTokens.values()) if (t.account === a) t.revoked = true;
      for (const t of accessTokens.values()) if (t.account === a) t.revoked = true;
      for (const key of [...offlineGrants]) if (key.endsWith(`:${a}`)) offlineGrants.delete(key);
    },
    lastAuthorizeRequest: () => lastAuthorize,
    revocations: () => [...revocations],
    tokenRequestCount: () => tokenRequests,
    async close() {
      await Promise.all([closeServer(authServer), closeServer(tokenServer), closeServer(introspectionServer)]);
    },
  };
}

/** Completes Google's sign-in page in a browser on its way there: types the account, clicks Allow (or Cancel). */
export async function googleSignIn(page: Page, login: string, opts: { decision?: 'Allow' | 'Cancel'; timeoutMs?: number } = {}): Promise<void> {
  const timeout = opts.timeoutMs ?? 30_000;
  await page.waitForURL((u) => u.pathname === '/o/oauth2/v2/auth', { timeout });
  await page.getByLabel('Email or phone', { exact: true }).fill(login, { timeout });
  const current = page.url();
  await page.getByRole('button', { name: opts.decision ?? 'Allow', exact: true }).click({ timeout });
  await page.waitForURL((u) => u.href !== current, { waitUntil: 'commit', timeout });
}
