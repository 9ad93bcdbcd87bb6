import { createHash } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { domainToASCII } from 'node:url';
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { type ApiKeyService, scopeAllows } from '../apikeys/api-key-service.ts';
import type { LoginLimiter } from '../auth/login-limiter.ts';
import type { SubmissionConfig } from '../config/config.ts';
import { isMailroomError } from '../errors/errors.ts';
import type { Logger } from '../logger.ts';
import { parseMailbox } from '../outbox/message-input.ts';
import type { OutboxService } from '../outbox/outbox-service.ts';
import { forbiddenBytes, prepareSubmitted } from './submitted-message.ts';

/** Microsoft's per-message recipient limit: more would be refused by Exchange anyway. */
const MAX_RECIPIENTS = 500;
/**
 * On shutdown, sessions get this long to finish a message they are sending; idle ones are closed
 * with 421 at their next command (smtp-server answers every command with 421 while closing).
 */
const CLOSE_TIMEOUT_MS = 10_000;

export interface SubmissionDeps {
  config: SubmissionConfig;
  host: string;
  /** Announced with SIZE (RFC 1870) and enforced on the raw message. */
  maxMessageBytes: number;
  /** The name in the greeting and EHLO reply. */
  hostname: string;
  apiKeys: ApiKeyService;
  /** Failed AUTH attempts, counted in the database in a realm of their own. */
  limiter: LoginLimiter;
  outbox: OutboxService;
  logger: Logger;
}

interface SessionUser {
  keyId: string;
  keyName: string;
}

/** An SMTP reply: smtp-server sends `responseCode` and the message (enhanced status code included). */
function reply(code: number, text: string): Error & { responseCode: number } {
  return Object.assign(new Error(text), { responseCode: code });
}

const SHUTTING_DOWN = () => reply(421, '4.3.2 Mailroom is shutting down; try again in a moment');

/**
 * An envelope address with its domain in ASCII: smtp-server turns a punycode domain into Unicode
 * (xn--bcher-kva.example becomes bücher.example), while the outbox and the REST API take ASCII
 * addresses only, and without SMTPUTF8 a mail server must get the punycode form (RFC 5890 §2.3.2.1).
 */
