// Browser-free authorization code + PKCE client for the test authorization server.
// Node 20's fetch can only be told about a CA through NODE_EXTRA_CA_CERTS at process start (undici's Agent is
// not a dependency), so this talks HTTPS through node:https with the test CA passed explicitly.
import { createHash, randomBytes } from 'node:crypto';
import https from 'node:https';
import { MAILROOM_SCOPE } from './auth-server.ts';

export interface TokenResponse {
  access_token: string;
  refresh_token: string;
  id_token: string;
  token_type: string;
  expires_in: number;
  ext_expires_in: number;
  scope: string;
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export interface Authority {
  /** `https://127.0.0.1:PORT` */
  authorityHost: string;
  /** PEM of the CA that signed the server certificate. */
  ca: string;
  /** Path segment used in the URLs: 'common' (default), 'organizations', the tenant id or a domain. */
  tenant?: string;
}

export interface GetTokenOptions extends Authority {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  /** The login typed into the sign-in page, e.g. alice@example.test. */
  login: string;
  scope?: string;
}

export function httpsRequest(
  url: string | URL,
  ca: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: init.method ?? 'GET', headers: init.headers, ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

const tenantUrl = (a: Authority, path: string) => new URL(`${a.authorityHost}/${a.tenant ?? 'common'}${path}`);

/** POSTs a form to the token endpoint and returns the status and the parsed JSON body, error or not. */
export async function postToken(a: Authority, params: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await httpsRequest(tenantUrl(a, '/oauth2/v2.0/token'), a.ca, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(params).toString(),
  });
  return { status: res.status, body: JSON.parse(res.text) as Record<string, unknown> };
}

class CookieJar {
  private readonly cookies = new Map<string, string>();

  store(setCookie: string | string[] | undefined): void {
    for (const line of [setCookie ?? []].flat()) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*expires=/i.test(a) && new Date(a.split('=')[1] ?? '') < new Date());
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

/** Runs the authorization code flow with PKCE, signing in as `login` on the HTML forms, and redeems the code. */
export async function getToken(o: GetTokenOptions): Promise<TokenResponse> {
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(8).toString('base64url');
  const authorize = tenantUrl(o, '/oauth2/v2.0/authorize');
  authorize.search = new URLSearchParams({
    client_id: o.clientId,
    response_type: 'code',
    response_mode: 'query',
    redirect_uri: o.redirectUri,
    scope: o.scope ?? MAILROOM_SCOPE,
    state,
    nonce: randomBytes(8).toString('base64url'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();

  const jar = new CookieJar();
  const request = async (url: URL, init: { method?: string; body?: string } = {}) => {
    const res = await httpsRequest(url, o.ca, {
      ...init,
      headers: { cookie: jar.header(), ...(init.body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
    });
    jar.store(res.headers['set-cookie']);
    return res;
  };

  let res = await request(authorize);
  for (let hop = 0; hop < 12; hop++) {
    if (res.status !== 302 && res.status !== 303) throw new Error(`authorize: unexpected HTTP ${res.status}: ${res.text.slice(0, 500)}`);
    const location = new URL(String(res.headers.location), o.authorityHost);
    if (location.href.startsWith(o.redirectUri)) {
      const error = location.searchParams.get('error');
      if (error) throw new Error(`authorization error ${error}: ${location.searchParams.get('error_description')}`);
      if (location.searchParams.get('state') !== state) throw new Error('authorize: state mismatch');
      const { status, body } = await postToken(o, {
        grant_type: 'authorization_code',
        code: location.searchParams.get('code') ?? '',
        redirect_uri: o.redirectUri,
        code_verifier: verifier,
        client_id: o.clientId,
        client_secret: o.clientSecret,
      });
      if (status !== 200) throw new Error(`token endpoint HTTP ${status}: ${JSON.stringify(body)}`);
      return body as unknown as TokenResponse;
    }
    if (location.pathname.includes('/interaction/')) {
      const page = await request(location);
      const prompt = /name="prompt" value="(\w+)"/.exec(page.text)?.[1];
      const form: Record<string, string> = prompt === 'login' ? { prompt, login: o.login, password: 'any-password' } : { prompt: prompt ?? '' };
      res = await request(location, { method: 'POST', body: new URLSearchParams(form).toString() });
    } else {
      res = await request(location);
    }
  }
  throw new Error('authorize: too many redirects');
}

/** The refresh_token grant as Mailroom sends it (client_secret_post, scope repeated). */
export function refreshTokens(
  a: Authority,
  client: { clientId: string; clientSecret: string },
  refreshToken: string,
  scope = MAILROOM_SCOPE,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return postToken(a, {
    grant_type: 'refresh_token',
    refresh_token: refreshToken,
    scope,
    client_id: client.clientId,
    client_secret: client.clientSecret,
  });
}

/** The payload of a JWT, unverified. */
export function decodeJwt(jwt: string): Record<string, unknown> {
  const payload = jwt.split('.')[1];
  if (!payload) throw new Error('not a JWT');
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
}
