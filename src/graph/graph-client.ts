import type { GraphEvidence } from '../diagnose/evidence.ts';
import { MailroomError } from '../errors/errors.ts';
import { boundedFetch, PeerLimitError } from '../net/bounded-fetch.ts';

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

/** A JSON answer (a delta page of 50 messages with $select is a few KB): more is not a Graph answer. */
export const GRAPH_JSON_LIMIT = 16 * 1024 * 1024;
/** Every JSON exchange is over by then, headers and body (Graph's own gateway gives up after 100 s). */
export const GRAPH_JSON_TIMEOUT_MS = 60_000;
/** A raw download may take this long plus GRAPH_DOWNLOAD_MS_PER_MB for each MB of its size limit. */
const GRAPH_DOWNLOAD_BASE_MS = 60_000;
const GRAPH_DOWNLOAD_MS_PER_MB = 2_000;
/** An error answer is read this far: Microsoft's are a few hundred bytes, a proxy's page a few KB. */
const GRAPH_ERROR_LIMIT = 64 * 1024;

/** The deadline of a download whose body may be up to `maxBytes` (at least 0.5 MB/s, and never under a minute). */
export const downloadTimeoutMs = (maxBytes: number) => GRAPH_DOWNLOAD_BASE_MS + Math.ceil(maxBytes / (1024 * 1024)) * GRAPH_DOWNLOAD_MS_PER_MB;

export interface GraphRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  /**
   * Relative to `${host}/v1.0` ("/users/…"), or a link Graph returned (@odata.nextLink,
   * @odata.deltaLink), which must be at the Graph host itself: a token goes nowhere else.
   */
  path: string;
  token?: string;
  body?: string | Buffer | Record<string, unknown>;
  contentType?: string;
  headers?: Record<string, string>;
  /** Largest answer read (default GRAPH_JSON_LIMIT); a larger one fails with ResponseTooLarge. */
  maxBytes?: number;
  /** The whole exchange's deadline (default GRAPH_JSON_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Shutdown: the exchange ends at once. */
  signal?: AbortSignal;
}

/** What the request was, for evidence: the method and the path without host and query (they may carry tokens). */
export const requestLabel = (r: Pick<GraphRequest, 'method' | 'path'>) => `${r.method} ${r.path.replace(/^https?:\/\/[^/]+/, '').split('?')[0]}`;

/**
 * A link or URL from a Graph answer that names another origin: following it would send the token
 * there (a proxy rewriting links, or a MICROSOFT_GRAPH_HOST that is not where Graph answers). The
 * evidence names the origin only: a link's path and query may carry tokens.
 */
export function foreignLink(origin: string, graphOrigin: string, what: string): GraphError {
  return new GraphError({ kind: 'graph', status: 200, code: 'ForeignLink', message: `${what} points to ${origin}, not to Microsoft Graph at ${graphOrigin}; Mailroom did not follow it.`, request: what });
}

/** A success answer whose JSON is not what Graph documents (a wrong type, a missing field): nothing is taken from it. */
export function invalidResponse(what: string, problem: string): GraphError {
  return new GraphError({ kind: 'graph', status: 200, code: 'InvalidResponse', message: `The answer to ${what} is not what Microsoft Graph sends: ${problem}.`, request: what });
}

/**
 * The URL of a request: a path under `${host}/v1.0`, or an absolute link whose origin is the Graph
 * host's (anything else is a ForeignLink, before any connection is made).
 */
export function graphUrl(host: string, path: string, what = 'A link in the answer'): URL {
  const graph = new URL(host);
  if (path.startsWith('/')) return new URL(`${graph.origin}/v1.0${path}`);
  let url: URL;
  try {
    url = new URL(path);
  } catch {
    throw invalidResponse(what, 'a link is not a URL');
  }
  if (url.origin !== graph.origin) throw foreignLink(url.origin, graph.origin, what);
  return url;
}

/** A link Graph returned, checked before it is followed or stored: a string, at the Graph host. */
export function checkLink(host: string, link: unknown, what: string): string {
  if (typeof link !== 'string' || !link) throw invalidResponse(what, 'a link is not a string');
  if (link.startsWith('/')) throw invalidResponse(what, 'a link is not absolute');
  graphUrl(host, link, what);
  return link;
}

function bodyOf(r: Pick<GraphRequest, 'body' | 'contentType' | 'headers'>): { headers: Record<string, string>; body?: RequestInit['body'] } {
  const isJson = r.body !== undefined && !(typeof r.body === 'string') && !Buffer.isBuffer(r.body);
  const headers: Record<string, string> = { ...r.headers };
  if (r.body === undefined) return { headers };
  headers['content-type'] = r.contentType ?? (isJson ? 'application/json' : 'text/plain');
  return { headers, body: isJson ? JSON.stringify(r.body) : typeof r.body === 'string' ? r.body : new Blob([r.body as Buffer<ArrayBuffer>]) };
}

/** An answer cut at its size limit or deadline, as the GraphError the catalogue explains (ResponseTooLarge, ResponseTimeout). */
export function limitError(e: PeerLimitError, what: string, status = 0): GraphError {
  return new GraphError({ kind: 'graph', status, code: e.limit === 'size' ? 'ResponseTooLarge' : 'ResponseTimeout', message: `${e.message} (${what}).`, request: what });
}

