import { diagnose } from '../diagnose/diagnose.ts';
import type { OAuthEvidence } from '../diagnose/evidence.ts';
import { MailroomError } from '../errors/errors.ts';
import { boundedFetch, type FetchBounds, PeerLimitError } from '../net/bounded-fetch.ts';

/**
 * Every token request (code redemption, refresh; Microsoft and Google) is over by then. Test
 * Connection may refresh first and must answer within about 30 s; Microsoft answers in well under
 * a second. oauth4webapi sets no deadline of its own (undici's 300 s headers timeout was all there was).
 */
export const TOKEN_ENDPOINT_TIMEOUT_MS = 20_000;

/** Largest token response read. Real ones are 2–10 KB (three tokens and a few fields). */
export const TOKEN_RESPONSE_MAX_BYTES = 1024 * 1024;

/**
 * Longest access, refresh or id token accepted. Microsoft's access tokens are 1.5–4 KB (up to about
 * 10 KB with 200 group ids, past which Entra ID sends an overage claim instead); Google's are
 * under 2 KB. A longer one would be stored and sent as a header of that size on every login.
 */
export const MAX_TOKEN_CHARS = 16 * 1024;

const TOKENS = ['access_token', 'refresh_token', 'id_token'] as const;
export type TokenName = (typeof TOKENS)[number];

export const TOKEN_ENDPOINT_BOUNDS: Readonly<FetchBounds & { maxTokenChars: number }> = Object.freeze({
  timeoutMs: TOKEN_ENDPOINT_TIMEOUT_MS,
  maxBytes: TOKEN_RESPONSE_MAX_BYTES,
  maxTokenChars: MAX_TOKEN_CHARS,
});

/** Who asked: lands in the evidence, so the catalogue names the provider and the permissions. */
export interface TokenRequestContext {
  stage: 'token' | 'refresh';
  /** OAuthEvidence.provider: absent for Microsoft. */
  provider?: string;
  /** The scopes the request asked for (as sent). */
  scopes?: readonly string[];
}

/**
 * The API permissions a scope list asks for, by short name (Mail.Send, SMTP.Send), and the resource
 * they belong to (one per token request at Microsoft). OpenID scopes and offline_access name no API.
 */
export function requestedPermissions(scopes: readonly string[]): { permissions: string[]; resource?: string } {
  let resource: string | undefined;
  const permissions: string[] = [];
  for (const s of scopes) {
    const m = /^(https:\/\/[^/]+)\/(.+)$/.exec(s);
    if (!m) continue;
    resource ??= m[1];
    permissions.push(m[2]!);
  }
  return { permissions, ...(resource !== undefined && { resource }) };
}

/** The evidence of a request that asked for `scopes` (permissions and resource, when known). */
export function requestEvidence(ctx: Pick<TokenRequestContext, 'provider' | 'scopes'>): Pick<OAuthEvidence, 'provider' | 'permissions' | 'resource'> {
  return {
    ...(ctx.provider !== undefined && { provider: ctx.provider }),
    ...(ctx.scopes && requestedPermissions(ctx.scopes)),
  };
}

type TokenLimit = { kind: 'time' | 'size'; bound: number } | { kind: 'token'; bound: number; token: TokenName; length: number };

/** A token answer refused for a bound it passed, as evidence the catalogue explains (never a token). */
export function tokenLimitEvidence(ctx: TokenRequestContext, origin: string, limit: TokenLimit): OAuthEvidence {
  const ev: OAuthEvidence = {
    kind: 'oauth',
    stage: ctx.stage,
    error: limit.kind === 'time' ? 'token_endpoint_timeout' : limit.kind === 'size' ? 'token_response_too_large' : 'token_too_long',
    errorCodes: [],
    origin,
    bound: limit.bound,
    ...requestEvidence(ctx),
  };
  if (limit.kind === 'token') {
    ev.tokenName = limit.token;
    ev.tokenLength = limit.length;
  }
  return ev;
}

/**
 * The error of a refused token answer: MR_OAUTH_UNREACHABLE when it did not come in time,
 * MR_OAUTH_RESPONSE_INVALID when it was too large; both temporary, so mail waits and is retried.
 */
export function tokenLimitError(ctx: TokenRequestContext, origin: string, limit: TokenLimit): MailroomError {
  const ev = tokenLimitEvidence(ctx, origin, limit);
  const d = diagnose(ev);
  return new MailroomError(limit.kind === 'time' ? 'MR_OAUTH_UNREACHABLE' : 'MR_OAUTH_RESPONSE_INVALID', d.cause, {
    fix: d.fix,
    evidence: { ...ev, diagnosis: d.code, guideStep: d.guideStep },
  });
}

/**
 * oauth4webapi's `[customFetch]` for token requests: the exchange ends by the deadline, the body is
 * read (up to the size limit) before oauth4webapi sees it, and a token longer than the bound is
 * refused here, so nothing downstream stores or sends it. Failures are MailroomErrors whose evidence
 * names the endpoint's origin and the bound, explained by the catalogue.
 */
export function tokenEndpointFetch(ctx: TokenRequestContext, bounds: Readonly<FetchBounds & { maxTokenChars: number }> = TOKEN_ENDPOINT_BOUNDS) {
  return async (url: string, init: RequestInit): Promise<Response> => {
    const origin = new URL(url).origin;
    let text: string;
    let response: Response;
    try {
      response = await boundedFetch(url, init, bounds);
      text = await response.text();
    } catch (e) {
      if (!(e instanceof PeerLimitError)) throw e;
      throw tokenLimitError(ctx, origin, { kind: e.limit, bound: e.bound });
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined; // oauth4webapi reports a body that is not JSON in its own words
    }
    if (typeof body === 'object' && body !== null) {
      for (const name of TOKENS) {
        const value = (body as Record<string, unknown>)[name];
        if (typeof value === 'string' && value.length > bounds.maxTokenChars) {
          throw tokenLimitError(ctx, origin, { kind: 'token', bound: bounds.maxTokenChars, token: name, length: value.length });
        }
      }
    }
    return new Response(text, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}
