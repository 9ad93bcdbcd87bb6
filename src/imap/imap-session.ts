import type { ImapFlow } from 'imapflow';
import type { MailLogin } from '../credentials/auth-method.ts';
import type { ImapEvidence, NetworkEvidence } from '../diagnose/evidence.ts';
import { MailroomError } from '../errors/errors.ts';

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
  constructor(message: string, readonly evidence: ImapEvidence | NetworkEvidence) {
    super(message);
    this.name = 'ImapError';
  }

  get isAuthFailure(): boolean {
    return this.evidence.kind === 'imap' && (this.evidence.authenticationFailed === true || this.evidence.responseCode === 'AUTHENTICATIONFAILED');
  }
}

export function imapErrorFrom(e: unknown, target: ImapTarget): ImapError {
  const err = e as { code?: string; message?: string; serverResponseCode?: string; response?: unknown; responseText?: string; responseStatus?: string; authenticationFailed?: boolean; cause?: { code?: string } };
  const netCode = err.cause?.code ?? (err.code && /^(E[A-Z]+|CERT_|UNABLE_TO|SELF_SIGNED|DEPTH_ZERO|ERR_TLS|ERR_SSL)/.test(err.code) ? err.code : undefined);
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

/**
 * Connects and logs in with XOAUTH2 (OAUTHBEARER where the server offers it), or with the password
 * (AUTHENTICATE PLAIN where offered, else LOGIN). Certificate checks stay on.
 */
export async function openImap(target: ImapTarget, login: MailLogin): Promise<ImapFlow> {
  if (login.kind === 'none') throw new MailroomError('MR_CREDENTIALS_MISSING', 'An IMAP mailbox needs a login.', { field: 'authType', fix: 'Choose an OAuth method or Username/Password in Authenticate Using.' });
  target = { ...target, auth: login.kind };
  // imapflow is loaded by the first incoming server that connects, not at start.
  const { ImapFlow: Client } = await (imapflow ??= import('imapflow'));
  const client = new Client({
    host: target.host,
    port: target.port,
    secure: target.security === 'tls',
    doSTARTTLS: target.security === 'starttls' ? true : undefined,
    servername: target.host,
    auth: login.kind === 'xoauth2' ? { user: login.user, accessToken: login.accessToken } : { user: login.user, pass: login.password },
    logger: false,
    connectionTimeout: 15_000,
    greetingTimeout: 15_000,
    socketTimeout: 10 * 60_000,
    tls: { minVersion: 'TLSv1.2' },
  } as ConstructorParameters<typeof ImapFlow>[0]);
  // A connection error after login is reported by the next command; this keeps it from crashing the process.
  client.on('error', () => {});
  try {
    await client.connect();
    return client;
  } catch (e) {
    client.close();
    throw imapErrorFrom(e, target);
  }
}
