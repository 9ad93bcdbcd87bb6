import { isIP, type Socket } from 'node:net';
import nodemailer from 'nodemailer';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import { enhancedStatusOf, type NetworkEvidence, type SmtpEvidence } from '../diagnose/evidence.ts';
import type { LoginMechanism, MailLogin } from '../credentials/auth-method.ts';
import { connectGuarded, OutboundRefusedError } from '../net/outbound-policy.ts';
import { withHeaderCase } from './header-case.ts';
import { authPassword } from './password-auth.ts';
import { authXoauth2TwoStep, SmtpStepError, type SendCommand } from './xoauth2.ts';

export interface SmtpTarget {
  host: string;
  port: number;
  /** none: plain text, which the server form allows only for loopback or explicitly allowed hosts. */
  security: 'starttls' | 'tls' | 'none';
  /** How the session authenticates; kept on the evidence, since a refusal means different things per method. */
  auth?: LoginMechanism;
}

/** A failed SMTP exchange with the server's own words kept. */
export class SmtpError extends Error {
  constructor(message: string, readonly evidence: SmtpEvidence | NetworkEvidence) {
    super(message);
    this.name = 'SmtpError';
  }

  get isAuthFailure(): boolean {
    return this.evidence.kind === 'smtp' && (this.evidence.responseCode === 535 || (this.evidence.code === 'EAUTH' && this.evidence.responseCode === undefined));
  }
}

