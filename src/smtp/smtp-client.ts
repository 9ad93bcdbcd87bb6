import nodemailer from 'nodemailer';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import { enhancedStatusOf, type NetworkEvidence, type SmtpEvidence } from '../diagnose/evidence.ts';
import { authXoauth2TwoStep, SmtpStepError, type SendCommand } from './xoauth2.ts';

export interface SmtpTarget {
  host: string;
  port: number;
  security: 'starttls' | 'tls';
}

export interface SmtpCredentials {
  user: string;
  accessToken: string;
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

const NETWORK_CODES = new Set(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'ETLS', 'ECONNREFUSED', 'ENOTFOUND', 'ECONNRESET', 'EPROXY']);

/** nodemailer's error → our evidence: SMTP reply fields, or the socket error underneath. */
export function smtpErrorFrom(e: unknown, target: SmtpTarget): SmtpError {
  const err = e as { code?: string; originalCode?: string; command?: string; responseCode?: number; response?: string; message?: string; cause?: unknown; errno?: string };
  const inner = (err.cause ?? {}) as { code?: string; message?: string };
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
  if (err.code) ev.code = err.code;
  if (err.command) ev.command = err.command;
  if (err.responseCode !== undefined) ev.responseCode = err.responseCode;
  if (err.response) ev.response = err.response;
  const es = enhancedStatusOf(err.response);
  if (es) ev.enhancedStatus = es;
  return new SmtpError(err.response ?? err.message ?? String(e), ev);
}

/** Called at every SMTP login, so a pooled connection opened later gets a then-current token. */
export type TokenProvider = () => Promise<SmtpCredentials>;

export function transportOptions(target: SmtpTarget, user: string, token: TokenProvider, afterAuth?: (send: SendCommand) => Promise<void>): SMTPConnection.Options {
  return {
    host: target.host,
    port: target.port,
    secure: target.security === 'tls',
    requireTLS: target.security === 'starttls',
    // Certificate checks stay on; private CAs come in through NODE_EXTRA_CA_CERTS.
    tls: { servername: target.host, minVersion: 'TLSv1.2' },
    connectionTimeout: 15_000,
    greetingTimeout: 15_000,
    socketTimeout: 60_000,
    auth: { type: 'custom', user, method: 'XOAUTH2' } as unknown as SMTPConnection.Credentials,
    customAuth: {
      XOAUTH2: async (ctx: SMTPConnection.CustomAuthenticationContext) => {
        const send = ctx.sendCommand as unknown as SendCommand;
        const creds = await token();
        await authXoauth2TwoStep(send, creds.user, creds.accessToken);
        await afterAuth?.(send);
      },
    },
    logger: false,
  } as SMTPConnection.Options;
}

export interface ProbeResult {
  steps: Array<{ command: string; response: string }>;
}

/**
 * Test Connection: connect, TLS, AUTH, then MAIL FROM and RCPT TO the mailbox itself, then RSET and
 * QUIT — everything a real send does except DATA, so nothing is delivered.
 */
export async function probeSmtp(target: SmtpTarget, creds: SmtpCredentials): Promise<ProbeResult> {
  const steps: ProbeResult['steps'] = [];
  let failedStep: { command: string; reply: { status: number; response: string } } | undefined;
  const transport = nodemailer.createTransport(
    transportOptions(target, creds.user, async () => creds, async (send) => {
      steps.push({ command: 'AUTH XOAUTH2', response: '235 Authentication successful' });
      for (const command of [`MAIL FROM:<${creds.user}>`, `RCPT TO:<${creds.user}>`, 'RSET']) {
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
    throw smtpErrorFrom(e, target);
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

/**
 * A complete message sent as it is (nodemailer's `raw`: no header added or rewritten), to the given
 * envelope rather than to the addresses in its headers.
 */
export interface RawOutgoingMessage {
  envelope: { from: string; to: string[] };
  raw: Buffer;
}

export interface SendResult {
  messageId: string;
  response: string;
  accepted: string[];
  rejected: string[];
}

/** One connection, one message (Send test email). The outbox uses a pooled sender. */
export async function sendOnce(target: SmtpTarget, creds: SmtpCredentials, msg: OutgoingMessage): Promise<SendResult> {
  const transport = nodemailer.createTransport(transportOptions(target, creds.user, async () => creds));
  try {
    return toResult(await transport.sendMail(msg));
  } catch (e) {
    throw smtpErrorFrom(e, target);
  } finally {
    transport.close();
  }
}

export function toResult(info: { messageId: string; response: string; accepted: unknown[]; rejected: unknown[] }): SendResult {
  return { messageId: info.messageId, response: info.response, accepted: info.accepted.map(String), rejected: info.rejected.map(String) };
}
