import type { AddressInfo, Socket } from 'node:net';
import { SMTPServer, type SMTPServerError } from 'smtp-server';
import { dsn } from '../helpers/dsn.ts';

export interface SinkMessage {
  from: string;
  to: string[];
  raw: Buffer;
  receivedAt: Date;
}

/**
 * - `accept`: every recipient and message is accepted.
 * - `tempFail` / `permFail`: every RCPT TO is answered with the given reply, e.g. `451 4.3.0 try later`.
 * - `drop`: connections are closed as soon as they are accepted, before the greeting.
 */
export type SinkBehavior = 'accept' | { tempFail: string } | { permFail: string } | 'drop';

export interface SmtpSink {
  port: number;
  messages: SinkMessage[];
  /** Replies the submission limits gave (432 4.3.2, 554 5.2.0), and the most sessions one user had at once. */
  refusals: Array<{ user: string; reply: string }>;
  peakSessions: Map<string, number>;
  /** Successful AUTHs per user: each is a new session (a connection opened, a login made). */
  logins: Map<string, number>;
  waitForMessage(predicate?: (message: SinkMessage) => boolean, timeoutMs?: number): Promise<SinkMessage>;
  setBehavior(behavior: SinkBehavior): void;
  /**
   * Accepts mail for `address` (250), then refuses it the way a remote MTA does after the fact: an
   * RFC 3464 DSN with `reply` and the original's headers is mailed to the envelope sender (through
   * `deliver`, so into the sender's Dovecot mailbox). `null` stops it.
   */
  refuseAfterAccept(address: string, reply: string | null): void;
  /** DSNs mailed back so far. */
  bounced: Array<{ to: string; recipient: string; raw: string }>;
  close(): Promise<void>;
}

export interface SmtpSinkOptions {
  /** Called once per recipient before the message is acknowledged; a rejection makes the sink answer 451. */
  deliver?: (rcpt: string, raw: Buffer) => Promise<void>;
  /** Stand in for Exchange Online's SMTP submission instead of a plain relay target. */
  submission?: SubmissionOptions;
}

/**
 * Exchange Online's submission as far as its per-mailbox limits go: STARTTLS, AUTH XOAUTH2 with tokens
 * checked by RFC 7662 introspection at the authorization server, and Microsoft's replies.
 */
export interface SubmissionOptions {
  tls: { cert: string; key: string };
  /** AuthServer.httpIntrospectionUrl (client credentials in the userinfo). */
  introspectionUrl: string;
  /** Authenticated sessions of one mailbox at once; MAIL FROM on one more gets 432 4.3.2 sender thread limit exceeded. */
  sessionsPerUser?: number;
  /** Recipients a mailbox may send to in any 24 hours of `now`, by mailbox; past it the message gets 554 5.2.0 SubmissionQuotaExceededException. */
  recipientsPerDay?: Record<string, number>;
  now?: () => Date;
  /** The tenant has SMTP AUTH switched off: every AUTH gets Microsoft's 535 5.7.139 reply. */
  smtpAuthDisabled?: boolean;
}

export const SMTP_AUTH_DISABLED =
  '5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [AM0PR04CA0001.eurprd04.prod.outlook.com]';

export const SENDER_THREAD_LIMIT = '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded [Hostname=AM0PR04MB8000.eurprd04.prod.outlook.com]';
export const SUBMISSION_QUOTA_EXCEEDED =
  '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message. [Hostname=AM0PR04MB8000.eurprd04.prod.outlook.com]';

async function introspect(url: string, token: string): Promise<string | undefined> {
  const u = new URL(url);
  const basic = Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64');
  u.username = '';
  u.password = '';
  const r = await fetch(u, { method: 'POST', headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }) });
  const j = (await r.json()) as { active?: boolean; email?: string; scope?: string };
  return j.active && j.scope?.split(' ').includes('https://outlook.office.com/SMTP.Send') ? j.email : undefined;
}

function smtpError(reply: string, expectedClass: '4' | '5'): SMTPServerError {
  const match = /^([245]\d\d)\s+(.*)$/s.exec(reply.trim());
  if (!match?.[1] || match[1][0] !== expectedClass) {
    throw new Error(`sink reply must be a ${expectedClass}xx SMTP reply, got: ${reply}`);
  }
  return Object.assign(new Error(match[2]), { responseCode: Number(match[1]) });
}

