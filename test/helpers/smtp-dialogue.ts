import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface SmtpDialogue {
  /** The greeting, already read. */
  greeting: string;
  /** Sends one line (CRLF added) and resolves with the whole reply, multi-line replies joined by \n. */
  command(line: string): Promise<string>;
  /** Writes bytes as they are (a DATA body) without waiting for a reply. */
  write(bytes: Buffer | string): void;
  /** Resolves with the next reply. */
  reply(): Promise<string>;
  close(): void;
  /** Settles when the connection is closed (by either side). */
  closed: Promise<void>;
}

/**
 * An SMTP client that says exactly what a test tells it to, line by line, to see the server's own
 * replies to commands a well-behaved client library would never send (AUTH before STARTTLS, no SIZE).
 */
export async function smtpDialogue(port: number, opts: { implicitTls?: { ca: string }; localAddress?: string } = {}): Promise<SmtpDialogue> {
  // localAddress: another loopback address (Linux routes all of 127.0.0.0/8 to lo) to be another client.
  const from = opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {};
  const socket: Socket = opts.implicitTls
    ? tlsConnect({ host: '127.0.0.1', port, ca: opts.implicitTls.ca, servername: 'localhost', ...from })
    : tcpConnect({ port, host: '127.0.0.1', ...from });
  let buffer = '';
  const waiting: Array<(r: string) => void> = [];
  const replies: string[] = [];
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    // A reply ends with a line "NNN text" (a space, not a dash, after the code).
    for (;;) {
      const m = /^((?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\r?\n)/.exec(buffer);
      if (!m) break;
      buffer = buffer.slice(m[1]!.length);
      const r = m[1]!.replace(/\r/g, '').trimEnd();
      const w = waiting.shift();
      if (w) w(r);
      else replies.push(r);
    }
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const reply = () => new Promise<string>((resolve) => {
    const r = replies.shift();
    if (r !== undefined) resolve(r);
    else waiting.push(resolve);
  });
  const greeting = await reply();
  return {
    greeting,
    reply,
    command(line) {
      socket.write(`${line}\r\n`);
      return reply();
    },
    write(bytes) {
      socket.write(bytes);
    },
    close() {
      socket.destroy();
    },
    closed,
  };
}

/** AUTH PLAIN's initial response (RFC 4616): authzid NUL authcid NUL password, base64. */
export const plainAuth = (user: string, password: string) => Buffer.from(`\0${user}\0${password}`).toString('base64');
