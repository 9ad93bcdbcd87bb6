import { isIP } from 'node:net';
import type { ImapFlow } from 'imapflow';
import type { MailLogin } from '../credentials/auth-method.ts';
import type { ImapEvidence, NetworkEvidence } from '../diagnose/evidence.ts';
import { MailroomError } from '../errors/errors.ts';
import { guardedLookup, hostRefusal, OutboundRefusedError } from '../net/outbound-policy.ts';

let imapflow: Promise<typeof import('imapflow')> | undefined;

export interface ImapTarget {
  host: string;
  port: number;
  security: 'tls' | 'starttls';
  /** Kept on the evidence: a refused login means another thing per method. */
  auth?: 'xoauth2' | 'password';
}

/** A failed IMAP exchange with the server's own words kept. */
export class ImapError extends Error {
  /** A literal refused for its size: the size the server announced for it. */
  literalSize?: number;

  constructor(message: string, readonly evidence: ImapEvidence | NetworkEvidence) {
    super(message);
    this.name = 'ImapError';
  }

  get isAuthFailure(): boolean {
    return this.evidence.kind === 'imap' && (this.evidence.authenticationFailed === true || this.evidence.responseCode === 'AUTHENTICATIONFAILED');
  }
}

/** imapflow's codes for an answer refused by its size limits (handler/limits.js). */
const TOO_LARGE = new Set(['LiteralTooLarge', 'ResponseTooLarge', 'LineTooLarge', 'TooManyTokens', 'TooManyResponses', 'DownloadOverflow']);
/** imapflow's codes for an answer that does not parse. */
const MALFORMED = /^(ParserError\d*|ParserErrorExchange|MAX_IMAP_NESTING_REACHED)$/;

const SOCKET_CODES = /^(ECONN[A-Z]+|ETIMEDOUT|ENOTFOUND|EAI_[A-Z]+|EHOSTUNREACH|EHOSTDOWN|ENETUNREACH|ENETDOWN|EPIPE|EADDRNOTAVAIL|EPROTO|ETLS|CERT_|UNABLE_TO|SELF_SIGNED|DEPTH_ZERO|ERR_TLS|ERR_SSL|ERR_SOCKET)/;

/** Whether this connection has failed (closed by an error, a deadline or the server). */
export function connectionFailed(client: ImapFlow): boolean {
  return connectionErrors.has(client) || !client.usable;
}

/** What imapflow said about a refused answer, without the answer's bytes (its `input` can be 1 KB of anything). */
function limitText(err: { message?: string; literalSize?: number; maxSize?: number }): string {
  return (err.message ?? 'answer refused').slice(0, 300);
}

export function imapErrorFrom(e: unknown, target: ImapTarget): ImapError {
  const refused = e instanceof OutboundRefusedError ? e : (e as { cause?: unknown }).cause instanceof OutboundRefusedError ? ((e as { cause: OutboundRefusedError }).cause) : undefined;
  if (refused) return new ImapError(refused.message, { kind: 'network', code: refused.code, host: target.host, port: target.port, message: refused.message });
  const err = e as { code?: string; message?: string; serverResponseCode?: string; response?: unknown; responseText?: string; responseStatus?: string; authenticationFailed?: boolean; cause?: { code?: string } };
  // Mailroom's own limits and imapflow's parser first: their codes look like socket codes (ETIMEOUT)
  // but say nothing about host or port.
  if (err.code && TOO_LARGE.has(err.code)) {
    const refused = new ImapError(`${target.host} sent an answer past Mailroom's limits (${limitText(err)}).`, { kind: 'imap', host: target.host, problem: 'too_large', response: `${err.code}: ${limitText(err)}` });
    const size = (e as { literalSize?: unknown }).literalSize;
    if (typeof size === 'number' && Number.isFinite(size)) refused.literalSize = size;
    return refused;
  }
  if (err.code === 'ETIMEOUT') {
    return new ImapError(`${target.host} sent nothing while Mailroom waited for its answer.`, { kind: 'imap', host: target.host, problem: 'timeout', response: 'no data before the socket timeout' });
  }
  if (err.code && MALFORMED.test(err.code)) {
    return new ImapError(`${target.host} sent an answer that is not valid IMAP (${limitText(err)}).`, { kind: 'imap', host: target.host, problem: 'malformed', response: `${err.code}: ${limitText(err)}` });
  }
  // Node's socket, DNS and TLS codes only: a parser's EMAXLEN or a library's own E-code says nothing
  // about host or port.
  const netCode = err.cause?.code ?? (err.code && SOCKET_CODES.test(err.code) ? err.code : undefined);
  if (netCode && !err.serverResponseCode && !err.response) {
    return new ImapError(`Could not talk to ${target.host}:${target.port}: ${err.message}`, { kind: 'network', code: netCode, host: target.host, port: target.port, message: err.message ?? String(e) });
  }
  const ev: ImapEvidence = { kind: 'imap' };
  if (target.auth) {
    ev.auth = target.auth;
    ev.host = target.host;
  }
  if (err.serverResponseCode) ev.responseCode = err.serverResponseCode;
  // imapflow's `response` is a parsed object; the human text is in responseText.
  const response = typeof err.response === 'string' ? err.response : err.responseText ? `${err.responseStatus ?? 'NO'} ${err.responseText}` : undefined;
  if (response) ev.response = response;
  if (err.authenticationFailed) ev.authenticationFailed = true;
  return new ImapError(response ?? err.message ?? String(e), ev);
}