/** A plain SMTP server on 127.0.0.1 without AUTH or TLS: Dovecot's relay target, or a misbehaving MX for queue tests. */
export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const messages: SinkMessage[] = [];
  const waiters = new Set<(message: SinkMessage) => void>();
  let behavior: SinkBehavior = 'accept';
  const refuseLater = new Map<string, string>();
  const bounced: SmtpSink['bounced'] = [];
  const sub = options.submission;
  const now = sub?.now ?? (() => new Date());
  const sessions = new Map<string, Set<string>>();
  const peakSessions = new Map<string, number>();
  const logins = new Map<string, number>();
  const sentByUser = new Map<string, Array<{ at: number; n: number }>>();
  const refusals: SmtpSink['refusals'] = [];
  const refuse = (user: string, reply: string, expectedClass: '4' | '5') => {
    refusals.push({ user, reply });
    return smtpError(reply, expectedClass);
  };
  const usedToday = (user: string) => {
    const since = now().getTime() - 24 * 3600_000;
    return (sentByUser.get(user) ?? []).filter((s) => s.at > since).reduce((a, s) => a + s.n, 0);
  };

  const server = new SMTPServer({
    name: sub ? 'outlook.localhost' : 'sink.localhost',
    banner: sub ? 'Microsoft ESMTP MAIL Service ready (test stand-in)' : 'Mailroom test sink',
    logger: false,
    closeTimeout: 1000,
    ...(sub
      ? {
          key: sub.tls.key,
          cert: sub.tls.cert,
          authMethods: ['XOAUTH2'],
          authOptional: false,
          onAuth(auth, session, callback) {
            if (sub.smtpAuthDisabled) return callback(Object.assign(new Error(SMTP_AUTH_DISABLED), { responseCode: 535 }));
            introspect(sub.introspectionUrl, auth.accessToken ?? '').then(
              (email) => {
                if (!email || email.toLowerCase() !== (auth.username ?? "").toLowerCase()) return callback(Object.assign(new Error('5.7.3 Authentication unsuccessful'), { responseCode: 535 }));
                const user = email.toLowerCase();
                const open = sessions.get(user) ?? new Set<string>();
                sessions.set(user, open.add(session.id));
                peakSessions.set(user, Math.max(peakSessions.get(user) ?? 0, open.size));
                logins.set(user, (logins.get(user) ?? 0) + 1);
                callback(null, { user });
              },
              (e: unknown) => callback(e as Error),
            );
          },
          onClose(session) {
            if (typeof session.user === 'string') sessions.get(session.user)?.delete(session.id);
          },
          onMailFrom(_address, session, callback) {
            const user = String(session.user);
            if (sub.sessionsPerUser !== undefined && (sessions.get(user)?.size ?? 0) > sub.sessionsPerUser) return callback(refuse(user, SENDER_THREAD_LIMIT, '4'));
            callback();
          },
        }
      : { authOptional: true, disabledCommands: ['AUTH', 'STARTTLS'] }),
    onRcptTo(_address, _session, callback) {
      if (typeof behavior === 'object') {
        callback('tempFail' in behavior ? smtpError(behavior.tempFail, '4') : smtpError(behavior.permFail, '5'));
        return;
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        const user = String(session.user);
        const quota = sub?.recipientsPerDay?.[user];
        if (quota !== undefined) {
          // Exchange counts the recipients when it submits the message, after DATA.
          const n = session.envelope.rcptTo.length;
          if (usedToday(user) + n > quota) return callback(refuse(user, SUBMISSION_QUOTA_EXCEEDED, '5'));
          sentByUser.set(user, [...(sentByUser.get(user) ?? []), { at: now().getTime(), n }]);
        }
        const message: SinkMessage = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          receivedAt: new Date(),
        };
        const deliverAll = async () => {
          for (const rcpt of message.to) await options.deliver?.(rcpt, raw);
        };
        deliverAll().then(
          () => {
            messages.push(message);
            for (const waiter of waiters) waiter(message);
            callback(null, `queued as ${messages.length}`);
            void mailBounces(message);
          },
          (err: unknown) => callback(smtpError(`451 4.3.0 local delivery failed: ${String(err).replace(/\s+/g, ' ')}`, '4')),
        );
      });
    },
  });
  /** After the 250: one DSN per refused recipient, to the envelope sender, as the remote MTA's queue would. */
  async function mailBounces(m: SinkMessage): Promise<void> {
    const headerEnd = m.raw.indexOf('\r\n\r\n');
    const headerBlock = m.raw.subarray(0, headerEnd < 0 ? m.raw.length : headerEnd).toString('latin1');
    for (const rcpt of m.to) {
      const reply = refuseLater.get(rcpt.toLowerCase());
      if (!reply || !m.from) continue;
      const status = /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(reply)?.[1] ?? '5.0.0';
      const raw = dsn({ to: m.from, recipient: rcpt, status, diagnostic: reply, reportingMta: 'sink.localhost', original: { headerBlock } });
      try {
        await options.deliver?.(m.from, Buffer.from(raw));
        bounced.push({ to: m.from, recipient: rcpt, raw });
      } catch {
        // The sender's mailbox is not local: a real MTA would retry; the test sees no DSN in `bounced`.
      }
    }
  }

  // A dropped connection makes smtp-server report write errors on the destroyed socket.
  server.on('error', () => {});
  server.server.prependListener('connection', (socket: Socket) => {
    if (behavior === 'drop') socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.server.address() as AddressInfo;

  return {
    port,
    messages,
    refusals,
    peakSessions,
    logins,
    waitForMessage(predicate = () => true, timeoutMs = 10_000) {
      const existing = messages.find(predicate);
      if (existing) return Promise.resolve(existing);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no matching message at the SMTP sink within ${timeoutMs} ms (${messages.length} received)`));
        }, timeoutMs);
        const waiter = (message: SinkMessage) => {
          if (!predicate(message)) return;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(message);
        };
        waiters.add(waiter);
      });
    },
    bounced,
    refuseAfterAccept(address, reply) {
      if (reply === null) refuseLater.delete(address.toLowerCase());
      else refuseLater.set(address.toLowerCase(), reply);
    },
    setBehavior(next) {
      // Parse now so that a malformed reply fails in the test that sets it, not inside an SMTP session.
      if (typeof next === 'object') {
        if ('tempFail' in next) smtpError(next.tempFail, '4');
        else smtpError(next.permFail, '5');
      }
      behavior = next;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