function asciiAddress(address: string): string {
  const at = address.lastIndexOf('@');
  if (at === -1 || /^[\x00-\x7f]*$/.test(address)) return address;
  const domain = domainToASCII(address.slice(at + 1));
  return domain ? `${address.slice(0, at)}@${domain}` : address;
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

/**
 * The SMTP submission endpoint (RFC 6409) for applications that cannot do OAuth: they log in with an
 * API key as the password and hand over a finished message, which goes into the outbox as it is and
 * is sent through the chosen mail server's OAuth connection. The `250` after DATA comes only once the
 * message is committed, so a client that got it may forget the message.
 */
export class SubmissionListener {
  private readonly servers: SMTPServer[] = [];
  private closing = false;
  private readonly commits = new Set<Promise<unknown>>();
  /** Open connections per client address, and in all, counted from onConnect to onClose (both ports). */
  private readonly perAddress = new Map<string, number>();
  /** Refusals per address in the current minute, for their log line (bounded: cleared past 10,000 addresses). */
  private readonly refusals = new Map<string, { count: number; since: number }>();
  private readonly counted = new WeakSet<SMTPServerSession>();
  private clients = 0;

  constructor(private readonly deps: SubmissionDeps) {}

  /** smtp-server's callback threw (a session already gone): logged, never an unhandled rejection. */
  private readonly sessionBug = (e: unknown) => this.deps.logger.error({ err: e, event: 'submission.session_error' }, 'SMTP session callback failed');

  /** Listens on the configured ports; resolves with the ports bound. */
  async listen(): Promise<Array<{ port: number; implicitTls: boolean }>> {
    const { config, host } = this.deps;
    const bound: Array<{ port: number; implicitTls: boolean }> = [];
    const wanted = [
      ...(config.starttlsPort !== null ? [{ port: config.starttlsPort, implicitTls: false }] : []),
      ...(config.tlsPort !== null ? [{ port: config.tlsPort, implicitTls: true }] : []),
    ];
    for (const w of wanted) {
      const server = new SMTPServer(this.options(w.implicitTls));
      // Socket errors of single clients (resets, TLS handshakes gone wrong) end their session only.
      server.on('error', (err: Error & { remoteAddress?: string }) =>
        this.deps.logger.debug({ event: 'submission.client_error', clientAddress: err.remoteAddress, message: err.message }, 'SMTP client error'),
      );
      // Replies are small writes the client waits for before its next command: Nagle's algorithm
      // would hold one back until the previous segment is acknowledged (as Dovecot and Postfix, no delay).
      server.server.on('connection', (socket: Socket) => socket.setNoDelay(true));
      await new Promise<void>((resolve, reject) => {
        server.server.once('error', reject);
        server.listen(w.port, host, () => {
          server.server.off('error', reject);
          resolve();
        });
      });
      this.servers.push(server);
      bound.push({ port: (server.server.address() as AddressInfo).port, implicitTls: w.implicitTls });
    }
    return bound;
  }

  /** Stops accepting, lets sessions finish their message (up to 10 s), waits for their commits. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    await Promise.allSettled([...this.commits]);
  }

  private options(implicitTls: boolean): SMTPServerOptions {
    const { config } = this.deps;
    const tls = config.tls;
    return {
      name: this.deps.hostname,
      banner: 'Mailroom submission',
      secure: implicitTls,
      ...(tls && { key: tls.key, cert: tls.cert, minVersion: 'TLSv1.2' }),
      // Without a certificate there is no STARTTLS; the config allows that only with the loopback flag.
      disabledCommands: tls ? [] : ['STARTTLS'],
      authMethods: ['PLAIN', 'LOGIN'],
      // smtp-server's own check (538 before STARTTLS) applies to everyone; with the loopback flag it is
      // relaxed here and made per client in onAuth.
      allowInsecureAuth: config.allowInsecureAuthOnLoopback,
      size: this.deps.maxMessageBytes,
      closeTimeout: CLOSE_TIMEOUT_MS,
      // Our limits answer 421 in onConnect. smtp-server's own, set above them, is a backstop counted
      // from the first byte: it bounds sockets still in their implicit TLS handshake (dropped) and a
      // flood that arrives faster than onConnect runs.
      maxClients: config.maxClients + config.maxConnectionsPerAddress,
      socketTimeout: config.idleTimeoutMs,
      // A PTR query per connection lets any client make Mailroom send DNS queries; the name is only
      // ever used in smtp-server's logs, which are off.
      disableReverseLookup: !config.reverseLookup,
      // Addresses are checked as the REST API does (ASCII, domains in punycode) and the outbox's
      // mail servers are not asked for SMTPUTF8: announcing it would promise what cannot be kept.
      hideSMTPUTF8: true,
      logger: false,
      onConnect: (session, cb) => cb(this.closing ? SHUTTING_DOWN() : (this.admit(session) ?? this.refuseCleartextFromAfar(session))),
      onClose: (session) => this.release(session),
      onAuth: (auth, session, cb) => {
        this.authenticate(auth.username ?? '', auth.password ?? '', session).then(
          (user) => cb(null, { user }),
          (e: Error) => cb(e),
        ).catch(this.sessionBug);
      },
      onMailFrom: (address, session, cb) => {
        if (address.args && address.args.SMTPUTF8) {
          return cb(reply(555, '5.6.7 SMTPUTF8 is not supported: use ASCII addresses (international domains in punycode, xn--...)'));
        }
        this.mailFrom(address).then(
          () => cb(),
          (e: Error) => cb(e),
        ).catch(this.sessionBug);
      },
      onRcptTo: (address, session, cb) => cb(this.rcptTo(address, session)),
      onData: (stream, session, cb) => {
        this.data(stream, session).then(
          (text) => cb(null, text),
          (e: Error) => cb(e),
        ).catch(this.sessionBug);
      },
    };
  }

  /**
   * Counts the connection and refuses it past SMTP_MAX_CLIENTS or SMTP_MAX_CONNECTIONS_PER_ADDRESS:
   * 421 (RFC 5321 §3.8), then smtp-server closes it. A refused connection counts until it is closed.
   */
  private admit(session: SMTPServerSession): Error | null {
    const { maxClients, maxConnectionsPerAddress } = this.deps.config;
    const address = session.remoteAddress;
    const n = (this.perAddress.get(address) ?? 0) + 1;
    this.perAddress.set(address, n);
    this.clients++;
    this.counted.add(session);
    if (this.clients > maxClients) {
      this.deps.logger.warn({ event: 'submission.too_many_clients', clientAddress: address, clients: this.clients - 1, maxClients }, 'SMTP connection refused: too many clients');
      return reply(421, `4.7.0 Too many SMTP clients are connected (${maxClients}, SMTP_MAX_CLIENTS); try again in a moment`);
    }
    if (n > maxConnectionsPerAddress) {
      // Logged once per 100 refusals of an address in a minute, however fast the refused ones close:
      // a client that opens thousands must not flood the log.
      const now = Date.now();
      let r = this.refusals.get(address);
      if (!r || now - r.since > 60_000) {
        if (this.refusals.size >= 10_000) this.refusals.clear();
        r = { count: 0, since: now };
        this.refusals.set(address, r);
      }
      if (r.count++ % 100 === 0) {
        this.deps.logger.warn({ event: 'submission.too_many_connections', clientAddress: address, connections: n - 1, maxConnectionsPerAddress, refusedThisMinute: r.count }, 'SMTP connection refused: too many from one address');
      }
      return reply(421, `4.7.0 Too many connections from ${address} (${maxConnectionsPerAddress}, SMTP_MAX_CONNECTIONS_PER_ADDRESS); close idle ones or try again in a moment`);
    }
    return null;
  }

  private release(session: SMTPServerSession): void {
    if (!this.counted.has(session)) return;
    this.counted.delete(session);
    this.clients--;
    const n = (this.perAddress.get(session.remoteAddress) ?? 1) - 1;
    if (n > 0) this.perAddress.set(session.remoteAddress, n);
    else this.perAddress.delete(session.remoteAddress);
  }

  /** Without TLS configured, only clients on this machine may connect at all. */
  private refuseCleartextFromAfar(session: SMTPServerSession): Error | null {
    if (this.deps.config.tls || isLoopback(session.remoteAddress)) return null;
    return reply(554, '5.7.0 This port has no TLS and accepts only local connections: set SMTP_TLS_CERT and SMTP_TLS_KEY to accept clients from other machines');
  }

  private async authenticate(username: string, password: string, session: SMTPServerSession): Promise<SessionUser> {
    if (this.closing) throw SHUTTING_DOWN();
    const { logger } = this.deps;
    const clientAddress = session.remoteAddress;
    if (!session.secure && !isLoopback(clientAddress)) {
      throw reply(538, '5.7.11 Encryption required: issue STARTTLS first (AUTH without TLS is allowed only from this machine)');
    }
    // Counted by address and by the key tried, never by the username: it is free text anyone can
    // repeat, and 55 wrong keys under a real client's name from elsewhere must not lock that client
    // out. A hash, so the counters table holds no key.
    const account = `key:${createHash('sha256').update(`smtp-auth\0${password}`).digest('hex').slice(0, 32)}`;
    const limited = async (retryAfterMs: number) => {
      const which = await this.deps.limiter.limitedBy(clientAddress, account).catch(() => null);
      const minutes = Math.ceil((which?.retryAfterMs ?? retryAfterMs) / 60_000);
      const wait = `try again in ${minutes} minute${minutes === 1 ? '' : 's'}`;
      logger.warn({ event: 'submission.auth_limited', clientAddress, username, limitedBy: which?.by ?? 'address' }, 'SMTP AUTH refused: too many failed attempts');
      return reply(
        454,
        which?.by === 'account'
          ? `4.7.0 This API key was refused too many times (from any address); ${wait}, or use a valid key (Settings > Technical > API Keys)`
          : which?.by === 'pair'
            ? `4.7.0 Too many failed logins with this API key from ${clientAddress}; ${wait}`
            : `4.7.0 Too many failed logins from ${clientAddress}; ${wait}`,
      );
    };
    const unavailable = (e: unknown) => {
      logger.error({ err: e, event: 'submission.auth_unavailable', clientAddress }, 'SMTP AUTH could not be checked');
      return reply(454, '4.7.0 Temporary authentication failure (the database is busy or unavailable); try again later');
    };
    // Only failures count (LoginLimiter.failed): one client's many parallel connections must not
    // use up its own allowance, and a 256-bit key cannot be guessed within any limit anyway.
    let key: Awaited<ReturnType<ApiKeyService['authenticate']>>;
    try {
      const wait = await this.deps.limiter.limitedFor(clientAddress, account);
      if (wait > 0) throw await limited(wait);
      key = await this.deps.apiKeys.authenticate(password);
    } catch (e) {
      throw (e as { responseCode?: number }).responseCode ? e : unavailable(e);
    }
    if (!key || !scopeAllows(key.scopes, 'send')) {
      let counted: Awaited<ReturnType<LoginLimiter['failed']>>;
      try {
        counted = await this.deps.limiter.failed(clientAddress, account);
      } catch (e) {
        throw unavailable(e);
      }
      if (!counted.ok) throw await limited(counted.retryAfterMs);
      // A wrong scope is said as such: only the key's holder can see it.
      logger.warn({ event: 'submission.auth_failed', clientAddress, username, reason: key ? 'scope' : 'unknown key' }, 'SMTP AUTH failed');
      throw reply(
        535,
        key
          ? `5.7.8 This API key has scope ${key.scopes.join(', ') || 'none'}; sending needs a key with scope send or admin (Settings > Technical > API Keys)`
          : '5.7.8 Authentication credentials invalid: the password must be a Mailroom API key with scope send (Settings > Technical > API Keys); the username may be the key\'s name',
      );
    }
    logger.info({ event: 'submission.auth_ok', clientAddress, apiKeyId: key.id }, 'SMTP client logged in');
    return { keyId: key.id, keyName: key.name };
  }

  private async mailFrom(address: SMTPServerAddress): Promise<void> {
    if (this.closing) throw SHUTTING_DOWN();
    if (!address.address) throw reply(550, '5.1.7 A sender address is required: MAIL FROM:<sender@your-domain>, the address a mail server here may send as');
    let from: string;
    try {
      from = parseMailbox(asciiAddress(address.address)).address;
    } catch (e) {
      throw reply(553, `5.1.7 The sender ${(e as Error).message}`);
    }
    let choice: Awaited<ReturnType<OutboxService['chooseFor']>>;
    try {
      choice = await this.deps.outbox.chooseFor(from);
    } catch (e) {
      this.deps.logger.error({ err: e, event: 'submission.unavailable' }, 'mail servers could not be read');
      throw reply(451, '4.3.0 Mailroom cannot read its mail servers just now (database busy or unavailable); try again later');
    }
    if (!choice.ok) throw reply(550, `5.7.1 ${choice.reason} ${choice.fix ?? ''}`.trim());
  }

  private rcptTo(address: SMTPServerAddress, session: SMTPServerSession): Error | null {
    if (this.closing) return SHUTTING_DOWN();
    try {
      parseMailbox(asciiAddress(address.address));
    } catch (e) {
      return reply(553, `5.1.3 The recipient ${(e as Error).message}`);
    }
    // RFC 5321 §4.5.3.1.10: 452 for too many recipients; the client sends the rest in another message.
    if (session.envelope.rcptTo.length >= MAX_RECIPIENTS) return reply(452, `4.5.3 Too many recipients: at most ${MAX_RECIPIENTS} per message`);
    return null;
  }

  private async data(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (c: Buffer) => {
        size += c.length;
        // Past the limit the rest is read (the client is still sending) but not kept.
        if (size <= this.deps.maxMessageBytes) chunks.push(c);
      });
      stream.once('end', resolve);
      stream.once('error', reject);
    });
    if (stream.sizeExceeded || size > this.deps.maxMessageBytes) {
      throw reply(552, `5.3.4 The message is ${(size / 1048576).toFixed(1)} MB; the limit is ${(this.deps.maxMessageBytes / 1048576).toFixed(1)} MB (MAX_MESSAGE_MB)`);
    }
    const user = session.user as SessionUser;
    const refused = (reason: string, field: string) =>
      this.deps.logger.warn({ event: 'submission.refused', clientAddress: session.remoteAddress, apiKeyId: user.keyId, field, reason }, 'a message received over SMTP was refused');
    const message = Buffer.concat(chunks);
    const forbidden = forbiddenBytes(message);
    if (forbidden) {
      refused(forbidden, 'message');
      throw reply(554, `5.6.0 ${forbidden} Nothing was queued: fix what builds the message (line ends CRLF, no NUL), then send it again`);
    }
    const mailFrom = session.envelope.mailFrom ? asciiAddress(session.envelope.mailFrom.address) : '';
    // The envelope as the client gave it (checked at MAIL FROM and RCPT TO), domains in ASCII.
    const envelope = { from: mailFrom, to: session.envelope.rcptTo.map((r) => asciiAddress(r.address)) };
    const { raw, owners } = prepareSubmitted(message, mailFrom.slice(mailFrom.lastIndexOf('@') + 1).toLowerCase());
    if (owners.length > 1 || owners.some((o) => o === '' || o.length > 200)) {
      throw reply(550, '5.6.0 Give X-Mailroom-Owner once, with the owner\'s id (1-200 characters); nothing was queued');
    }
    const commit = this.deps.outbox.enqueueRaw({
      raw,
      owner: owners[0] ?? null,
      envelope,
      apiKeyId: user.keyId,
      receivedVia: { protocol: 'smtp', clientAddress: session.remoteAddress, apiKeyName: user.keyName },
    });
    this.commits.add(commit);
    try {
      const m = await commit;
      this.deps.logger.info(
        { event: 'submission.queued', messageId: m.id, mailServerId: m.mailServerId, clientAddress: session.remoteAddress, apiKeyId: user.keyId, sizeBytes: raw.length },
        'message received over SMTP and queued',
      );
      return `2.6.0 Queued as ${m.id} for delivery through "${m.mailServerName}"`;
    } catch (e) {
      // A message that can never be sent as it is (unreadable, a sender field that does not parse) is
      // 554 5.6.0: a permanent answer, so the client does not retry it for ever.
      if (isMailroomError(e, 'MR_UNPROCESSABLE')) {
        refused(e.message, e.field ?? 'from');
        const [code, status] = e.field === 'message' ? [554, '5.6.0'] : [550, '5.7.1'];
        throw reply(code, `${status} ${e.message} ${e.fix ?? ''}`.trim());
      }
      this.deps.logger.error({ err: e, event: 'submission.store_failed', clientAddress: session.remoteAddress }, 'a message received over SMTP could not be stored');
      throw reply(451, '4.3.0 Mailroom could not store the message just now (database busy or unavailable); nothing was queued, send it again');
    } finally {
      this.commits.delete(commit);
    }
  }
}