/** A peer's limit, a shutdown or a network failure, as the error the callers explain. */
function exchangeError(e: unknown, url: URL, what: string, status = 0): Error {
  if (e instanceof GraphError) return e;
  if (e instanceof PeerLimitError) return limitError(e, what, status);
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const aborted = (e as Error)?.name === 'AbortError' || (e as { code?: string })?.code === 'ABORT_ERR';
  const code = cause?.code ?? (aborted ? 'ECANCELED' : 'ENETWORK');
  if (aborted) return new MailroomError('MR_GRAPH_UNREACHABLE', `The request to Microsoft Graph at ${url.host} was cancelled: Mailroom is stopping.`, { fix: 'Nothing to do: the next start carries on from the last committed point.', evidence: { kind: 'network', code, host: url.host, message: 'cancelled at shutdown' } });
  return new MailroomError('MR_GRAPH_UNREACHABLE', `Could not reach Microsoft Graph at ${url.host} (${code}).`, {
    fix: 'Check that this machine can open HTTPS connections to graph.microsoft.com (firewall, proxy, DNS); Mailroom retries by itself.',
    evidence: { kind: 'network', code, host: url.host, message: cause?.message ?? (e as Error)?.message ?? String(e) },
  });
}

async function send(url: URL, init: RequestInit, r: Pick<GraphRequest, 'maxBytes' | 'timeoutMs' | 'signal'>, what: string): Promise<Response> {
  try {
    return await boundedFetch(url, init, { timeoutMs: r.timeoutMs ?? GRAPH_JSON_TIMEOUT_MS, maxBytes: r.maxBytes ?? GRAPH_JSON_LIMIT, ...(r.signal && { signal: r.signal }) });
  } catch (e) {
    throw exchangeError(e, url, what);
  }
}

/**
 * Sends one request to Microsoft Graph; I/O only. The token is attached only to a URL at the Graph
 * host (graphUrl refuses any other), and the answer is bounded in size and time: its body stream
 * errors past the limit or the deadline (processGraphResponse turns that into a GraphError).
 */
export async function graphRequest(host: string, r: GraphRequest): Promise<Response> {
  const what = requestLabel(r);
  // A refused link is named by its origin only: its path and query may carry tokens.
  const url = graphUrl(host, r.path, r.path.startsWith('/') ? what : `${r.method} a link from a Graph answer`);
  const { headers, body } = bodyOf(r);
  if (r.token) headers.authorization = `Bearer ${r.token}`;
  return send(url, { method: r.method, headers, ...(body !== undefined && { body }) }, r, what);
}

/**
 * A request to an upload-session URL. Graph hands it out pre-authenticated (at the Outlook service,
 * not the Graph host) and Microsoft refuses it with an Authorization header, so this has no token to
 * give: it cannot send one anywhere.
 */
export async function uploadRequest(uploadUrl: string, r: Omit<GraphRequest, 'path' | 'token'>): Promise<Response> {
  const what = `${r.method} upload session`;
  let url: URL;
  try {
    url = new URL(uploadUrl);
  } catch {
    throw invalidResponse('POST createUploadSession', 'uploadUrl is not a URL');
  }
  if (url.protocol !== 'https:') throw invalidResponse('POST createUploadSession', `uploadUrl is not an https URL (${url.protocol})`);
  const { headers, body } = bodyOf(r);
  delete headers.authorization;
  return send(url, { method: r.method, headers, ...(body !== undefined && { body }) }, r, what);
}

/** The whole body as text, its size or deadline failure made a GraphError for `what`. */
async function textOf(response: Response, what: string): Promise<string> {
  try {
    return await response.text();
  } catch (e) {
    throw exchangeError(e, new URL(response.url || 'https://graph.invalid'), what, response.status);
  }
}

/**
 * Interprets the answer: the JSON object of a success (empty: {}), or a GraphError with Microsoft's
 * evidence. A success that is not a JSON object is an InvalidResponse; an error body is read up to
 * 64 KB only.
 */
export async function processGraphResponse<T = Record<string, unknown>>(response: Response, what: string): Promise<T> {
  if (response.ok) {
    const text = await textOf(response, what);
    if (!text) return {} as T;
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw invalidResponse(what, `the body is not JSON (${text.length} bytes starting ${JSON.stringify(text.slice(0, 40))})`);
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalidResponse(what, `the body is ${Array.isArray(body) ? 'an array' : typeof body}, not an object`);
    return body as T;
  }
  const text = await readErrorBody(response);
  let code = `HTTP_${response.status}`;
  let message = text.slice(0, 500);
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code === 'string') code = body.error.code.slice(0, 200);
    if (typeof body.error?.message === 'string') message = body.error.message.slice(0, 2000);
  } catch {
    // Not JSON (a proxy's page): keep the text.
  }
  const retryAfter = Number(response.headers.get('retry-after'));
  const evidence: GraphEvidence = { kind: 'graph', status: response.status, code, message, request: what };
  if (Number.isFinite(retryAfter) && retryAfter > 0) evidence.retryAfterSeconds = retryAfter;
  const requestId = response.headers.get('request-id');
  if (requestId) evidence.requestId = requestId.slice(0, 200);
  throw new GraphError(evidence);
}

/** The first 64 KB of an error answer; the rest is not read (the connection is cancelled). */
async function readErrorBody(response: Response): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < GRAPH_ERROR_LIMIT) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } catch {
    // Cut short (its deadline, the connection): the status says enough.
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, GRAPH_ERROR_LIMIT).toString('utf8');
}

/** One request and its interpretation. */
export async function graphCall<T = Record<string, unknown>>(host: string, r: GraphRequest): Promise<T> {
  return processGraphResponse<T>(await graphRequest(host, r), requestLabel(r));
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
