import { setTimeout as sleep } from 'node:timers/promises';
import { MailroomError } from '../errors/errors.ts';
import { isDatabaseUnavailable } from './database.ts';

/** One pause of the wait: what failed and when the next attempt comes. */
export interface DatabaseWaiting {
  /** host:port of the database (never the user or password). */
  target: string;
  attempt: number;
  nextMs: number;
  /** In plain words: "connection refused", "no answer within 5 s", the server's own "the database system is starting up". */
  cause: string;
}

export interface DatabaseWaitOptions {
  /** Gives up after this long; 0 waits as long as it takes. */
  timeoutMs: number;
  /** The connect timeout, named when a connection attempt got no answer. */
  connectMs: number;
  /** Aborted (SIGTERM while waiting): the wait ends at once, rejecting with the signal's reason. */
  signal?: AbortSignal;
  /** Before each pause. Awaited: if it fails, so does the wait. */
  onWaiting?: (w: DatabaseWaiting) => void | Promise<void>;
}

// 0.5 s doubling to 10 s, each ±20 % so that instances waiting for the same database do not all
// come back in the same instant.
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 10_000;

/**
 * Runs `open` until it succeeds. A database that cannot be reached yet (refused, no answer, starting
 * up, a host name that does not resolve yet) is tried again with backoff until `timeoutMs`; anything
 * else — a refused login, a missing database, a wrong secret key, a failing migration — ends the wait
 * at once, since waiting cannot fix it.
 */
export async function whenDatabaseReachable<T>(databaseUrl: string, opts: DatabaseWaitOptions, open: () => Promise<T>): Promise<T> {
  const target = databaseTarget(databaseUrl);
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    let err: unknown;
    try {
      return await abortable(open(), opts.signal);
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      err = e;
    }
    const cause = unreachableCause(err, opts.connectMs);
    if (cause === null) throw refusal(err, target);
    const left = opts.timeoutMs === 0 ? Infinity : started + opts.timeoutMs - Date.now();
    if (left <= 0) {
      throw new MailroomError('MR_DATABASE_UNAVAILABLE', `PostgreSQL at ${target} could not be reached within ${seconds(opts.timeoutMs)} (${attempt} attempts; last: ${cause}).`, {
        fix: 'Start PostgreSQL or mend the network path to it, and check the host and port in DATABASE_URL. DATABASE_STARTUP_TIMEOUT_SECONDS sets how long Mailroom waits at start (0: as long as it takes).',
        cause: err,
      });
    }
    const backoff = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (attempt - 1)) * (0.8 + 0.4 * Math.random());
    const nextMs = Math.round(Math.min(left, backoff));
    await opts.onWaiting?.({ target, attempt, nextMs, cause });
    await sleep(nextMs, undefined, opts.signal ? { signal: opts.signal } : {}).catch((e) => {
      throw opts.signal?.aborted ? opts.signal.reason : e;
    });
  }
}

/** `host:port` from a DATABASE_URL, for log lines and messages: no user, no password, no options. */
export function databaseTarget(databaseUrl: string): string {
  try {
    const u = new URL(databaseUrl);
    // libpq's ?host= (a Unix socket directory, say) wins over the authority part.
    const host = u.searchParams.get('host') || u.hostname || 'localhost';
    return host.startsWith('/') ? host : `${host}:${u.port || '5432'}`;
  } catch {
    return 'the DATABASE_URL address';
  }
}

const PLAIN: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
};

type Link = { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };

function chain(err: unknown): Link[] {
  const out: Link[] = [];
  for (let e = err as Link | undefined, depth = 0; e && typeof e === 'object' && depth < 5; e = e.cause as Link | undefined, depth++) {
    out.push(e);
    // Node's happy-eyeballs connect (several addresses for one name) fails with an AggregateError.
    if (Array.isArray(e.errors)) out.push(...(e.errors as Link[]));
  }
  return out;
}

const codeOf = (e: Link) => (typeof e.code === 'string' ? e.code : '');
const messageOf = (e: Link) => (typeof e.message === 'string' ? e.message.split('\n')[0]! : '');

/** Why the database cannot be reached yet, or null when the error is one waiting will not fix. */
export function unreachableCause(err: unknown, connectMs: number): string | null {
  const links = chain(err);
  // A missing database counts as "unavailable" for a running instance (it went away), but at start
  // it is a wrong DATABASE_URL.
  if (!isDatabaseUnavailable(err) || links.some((e) => codeOf(e) === '3D000')) return null;
  for (const e of links) {
    const code = codeOf(e);
    if (PLAIN[code]) return PLAIN[code];
    // The server's own words for "not now": starting up, shutting down, too many clients.
    if (/^(08|57P0|53300)/.test(code) && messageOf(e)) return messageOf(e);
    if (/timeout/i.test(messageOf(e))) return `no answer within ${seconds(connectMs)}`;
  }
  return messageOf(links.at(-1) ?? {}) || 'unreachable';
}

/** A refused login or a missing database in plain words; any other error as it is. */
function refusal(err: unknown, target: string): unknown {
  const e = chain(err).find((l) => /^(28|3D000)/.test(codeOf(l)));
  if (!e) return err;
  const login = codeOf(e).startsWith('28');
  return new MailroomError('MR_DATABASE_REFUSED', `PostgreSQL at ${target} refused Mailroom: ${messageOf(e)} (${codeOf(e)}).`, {
    fix: login
      ? 'Check the user name and password in DATABASE_URL, and that pg_hba.conf on the database server lets this user in from this machine.'
      : 'Create the database (createdb, or CREATE DATABASE as a superuser) or correct its name in DATABASE_URL.',
    cause: err,
  });
}

/** Rejects with the signal's reason as soon as it is aborted; the promise itself is left to settle unobserved. */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  p.catch(() => undefined);
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(ms < 10_000 ? 1 : 0))} s`;
}
