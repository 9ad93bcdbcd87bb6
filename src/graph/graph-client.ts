import type { GraphEvidence } from '../diagnose/evidence.ts';
import { MailroomError } from '../errors/errors.ts';

/** Graph refuses request bodies over 4 MB (sendMail with MIME, a draft, an inline attachment). */
export const GRAPH_REQUEST_LIMIT = 4 * 1024 * 1024;

/** A Graph error answer ({"error":{"code","message"}}) with its HTTP status, or a network failure. */
export class GraphError extends Error {
  constructor(readonly evidence: GraphEvidence) {
    super(`${evidence.status} ${evidence.code}: ${evidence.message}`);
    this.name = 'GraphError';
  }

  /** The token was refused: worth one forced refresh, as a 535 is on SMTP. */
  get isAuthFailure(): boolean {
    return this.evidence.status === 401;
  }
}

export interface GraphRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT';
  /** Absolute (an @odata.nextLink, an upload URL) or relative to `${host}/v1.0`. */
  path: string;
  token?: string;
  body?: string | Buffer | Record<string, unknown>;
  contentType?: string;
  headers?: Record<string, string>;
}

/** Sends one request; I/O only. */
export async function graphRequest(host: string, r: GraphRequest): Promise<Response> {
  const url = /^https:\/\//.test(r.path) ? r.path : `${host}/v1.0${r.path}`;
  const isJson = r.body !== undefined && !(typeof r.body === 'string') && !Buffer.isBuffer(r.body);
  const headers: Record<string, string> = { ...r.headers };
  if (r.token) headers.authorization = `Bearer ${r.token}`;
  if (r.body !== undefined) headers['content-type'] = r.contentType ?? (isJson ? 'application/json' : 'text/plain');
  try {
    return await fetch(url, {
      method: r.method,
      headers,
      ...(r.body !== undefined && { body: isJson ? JSON.stringify(r.body) : typeof r.body === 'string' ? r.body : new Blob([r.body as Buffer<ArrayBuffer>]) }),
      signal: AbortSignal.timeout(120_000),
    });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const code = cause?.code ?? ((e as Error).name === 'TimeoutError' ? 'ETIMEDOUT' : 'ENETWORK');
    throw new MailroomError('MR_GRAPH_UNREACHABLE', `Could not reach Microsoft Graph at ${new URL(url).host} (${code}).`, {
      fix: 'Check that this machine can open HTTPS connections to graph.microsoft.com (firewall, proxy, DNS); Mailroom retries by itself.',
      evidence: { kind: 'network', code, host: new URL(url).host, message: cause?.message ?? (e as Error).message },
    });
  }
}

/** Interprets the answer: the parsed JSON body of a success, or a GraphError with Microsoft's evidence. */
export async function processGraphResponse<T = Record<string, unknown>>(response: Response, what: string): Promise<T> {
  const text = await response.text();
  if (response.ok) {
    if (!text) return {} as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      return { raw: text } as T;
    }
  }
  let code = `HTTP_${response.status}`;
  let message = text.slice(0, 500);
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code === 'string') code = body.error.code;
    if (typeof body.error?.message === 'string') message = body.error.message;
  } catch {
    // Not JSON (a proxy's page): keep the text.
  }
  const retryAfter = Number(response.headers.get('retry-after'));
  const evidence: GraphEvidence = { kind: 'graph', status: response.status, code, message, request: what };
  if (Number.isFinite(retryAfter) && retryAfter > 0) evidence.retryAfterSeconds = retryAfter;
  const requestId = response.headers.get('request-id');
  if (requestId) evidence.requestId = requestId;
  throw new GraphError(evidence);
}

/** One request and its interpretation. */
export async function graphCall<T = Record<string, unknown>>(host: string, r: GraphRequest): Promise<T> {
  return processGraphResponse<T>(await graphRequest(host, r), `${r.method} ${r.path.replace(/^https:\/\/[^/]+/, '').split('?')[0]}`);
}

/**
 * Runs `fn` with an access token; a token Graph refuses (401, it may have been revoked before its
 * expiry) gets one forced refresh and one more try, as a 535 does on SMTP.
 */
export async function withGraphToken<T>(getToken: (forceRefresh: boolean) => Promise<string>, fn: (token: string) => Promise<T>): Promise<T> {
  try {
    return await fn(await getToken(false));
  } catch (e) {
    if (!(e instanceof GraphError && e.isAuthFailure)) throw e;
    return fn(await getToken(true));
  }
}

/** The Graph permissions a token response granted ("https://graph.microsoft.com/Mail.Send …" → "Mail.Send"). */
export function grantedPermissions(scope: string | null | undefined): string[] {
  return (scope ?? '').split(' ').filter(Boolean).map((x) => x.replace(/^https:\/\/[^/]+\//, ''));
}

/** Test Connection's answer when the sign-in did not grant `permission`. */
export function missingPermission(granted: string[], permission: string): GraphError {
  return new GraphError({ kind: 'graph', status: 200, code: 'MissingPermission', message: `The token grants ${granted.join(', ') || 'no Graph permission'}.`, missingPermissions: [permission] });
}

export const userPath = (mailbox: string) => `/users/${encodeURIComponent(mailbox)}`;