/** An IMAP answer Mailroom refuses to act on, with what it saw. */
export function malformedImap(target: ImapTarget, message: string, seen: string): ImapError {
  return new ImapError(message, { kind: 'imap', host: target.host, problem: 'malformed', response: seen.slice(0, 500) });
}

/** The exchange made no progress for `ms`: Mailroom closed the connection. */
export function imapTimeout(target: ImapTarget, what: string, ms: number): ImapError {
  return new ImapError(`${target.host} ${what} for ${Math.round(ms / 1000)} s; Mailroom closed the connection.`, { kind: 'imap', host: target.host, problem: 'timeout', response: `${what} for ${ms} ms` });
}

/** Whether an error is one message's answer past the literal or response limit (that message alone is refused). */
export function isTooLarge(e: unknown): boolean {
  return e instanceof ImapError && e.evidence.kind === 'imap' && e.evidence.problem === 'too_large';
}

export interface ImapBounds {
  /** INBOUND_MAX_MESSAGE_MB: the largest literal (one message's raw bytes) read. */
  maxMessageBytes: number;
  /** IMAP_TIMEOUT_SECONDS: silence while an answer is due, and the whole connect and login, are bounded by this. */
  timeoutMs: number;
  /** Closes the connection at once (shutdown). */
  signal?: AbortSignal;
}

/** A literal carries one message; its FETCH answer adds the UID, flags and framing around it. */
const LITERAL_MARGIN = 64 * 1024;
const RESPONSE_MARGIN = 1024 * 1024;
/**
 * A line without a literal: a FETCH envelope, a LIST or STATUS answer. The longest real ones are
 * ENVELOPEs with hundreds of recipients (a few hundred KB); imapflow's default is 1 GB.
 */
const MAX_LINE_BYTES = 4 * 1024 * 1024;
/**
 * Parse-tree nodes in one answer (about 100 bytes of heap each, imapflow's handler/limits.js): a 4 MB
 * line of "1 1 1 …" would be 2 million at imapflow's default of a million. An ENVELOPE with hundreds
 * of recipients is a few thousand; UID SEARCH answers are read without the tokenizer.
 */
const MAX_RESPONSE_TOKENS = 100_000;

/** The error that ended a connection (imapflow rejects the commands under way with a bare NoConnection). */
const connectionErrors = new WeakMap<ImapFlow, unknown>();

const noop = () => {};
const unparsedAnswers = new WeakMap<ImapFlow, { count: number; sample: string }>();

/** Untagged answers imapflow could not parse and skipped on this connection: how many, and the first. */
export function skippedAnswers(client: ImapFlow): { count: number; sample: string } {
  return unparsedAnswers.get(client) ?? { count: 0, sample: '' };
}

/** Starts the count of skipped answers afresh: a connection kept open (IDLE) is lent to one fetch after another. */
export function forgetSkippedAnswers(client: ImapFlow): void {
  const unparsed = unparsedAnswers.get(client);
  if (unparsed) Object.assign(unparsed, { count: 0, sample: '' });
}

/** What really failed: the connection's own error (a refused literal, a timeout) over the NoConnection that followed. */
export function connectionError(client: ImapFlow, e: unknown): unknown {
  return connectionErrors.get(client) ?? e;
}

/**
 * Ends an exchange that makes no progress: call `progress()` whenever something useful arrives; with
 * none for `ms` the connection is closed and `failed` says why.
 */
export class Stall {
  private timer: NodeJS.Timeout | undefined;
  failed: ImapError | undefined;

  constructor(private readonly client: ImapFlow, private readonly target: ImapTarget, private readonly ms: number, private readonly what: string) {
    this.progress();
  }

  progress(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.failed = imapTimeout(this.target, this.what, this.ms);
      connectionErrors.set(this.client, this.failed);
      this.client.close();
    }, this.ms);
    this.timer.unref();
  }

  end(): void {
    clearTimeout(this.timer);
  }
}

