import type { AddressInfo, Socket } from 'node:net';
import { SMTPServer, type SMTPServerError } from 'smtp-server';

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
  waitForMessage(predicate?: (message: SinkMessage) => boolean, timeoutMs?: number): Promise<SinkMessage>;
  setBehavior(behavior: SinkBehavior): void;
  close(): Promise<void>;
}

export interface SmtpSinkOptions {
  /** Called once per recipient before the message is acknowledged; a rejection makes the sink answer 451. */
  deliver?: (rcpt: string, raw: Buffer) => Promise<void>;
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

  const server = new SMTPServer({
    name: 'sink.localhost',
    banner: 'Mailroom test sink',
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    closeTimeout: 1000,
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
          },
          (err: unknown) => callback(smtpError(`451 4.3.0 local delivery failed: ${String(err).replace(/\s+/g, ' ')}`, '4')),
        );
      });
    },
  });
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
