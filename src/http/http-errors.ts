import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { type ErrorCode, ERRORS, MailroomError } from '../errors/errors.ts';
import { isDatabaseUnavailable } from '../storage/database.ts';

/**
 * Every answer Mailroom gives, including the ones the HTTP layer itself produces (bad URL encoding,
 * a path parameter too long, headers too large, a body too large or of the wrong type), is
 * `{"error":{"code":"MR_…","message":"…"}}` with the same security headers.
 */
export const SECURITY_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  // The OAuth callback URL carries the authorization code: never leak it in a Referer.
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'content-security-policy': [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "form-action 'self'",
    "base-uri 'none'",
  ].join('; '),
};

export function errorBody(code: ErrorCode, message: string, extra: { field?: string } = {}) {
  return { error: { code, message, ...extra } };
}

const BY_STATUS: Record<number, ErrorCode> = { 404: 'MR_NOT_FOUND', 408: 'MR_REQUEST_TIMEOUT', 413: 'MR_PAYLOAD_TOO_LARGE', 414: 'MR_URI_TOO_LONG', 415: 'MR_UNSUPPORTED_MEDIA_TYPE', 431: 'MR_HEADERS_TOO_LARGE' };

/** Fastify's own request errors, in Mailroom's words. */
function fromFastify(err: FastifyError): { code: ErrorCode; message: string; field?: string } {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { code: 'MR_PAYLOAD_TOO_LARGE', message: 'The request body is larger than this endpoint accepts.', field: 'body' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { code: 'MR_UNSUPPORTED_MEDIA_TYPE', message: 'Send the request body as JSON (Content-Type: application/json).', field: 'body' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { code: 'MR_VALIDATION', message: 'The request body is empty; send a JSON object.', field: 'body' };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { code: 'MR_BAD_REQUEST', message: 'The Content-Length header does not match the body.' };
    case 'FST_ERR_BAD_URL':
      return { code: 'MR_BAD_REQUEST', message: 'The URL is not valid (bad percent-encoding).' };
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return { code: 'MR_URI_TOO_LONG', message: 'A part of the URL is longer than any id Mailroom uses.' };
    default:
      if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
        return { code: 'MR_VALIDATION', message: 'The request body is not valid JSON.', field: 'body' };
      }
      return { code: BY_STATUS[err.statusCode ?? 400] ?? 'MR_BAD_REQUEST', message: `${STATUS_CODES[err.statusCode ?? 400] ?? 'Bad request'}.` };
  }
}

/** How long a connection answered before its body was read is drained before it is closed. */
const LINGER_MS = 2000;

/**
 * Closing a socket whose peer is still sending makes the kernel answer with a reset, and a reset
 * makes the peer's kernel drop what it had received but not yet read: the client would see
 * ECONNRESET instead of the answer that explains it. So, as nginx's lingering close does, the answer
 * goes out with our FIN, what still arrives is read and thrown away (Node's parser discards the
 * dumped body), and the socket is destroyed once the client has closed its side or after LINGER_MS.
 */
function lingerOnClose(socket: Socket & { destroySoon?: () => void }): void {
  socket.destroySoon = () => {
    socket.end();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('end', () => socket.destroy());
    socket.once('close', () => clearTimeout(timer));
  };
}

export function handleError(err: FastifyError | MailroomError, req: FastifyRequest, reply: FastifyReply) {
  // Refused before the body was read (401 in onRequest, 413 by Content-Length): close the connection
  // instead of reading a body nobody will use, without resetting it under the client's feet.
  if (!req.raw.complete) {
    reply.header('connection', 'close');
    lingerOnClose(req.raw.socket);
  }
  if (err instanceof MailroomError) {
    if (err.statusCode >= 500) req.log.error({ err, code: err.code }, err.message);
    return reply.code(err.statusCode).send({ error: err.toJSON() });
  }
  const status = err.statusCode ?? 500;
  if (status < 500) {
    const e = fromFastify(err);
    return reply.code(ERRORS[e.code]).send(errorBody(e.code, e.message, e.field ? { field: e.field } : {}));
  }
  if (isDatabaseUnavailable(err)) {
    req.log.warn({ event: 'database.unavailable', err: (err as Error).message }, 'database unavailable');
    reply.header('retry-after', '5');
    return reply.code(503).send(errorBody('MR_DATABASE_UNAVAILABLE', 'The database cannot be reached right now. Try again in a few seconds.'));
  }
  req.log.error({ err }, 'unhandled error');
  return reply.code(500).send(errorBody('MR_INTERNAL', 'Something went wrong on the server. The details are in the server log.'));
}

/** Errors Node's HTTP parser raises before there is a request (headers too large, a timeout, garbage). */
export function handleClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, message]: [number, ErrorCode, string] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'MR_HEADERS_TOO_LARGE', 'The request headers are too large.']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'MR_REQUEST_TIMEOUT', 'The request took too long to arrive.']
        : [400, 'MR_BAD_REQUEST', 'The request is not valid HTTP.'];
  if (socket.writable) {
    const body = JSON.stringify(errorBody(code, message));
    const headers = { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store', connection: 'close' };
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${body}`);
  }
  socket.destroy();
}

/**
 * Refuses a JSON body nested deeper than `max` before anything walks it recursively (a stack
 * overflow is a 500; legitimate bodies here are three levels deep). Iterative, so the check itself
 * cannot overflow.
 */
export function assertDepth(body: unknown, max: number): void {
  if (body === null || typeof body !== 'object') return;
  const stack: Array<[unknown, number]> = [[body, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (depth > max) {
      throw new MailroomError('MR_VALIDATION', `The JSON body is nested more than ${max} levels deep.`, { field: 'body' });
    }
    for (const child of Array.isArray(v) ? v : Object.values(v as object)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
}