/**
 * Connects and logs in with XOAUTH2 (OAUTHBEARER where the server offers it), or with the password
 * (AUTHENTICATE PLAIN where offered, else LOGIN). Certificate checks stay on. With `bounds`, every
 * answer is capped in size (a literal at INBOUND_MAX_MESSAGE_MB) and time, and the signal closes it.
 */
export async function openImap(target: ImapTarget, login: MailLogin, bounds?: ImapBounds): Promise<ImapFlow> {
  if (login.kind === 'none') throw new MailroomError('MR_CREDENTIALS_MISSING', 'An IMAP mailbox needs a login.', { field: 'authType', fix: 'Choose an OAuth method or Username/Password in Authenticate Using.' });
  target = { ...target, auth: login.kind };
  bounds?.signal?.throwIfAborted();
  // Refused before any socket exists, so Test Connection tells nothing about the port.
  const named = hostRefusal(target.host);
  if (named) throw imapErrorFrom(new OutboundRefusedError(named), target);
  // imapflow is loaded by the first incoming server that connects, not at start.
  const { ImapFlow: Client } = await (imapflow ??= import('imapflow'));
  const unparsed = { count: 0, sample: '' };
  const client = new Client({
    host: target.host,
    port: target.port,
    secure: target.security === 'tls',
    doSTARTTLS: target.security === 'starttls' ? true : undefined,
    // No SNI for an IP address (RFC 6066 §3; Node warns DEP0123): the certificate is checked against its IP SANs.
    ...(isIP(target.host) ? {} : { servername: target.host }),
    auth: login.kind === 'xoauth2' ? { user: login.user, accessToken: login.accessToken } : { user: login.user, pass: login.password },
    // imapflow drops an untagged answer it cannot parse with no more than a log line (a FETCH row
    // with a garbled BODYSTRUCTURE, say): the line is counted here, so a fetch can tell.
    logger: { trace: noop, debug: noop, info: noop, warn: noop, fatal: noop, error: (entry: { src?: string; msg?: unknown; err?: { code?: string; message?: string } }) => {
      if (entry?.src !== 's' || !entry.err) return;
      unparsed.count++;
      unparsed.sample ||= `${entry.err.code ?? 'ParserError'} (${String(entry.err.message ?? '').slice(0, 120)}) in: ${String(entry.msg ?? '').slice(0, 200)}`;
    } },
    connectionTimeout: 15_000,
    greetingTimeout: 15_000,
    // imapflow's defaults are 1 GB literals, 2 GB answers and lines: one hostile answer could take
    // gigabytes of memory (issue #18: 4.5 GB RSS for a 400 MB literal).
    ...(bounds && {
      socketTimeout: bounds.timeoutMs,
      maxLiteralSize: bounds.maxMessageBytes + LITERAL_MARGIN,
      maxResponseSize: bounds.maxMessageBytes + LITERAL_MARGIN + RESPONSE_MARGIN,
      maxLineLength: MAX_LINE_BYTES,
      maxResponseTokens: MAX_RESPONSE_TOKENS,
    }),
    ...(!bounds && { socketTimeout: 10 * 60_000 }),
    // imapflow hands these to net.connect/tls.connect: every address the host resolves to is checked
    // on the connection itself.
    tls: { minVersion: 'TLSv1.2', lookup: guardedLookup() },
  } as ConstructorParameters<typeof ImapFlow>[0]);
  // A connection error after login is reported by the next command (kept, as imapflow then rejects
  // that command with a bare NoConnection); the listener keeps it from crashing the process.
  unparsedAnswers.set(client, unparsed);
  client.on('error', (e: unknown) => {
    if (!connectionErrors.has(client)) connectionErrors.set(client, e);
  });
  const onAbort = () => client.close();
  bounds?.signal?.addEventListener('abort', onAbort, { once: true });
  client.once('close', () => bounds?.signal?.removeEventListener('abort', onAbort));
  // A server that trickles its greeting or login reply a byte at a time never trips the socket timeout.
  const deadline = bounds && setTimeout(() => {
    connectionErrors.set(client, imapTimeout(target, 'did not finish the greeting and login', 15_000 + bounds.timeoutMs));
    client.close();
  }, 15_000 + bounds.timeoutMs);
  try {
    await client.connect();
    return client;
  } catch (e) {
    client.close();
    const cause = connectionErrors.get(client) ?? e;
    throw cause instanceof ImapError ? cause : imapErrorFrom(cause, target);
  } finally {
    clearTimeout(deadline);
  }
}