const NETWORK_CODES = new Set(['EOUTBOUND_REFUSED', 'ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'ETLS', 'ECONNREFUSED', 'ENOTFOUND', 'ECONNRESET', 'EPROXY']);

/** nodemailer's error → our evidence: SMTP reply fields, or the socket error underneath. */
export function smtpErrorFrom(e: unknown, target: SmtpTarget): SmtpError {
  const err = e as { code?: string; originalCode?: string; command?: string; responseCode?: number; response?: string; message?: string; cause?: unknown; errno?: string };
  const inner = (err.cause ?? {}) as { code?: string; message?: string };
  if (e instanceof OutboundRefusedError) return new SmtpError(e.message, { kind: 'network', code: e.code, host: target.host, port: target.port, message: e.message });
  if (err.responseCode === undefined && (NETWORK_CODES.has(err.code ?? '') || inner.code)) {
    // nodemailer wraps the socket error; the TLS/OS code underneath names the real cause.
    const tlsCode = /\b([A-Z][A-Z_]{5,})\b/.exec(err.message ?? '')?.[1];
    // nodemailer moves the socket's own code (a TLS certificate error, ECONNREFUSED) to originalCode.
    const code = inner.code ?? err.originalCode ?? (tlsCode && tlsCode !== err.code ? tlsCode : undefined) ?? err.code ?? 'ECONNECTION';
    return new SmtpError(`Could not talk to ${target.host}:${target.port}: ${err.message}`, {
      kind: 'network',
      code,
      host: target.host,
      port: target.port,
      message: err.message ?? String(e),
    });
  }
  const ev: SmtpEvidence = { kind: 'smtp' };
  if (target.auth) {
    ev.auth = target.auth;
    ev.host = target.host;
  }
  if (err.code) ev.code = err.code;
  if (err.command) ev.command = err.command === `AUTH ${XOAUTH2_HANDLER}` ? 'AUTH XOAUTH2' : err.command;
  if (err.responseCode !== undefined) ev.responseCode = err.responseCode;
  if (err.response) ev.response = err.response;
  const es = enhancedStatusOf(err.response);
  if (es) ev.enhancedStatus = es;
  return new SmtpError(err.response ?? err.message ?? String(e), ev);
}

/**
 * nodemailer (10.x) runs a handler named XOAUTH2 only when it holds its own OAuth2 token generator;
 * otherwise it falls back to the server's first advertised method (smtp.gmail.com and Exchange Online
 * list LOGIN before XOAUTH2) and fails with "Missing credentials". Our two-step XOAUTH2 therefore runs
 * under a name of its own; evidence still says AUTH XOAUTH2, which is what goes over the wire.
 */
const XOAUTH2_HANDLER = 'MAILROOM-XOAUTH2';

/** Called at every SMTP login, so a pooled connection opened later gets a then-current token. */
export type LoginProvider = () => Promise<MailLogin>;

/**
 * nodemailer options for one server. Every login runs in our own handlers (custom auth), so a token
 * is fetched per connection, XOAUTH2 goes in two steps and Test Connection can add its steps after
 * AUTH. With a login method, `forceAuth` makes a server that offers no AUTH an error instead of an
 * unauthenticated session.
 */
export function transportOptions(target: SmtpTarget, user: string, login: LoginProvider, afterAuth?: (send: SendCommand) => Promise<void>): SMTPConnection.Options {
  const base = {
    host: target.host,
    port: target.port,
    secure: target.security === 'tls',
    requireTLS: target.security === 'starttls',
    ignoreTLS: target.security === 'none',
    // Certificate checks stay on; private CAs come in through NODE_EXTRA_CA_CERTS. SNI only for a
    // name (RFC 6066 §3: literal addresses are not sent; Node warns DEP0123 on one): for an IP
    // address Node checks it against the certificate's IP SANs.
    tls: { ...(isIP(target.host) ? {} : { servername: target.host }), minVersion: 'TLSv1.2' },
    connectionTimeout: 15_000,
    greetingTimeout: 15_000,
    socketTimeout: 60_000,
    logger: false,
    // nodemailer resolves the host itself and offers no lookup hook: Mailroom opens the socket, so
    // the outbound policy checks the addresses it connects to (TLS, for port 465, runs over it).
    getSocket: (_opts: unknown, done: (err: Error | null, socket?: { connection: Socket }) => void) => {
      connectGuarded(target.host, target.port, 15_000).then(
        (connection) => done(null, { connection }),
        // A socket error keeps its own code underneath, as nodemailer's wrapping does (smtpErrorFrom reads it).
        (e: Error & { code?: string }) => done(e instanceof OutboundRefusedError ? e : Object.assign(new Error(e.message), { code: 'ESOCKET', cause: e })),
      );
    },
  };
  const mechanism = target.auth ?? 'xoauth2';
  if (mechanism === 'none') {
    // A relay without AUTH: Test Connection still runs its steps, through a handler that sends no AUTH.
    if (!afterAuth) return base as SMTPConnection.Options;
    return { ...base, forceAuth: true, auth: { type: 'custom', user, method: 'NONE' }, customAuth: { NONE: async (ctx: SMTPConnection.CustomAuthenticationContext) => afterAuth(ctx.sendCommand as unknown as SendCommand) } } as unknown as SMTPConnection.Options;
  }
  const handler = async (ctx: SMTPConnection.CustomAuthenticationContext) => {
    const send = ctx.sendCommand as unknown as SendCommand;
    const l = await login();
    if (l.kind === 'xoauth2') await authXoauth2TwoStep(send, l.user, l.accessToken);
    else if (l.kind === 'password') await authPassword(send, (ctx as unknown as { authMethods: string[] }).authMethods, l.user, l.password);
    await afterAuth?.(send);
  };
  const auth =
    mechanism === 'xoauth2'
      ? { type: 'custom', user, method: XOAUTH2_HANDLER }
      : // No method: nodemailer takes the server's first offered one; PLAIN and LOGIN are ours.
        { type: 'custom', user, pass: '-' };
  return { ...base, forceAuth: true, auth, customAuth: mechanism === 'xoauth2' ? { [XOAUTH2_HANDLER]: handler } : { PLAIN: handler, LOGIN: handler } } as unknown as SMTPConnection.Options;
}

export interface ProbeResult {
  steps: Array<{ command: string; response: string }>;
}

/**
 * Test Connection: connect, TLS, AUTH, then MAIL FROM and RCPT TO the mailbox itself, then RSET and
 * QUIT — everything a real send does except DATA, so nothing is delivered.
 */
export async function probeSmtp(target: SmtpTarget, login: MailLogin, mailbox: string): Promise<ProbeResult> {
  const steps: ProbeResult['steps'] = [];
  let failedStep: { command: string; reply: { status: number; response: string } } | undefined;
  const user = login.kind === 'none' ? mailbox : login.user;
  const transport = nodemailer.createTransport(
    transportOptions({ ...target, auth: login.kind }, user, async () => login, async (send) => {
      steps.push(login.kind === 'none' ? { command: '(no AUTH)', response: 'the relay is used without authentication' } : { command: `AUTH ${login.kind === 'xoauth2' ? 'XOAUTH2' : 'PLAIN/LOGIN'}`, response: '235 Authentication successful' });
      for (const command of [`MAIL FROM:<${user}>`, `RCPT TO:<${user}>`, 'RSET']) {
        const r = await send(command);
        steps.push({ command, response: r.response });
        if (r.status < 200 || r.status >= 300) {
          failedStep = { command, reply: r };
          throw new SmtpStepError(command, r);
        }
      }
    }),
  );
  try {
    await transport.verify();
    return { steps };
  } catch (e) {
    if (failedStep) {
      const ev: SmtpEvidence = { kind: 'smtp', command: failedStep.command, responseCode: failedStep.reply.status, response: failedStep.reply.response };
      const es = enhancedStatusOf(failedStep.reply.response);
      if (es) ev.enhancedStatus = es;
      throw new SmtpError(failedStep.reply.response, ev);
    }
    throw smtpErrorFrom(e, { ...target, auth: login.kind });
  } finally {
    transport.close();
  }
}

type Address = string | { name: string; address: string };

export interface OutgoingMessage {
  from: Address;
  to: Address[];
  cc?: Address[];
  bcc?: Address[];
  replyTo?: Address;
  subject: string;
  text?: string;
  html?: string;
  headers?: Record<string, string>;
  messageId?: string;
  attachments?: Array<{ filename: string; contentType: string; content: Buffer }>;
}

/** A transport that delivers one outbox message: pooled SMTP, or Microsoft Graph. */
export interface MailSender {
  /** A message built from its fields, or one received over SMTP sent as it is to its envelope. */
  send(msg: OutgoingMessage | RawOutgoingMessage): Promise<SendResult>;
  /** Replaced by a sender with the server's new settings: finishes the messages it holds, then closes. */
  retire(): void;
  close(): void;
}

/**
 * A complete message sent as it is (nodemailer's `raw`: no header added or rewritten), to the given
 * envelope rather than to the addresses in its headers.
 */
export interface RawOutgoingMessage {
  envelope: { from: string; to: string[] };
  raw: Buffer;
  /** Envelope recipients the headers do not name (the Bcc removed on receipt). */
  bcc?: string[];
}

export interface SendResult {
  messageId: string;
  response: string;
  accepted: string[];
  rejected: string[];
}

/** One connection, one message (Send test email). The outbox uses a pooled sender. */
export async function sendOnce(target: SmtpTarget, login: MailLogin, mailbox: string, msg: OutgoingMessage): Promise<SendResult> {
  const t = { ...target, auth: login.kind };
  const transport = nodemailer.createTransport(transportOptions(t, login.kind === 'none' ? mailbox : login.user, async () => login));
  try {
    return toResult(await transport.sendMail(withHeaderCase(msg)));
  } catch (e) {
    throw smtpErrorFrom(e, t);
  } finally {
    transport.close();
  }
}

export function toResult(info: { messageId: string; response: string; accepted: unknown[]; rejected: unknown[] }): SendResult {
  return { messageId: info.messageId, response: info.response, accepted: info.accepted.map(String), rejected: info.rejected.map(String) };
}
