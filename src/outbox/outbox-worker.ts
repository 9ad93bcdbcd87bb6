import { randomUUID } from 'node:crypto';
import type { OutboxConfig } from '../config/config.ts';
import { diagnose, explain } from '../diagnose/diagnose.ts';
import type { ApplicationContext, Evidence, OAuthEvidence } from '../diagnose/evidence.ts';
import { isMailroomError } from '../errors/errors.ts';
import type { Logger } from '../logger.ts';
import type { TokenManager } from '../oauth/token-manager.ts';
import { authMethodOf } from '../credentials/auth-methods.ts';
import { SmtpError } from '../smtp/smtp-client.ts';
import { type ConnectionGate, type ConnectionGates, localGate } from '../smtp/connection-gate.ts';
import { PooledSender, smtpGateKey } from '../smtp/smtp-pool.ts';
import type { MailSender } from '../smtp/smtp-client.ts';
import { GraphError } from '../graph/graph-client.ts';
import { GraphSender } from '../graph/graph-sender.ts';
import type { Db } from '../storage/database.ts';
import { findMailServer, listMailServers, mailServersVersion, type MailServerRecord, type StoredError } from '../storage/mail-server-store.ts';
import {
  ByteBudget,
  type Claimed,
  claimDue,
  claimForServers,
  dayWindow,
  holdServerUntil,
  markFailed,
  markHeld,
  markRetry,
  markSentMany,
  reclaimAll,
  releaseHeld,
  renewLeases,
  serversWithDue,
} from '../storage/outbox-store.ts';
import { perTurn } from '../storage/per-turn.ts';
import { LIMIT_LABELS } from '../servers/send-limits.ts';
import { pace } from './pacing.ts';
import { decide, type Failure } from './retry-policy.ts';
import { isDatabaseUnavailable } from '../storage/database.ts';

const IDLE_POLL_MS = 500;
/** Exchange serves at most 4 concurrent Graph requests per mailbox (MailboxConcurrency). */
const GRAPH_CONCURRENT_REQUESTS = 4;
const RELEASE_EVERY_MS = 2000;
const DAY_MS = 24 * 3600_000;
const CREDENTIAL_CODES = new Set(['MR_OAUTH_RECONNECT_NEEDED', 'MR_OAUTH_NOT_CONNECTED', 'MR_OAUTH_NOT_CONFIGURED', 'MR_SECRET_TAMPERED', 'MR_SECRET_KEY_UNKNOWN']);

/** Error → what the retry policy needs, plus what the admin sees on the message. */
export function classify(e: unknown, now: Date, sender?: { from: string; mailbox: string }, application?: ApplicationContext): { failure: Failure; error: StoredError } {
  if (e instanceof GraphError || e instanceof SmtpError) {
    // An app token's refusal has other causes and fixes (the app's mailbox rights) than a person's.
    const x = explain(application ? ({ ...e.evidence, application } as Evidence) : e.evidence, e.message, sender);
    return { failure: { kind: 'delivery', evidence: e.evidence }, error: { code: x.code, message: x.message, fix: x.fix, evidence: x.evidence, at: now.toISOString() } };
  }
  if (isMailroomError(e)) {
    const ev = e.evidence as Evidence | undefined;
    const oauth = ev?.kind === 'oauth' ? (ev as OAuthEvidence) : undefined;
    const clientRejected = oauth !== undefined && (oauth.error === 'invalid_client' || oauth.error === 'unauthorized_client');
    const credentials = CREDENTIAL_CODES.has(e.code) || clientRejected;
    return {
      failure: credentials ? { kind: 'credentials' } : { kind: 'token_unavailable' },
      error: {
        code: oauth ? diagnose(oauth).code : e.code,
        message: e.message,
        ...(e.fix !== undefined && { fix: e.fix }),
        ...(e.evidence !== undefined && { evidence: e.evidence }),
        at: now.toISOString(),
      },
    };
  }
  return {
    failure: { kind: 'token_unavailable' },
    error: { code: 'MR_INTERNAL', message: `Unexpected error while sending: ${(e as Error)?.message ?? String(e)}`, at: now.toISOString() },
  };
}

export interface OutboxWorkerDeps {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  config: OutboxConfig;
  /** Microsoft Graph's API host, for servers that send with Graph. */
  graphHost: string;
  /** Access tokens and logins: the token manager, or (on the delivery thread) the main thread's, asked over the thread boundary. */
  /** Access tokens and logins; the application ids that explain an app token's refusal. */
  tokens: Pick<TokenManager, 'getAccessToken' | 'getLogin' | 'applicationContext'>;
  /** Connection slots per mailbox, shared with Test Connection and Send test email. */
  gates: ConnectionGates;
  logger: Logger;
  now?: () => Date;
}

/** What the admin sees on a message held because the mailbox's daily recipient limit is used up. */
export function quotaHeldError(server: MailServerRecord, until: Date, now: Date, reply?: { code: string; message: string; evidence?: Record<string, unknown> }): StoredError {
  const limit = server.limits.recipientsPerDay;
  const limitText = limit === null ? 'its sending quota' : `its limit of ${limit.toLocaleString('en-US')} recipients in 24 hours (${LIMIT_LABELS.recipientsPerDay})`;
  return {
    code: reply?.code ?? 'MR_SEND_QUOTA_REACHED',
    message: `${reply ? `${reply.message} ` : ''}The mailbox ${server.username} reached ${limitText}. Its mail waits and goes out by itself from ${until.toISOString()}.`,
    fix: `Nothing to do: held mail is sent when the 24-hour window allows. To send more per day, raise ${LIMIT_LABELS.recipientsPerDay} on the mail server if the mailbox's plan allows it (High Volume Email, a relay), or spread the mail over several mailboxes.`,
    ...(reply?.evidence && { evidence: reply.evidence }),
    at: now.toISOString(),
  };
}

/**
 * Drains the outbox: claims due messages under a short lease that a heartbeat renews while they are
 * sent (a crashed worker's messages are taken over once its lease runs out, within seconds), sends
 * each through a pooled connection per mail server, and records the outcome. At most `concurrency`
 * messages are in flight. On SQLite one process owns the outbox, so at start it takes back every claim
 * a crash left behind at once.
 */
export class OutboxWorker {
  readonly id = `worker-${randomUUID()}`;
  private running = false;
  private inflight = 0;
  /** Stored bytes of the messages in flight, kept under OUTBOX_INFLIGHT_MB. */
  private inflightBytes = 0;
  private loopDone: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private kicked = false;
  /** The last claim left messages out for want of bytes in flight (OUTBOX_INFLIGHT_MB). */
  private bytesShort = false;
  private readonly pools = new Map<string, { sender: MailSender; signature: string }>();
  private lastRelease = 0;
  /** Loop errors in a row (the database down): the idle wait grows to 10 s, and resets on success. */
  private failures = 0;
  private servers: { version: string; list: Promise<MailServerRecord[]> } | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  /** Messages in flight per mail server. */
  private readonly inflightBy = new Map<string, number>();
  /** Paced mailboxes at their rate: when (Mailroom's clock, which tests may move) the next message may go. */
  private readonly pacedUntil = new Map<string, number>();
  /** Where the next turn over the paced mailboxes starts. */
  private rotation = 0;

  /** SMTP_MAX_OPEN_CONNECTIONS: SMTP connections open at once in this instance, over all mailboxes. */
  private readonly instanceGate: ConnectionGate;

  constructor(private readonly deps: OutboxWorkerDeps) {
    this.instanceGate = localGate(deps.config.maxOpenConnections);
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    // A third of the lease: two heartbeats may be missed (a slow disk, a busy event loop) before a
    // live worker's claim could be taken over.
    this.heartbeat = setInterval(() => void this.renew().catch(() => undefined), Math.max(100, Math.floor(this.deps.config.leaseMs / 3)));
    this.loopDone = this.recoverClaims()
      .then(() => this.loop())
      .catch((e: unknown) => this.deps.logger.error({ err: e, event: 'outbox.loop_error' }, 'outbox worker stopped on an unexpected error'));
  }

  private async recoverClaims(): Promise<void> {
    if (this.deps.dialect !== 'sqlite') return;
    try {
      const n = await reclaimAll(this.deps.db, this.now());
      if (n) this.deps.logger.warn({ event: 'outbox.reclaimed', count: n }, 'messages claimed by a process that stopped mid-send are queued again');
    } catch (e) {
      this.deps.logger.error({ err: e, event: 'outbox.reclaim_error' }, 'could not take back claims left by an earlier process');
    }
  }

  private async renew(): Promise<void> {
    if (this.inflight === 0) return;
    try {
      await renewLeases(this.deps.db, this.id, this.now(), this.deps.config.leaseMs);
    } catch (e) {
      this.deps.logger.warn({ err: e, event: 'outbox.heartbeat_error' }, 'could not renew the claims of messages being sent');
    }
  }

  /** New work is waiting: skip the idle wait. */
  kick(): void {
    // Kept until the loop looks again: a kick during a claim that found nothing is not lost to the idle wait.
    this.kicked = true;
    this.wake?.();
  }

  /** Stops claiming, waits for messages in flight, closes connections. */
  async stop(): Promise<void> {
    this.running = false;
    this.kick();
    await this.loopDone;
    while (this.inflight > 0) await new Promise((r) => setTimeout(r, 20));
    clearInterval(this.heartbeat);
    for (const { sender } of this.pools.values()) sender.close();
    this.pools.clear();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      let claimed = 0;
      this.kicked = false;
      try {
        if (Date.now() - this.lastRelease > RELEASE_EVERY_MS) {
          this.lastRelease = Date.now();
          const released = await releaseHeld(this.deps.db, this.now());
          if (released) this.deps.logger.info({ event: 'outbox.released', count: released }, 'held messages back in the queue');
        }
        const capacity = this.deps.config.concurrency - this.inflight;
        // Claim in batches: one claim transaction (and fsync) for several messages, not one each.
        const minBatch = Math.max(1, Math.floor(this.deps.config.concurrency / 4));
        const bytesLeft = this.deps.config.inflightBytes - this.inflightBytes;
        if (capacity > 0 && (this.inflight === 0 || (capacity >= minBatch && bytesLeft > 0))) {
          const bytes = new ByteBudget(bytesLeft, this.inflight === 0);
          const batch: Claimed[] = [];
          const servers = await this.serverList();
          const paced = servers.filter((s) => s.limits.messagesPerMinute !== null || s.limits.recipientsPerDay !== null);
          // A mailbox with as many messages in flight as it has connections gets no more now: more
          // would only wait for its connections while holding slots the other mailboxes could use.
          const busy = servers.filter((s) => (this.inflightBy.get(s.id) ?? 0) >= this.laneCap(s)).map((s) => s.id);
          const busySet = new Set(busy);
          const nowMs = this.now().getTime();
          // Paced mailboxes are counted one by one (in one transaction on SQLite, one each on
          // PostgreSQL): only those with mail due, not at their rate until their next minute slot,
          // taken in turn from a rotating start.
          const due = paced.length ? await serversWithDue(this.deps.db, this.now()) : new Set<string>();
          const turn = paced.filter((s) => due.has(s.id) && !busySet.has(s.id) && (this.pacedUntil.get(s.id) ?? 0) <= nowMs);
          const start = turn.length ? this.rotation++ % turn.length : 0;
          const order = turn.map((_, k) => turn[(start + k) % turn.length]!);
          if (order.length) batch.push(...(await this.claimPaced(order, (server, taken) => Math.min(capacity - taken, this.laneCap(server) - (this.inflightBy.get(server.id) ?? 0)), bytes)));
          if (batch.length < capacity) {
            const skip = new Set([...paced.map((p) => p.id), ...busy]);
            // The shorter list in the statement: a thousand paced mailboxes beside one unpaced one
            // make "in (1 id)", not "not in (1,000 ids)" on every claim.
            const open = servers.filter((s) => !skip.has(s.id)).map((s) => s.id);
            const which = open.length < skip.size ? { only: open } : [...skip];
            batch.push(...(await claimDue(this.deps.db, this.deps.dialect, this.id, this.now(), this.deps.config.leaseMs, capacity - batch.length, which, Math.min(this.share, 2 * this.deps.config.poolSize), bytes)));
          }
          claimed = batch.length;
          this.bytesShort = bytes.short;
          // Each claimed mailbox's lane cap: a delivery that frees a full lane wakes the loop.
          const lanes = new Set(batch.map((m) => m.mailServerId));
          const capOf = new Map(servers.filter((s) => lanes.has(s.id)).map((s) => [s.id, this.laneCap(s)]));
          if (this.failures) this.deps.logger.info({ event: 'outbox.resumed', after: this.failures }, 'outbox worker resumed');
          this.failures = 0;
          for (const m of batch) {
            this.inflight++;
            this.inflightBytes += m.sizeBytes;
            const key = m.mailServerId ?? '';
            this.inflightBy.set(key, (this.inflightBy.get(key) ?? 0) + 1);
            void this.deliver(m)
              .catch((e: unknown) => this.deps.logger.error({ err: e, event: 'outbox.deliver_error', messageId: m.id }, 'delivery bookkeeping failed'))
              .finally(() => {
              this.inflight--;
              this.inflightBytes -= m.sizeBytes;
              const left = (this.inflightBy.get(key) ?? 1) - 1;
              if (left > 0) this.inflightBy.set(key, left);
              else this.inflightBy.delete(key);
              // Look again only when this delivery lets a claim take something it could not before:
              // the worker is empty, its free slots just reached a batch, the mailbox's full lane has
              // room again, or bytes were short. Otherwise a claim per delivery finds nothing (or one
              // message) and costs a transaction.
              const cap = capOf.get(key);
              if (this.inflight === 0 || this.deps.config.concurrency - this.inflight === minBatch || cap === undefined || left === cap - 1 || this.bytesShort) this.kick();
            });
          }
        }
      } catch (e) {
        // Log the first failure of a run, then back off quietly until the database answers again.
        if (this.failures++ === 0) this.deps.logger.error({ err: e, event: 'outbox.loop_error' }, 'outbox worker error; retrying with backoff');
      }
      if (this.running && !this.kicked && (claimed === 0 || this.inflight >= this.deps.config.concurrency)) {
        await new Promise<void>((resolve) => {
          const idle = this.deps.config.pollMs ?? IDLE_POLL_MS;
          const t = setTimeout(resolve, this.failures ? Math.min(10_000, idle * 2 ** Math.min(this.failures, 5)) : idle);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = undefined;
      }
    }
  }

  /**
   * The outgoing servers, read again whenever one was added, deleted or saved (the revision counter,
   * one row). A list kept for a time instead missed a server just added: its messages were claimed
   * as an unpaced mailbox's, past its messages-per-minute limit.
   */
  private async serverList(): Promise<MailServerRecord[]> {
    const version = await mailServersVersion(this.deps.db);
    if (!this.servers || this.servers.version !== version) this.servers = { version, list: listMailServers(this.deps.db) };
    const entry = this.servers;
    return entry.list.catch((e: unknown) => {
      if (this.servers === entry) this.servers = undefined;
      throw e;
    });
  }

  /**
   * Messages of one mailbox in flight at once: two for each of its connections (Graph: its 4
   * concurrent requests), so a connection finds its next message waiting instead of a claim per
   * message, and the rest of the worker's slots stay free for the other mailboxes: never more
   * than half of OUTBOX_CONCURRENCY.
   */
  private laneCap(server: MailServerRecord): number {
    const pool = server.transport === 'graph' ? GRAPH_CONCURRENT_REQUESTS : this.deps.config.poolSize;
    return Math.min(this.share, 2 * Math.max(1, Math.min(pool, server.limits.maxConnections ?? Infinity)));
  }

  /** Half of the worker's slots: the most one mailbox may hold. */
  private get share(): number {
    return Math.max(1, Math.floor(this.deps.config.concurrency / 2));
  }

  /**
   * Claims what each server's limits allow now, counted from the sent rows in the same transaction,
   * the servers one after another up to `room`. When a daily recipient limit is reached, that
   * server's queued mail is held until the window frees enough recipients: never failed for it.
   */
  private async claimPaced(servers: MailServerRecord[], room: (server: MailServerRecord, claimedSoFar: number) => number, bytes: ByteBudget): Promise<Claimed[]> {
    const { db, dialect, config, logger } = this.deps;
    const now = this.now();
    const byId = new Map(servers.map((s) => [s.id, s]));
    // The servers in turn, in one claim (one commit on SQLite), each up to the room the ones before left.
    const results = await claimForServers(db, dialect, servers.map((s) => s.id), this.id, now, config.leaseMs, (id, taken) => room(byId.get(id)!, taken), async (id, usage, due, trx) => {
      const server = byId.get(id)!;
      const perDay = server.limits.recipientsPerDay;
      // The messages that fit in the bytes left in flight, then what the limits allow of them.
      const fitting = due.slice(0, bytes.fit(due.map((d) => d.sizeBytes)));
      const wanted = usage.recipientsLastDay + fitting.reduce((n, d) => n + d.recipients, 0);
      const window = perDay !== null && wanted > perDay ? await dayWindow(trx, server.id, now) : [];
      const p = pace(server.limits, usage, fitting.map((d) => d.recipients), now, () => window);
      bytes.fit(fitting.slice(0, p.take).map((d) => d.sizeBytes), true);
      return { ids: fitting.slice(0, p.take).map((d) => d.id), pace: p };
    });
    const claimed: Claimed[] = [];
    for (const [id, { claimed: mine, choice }] of results) {
      const server = byId.get(id)!;
      claimed.push(...mine);
      // At its rate: the mailbox is not counted again before its next message may go.
      const next = choice?.pace.nextAt;
      if (next) this.pacedUntil.set(server.id, next.getTime());
      else this.pacedUntil.delete(server.id);
      const until = choice?.pace.quotaUntil;
      if (until) {
        const held = await holdServerUntil(db, server.id, until, quotaHeldError(server, until, now), now);
        logger.warn({ event: 'outbox.quota_held', mailServerId: server.id, count: held, until: until.toISOString() }, 'daily recipient limit reached; mail held until the window frees');
      }
    }
    return claimed;
  }

  /**
   * The server itself said its quota is used up (Exchange's SubmissionQuotaExceededException, or the
   * tenant's external recipient limit), perhaps counting mail sent by others from the same mailbox:
   * resume when our oldest send of the last 24 h leaves the window, and not sooner than the policy says.
   */
  private async quotaResumeAt(server: MailServerRecord, now: Date, minMs: number): Promise<Date> {
    const [oldest] = await dayWindow(this.deps.db, server.id, now);
    const byWindow = oldest ? Date.parse(oldest.at) + DAY_MS : now.getTime() + 3600_000;
    return new Date(Math.max(now.getTime() + minMs, byWindow));
  }

  /** Deliveries finished in the same event-loop turn are recorded in one transaction. */
  private readonly recordSent = perTurn<{ id: string; smtpResponse: string }, boolean>((sent) => markSentMany(this.deps.db, this.id, sent, this.now()));

  /** The server's transport: pooled SMTP connections, or Microsoft Graph over HTTPS. */
  private senderFor(server: MailServerRecord): MailSender {
    const signature = [server.transport, server.authType, server.smtpHost, server.smtpPort, server.smtpSecurity, server.username, server.limits.maxConnections, server.updatedAt].join('|');
    const existing = this.pools.get(server.id);
    if (existing?.signature === signature) return existing.sender;
    existing?.sender.retire();
    const getToken = (forceRefresh: boolean) => this.deps.tokens.getAccessToken(server.id, { forceRefresh });
    const getLogin = (forceRefresh: boolean) => this.deps.tokens.getLogin(server.id, { forceRefresh });
    const sender: MailSender =
      server.transport === 'graph'
        ? // Exchange serves at most 4 concurrent Graph requests per mailbox (MailboxConcurrency): more only earn 429s.
          new GraphSender(this.deps.graphHost, server.username, getToken, this.deps.gates)
        : new PooledSender(
      { host: server.smtpHost, port: server.smtpPort, security: server.smtpSecurity, auth: authMethodOf(server).mechanism },
      server.username,
      getLogin,
      Math.min(this.deps.config.poolSize, server.limits.maxConnections ?? Infinity),
      this.deps.gates.for(smtpGateKey(server.smtpHost, server.username), server.limits.maxConnections),
      { instanceGate: this.instanceGate, idleCloseMs: this.deps.config.idleCloseMs },
    );
    this.pools.set(server.id, { sender, signature });
    return sender;
  }

  private async deliver(m: Claimed): Promise<void> {
    const { db, logger } = this.deps;
    const log = { messageId: m.id, mailServerId: m.mailServerId, attempt: m.attempts };
    let server: MailServerRecord | undefined;
    try {
      server = m.mailServerId ? await findMailServer(db, m.mailServerId) : undefined;
      if (!server) {
        await markFailed(db, m.id, this.id, { code: 'MR_NOT_FOUND', message: 'The mail server of this message was deleted.', fix: 'Retry the message: it will go through the server chosen now.', at: this.now().toISOString() }, this.now());
        return;
      }
      const p = m.payload;
      // A message received over SMTP goes out as it came; the others are built from their fields.
      const result = await this.senderFor(server).send(p.kind === 'raw' ? { envelope: p.envelope, raw: p.raw, bcc: m.bcc } : {
        from: p.from.name ? p.from : p.from.address,
        to: p.to.map((a) => (a.name ? a : a.address)),
        cc: p.cc.map((a) => (a.name ? a : a.address)),
        bcc: p.bcc.map((a) => (a.name ? a : a.address)),
        ...(p.replyTo && { replyTo: p.replyTo.name ? p.replyTo : p.replyTo.address }),
        subject: m.subject,
        ...(p.text !== null && { text: p.text }),
        ...(p.html !== null && { html: p.html }),
        headers: p.headers,
        messageId: m.messageId,
        attachments: p.attachments.map((a) => ({ filename: a.filename, contentType: a.contentType, content: Buffer.from(a.content, 'base64') })),
      });
      if (!(await this.recordSentPatiently(m.id, result.response))) {
        logger.warn({ ...log, event: 'outbox.lease_lost' }, 'message sent after its lease was taken over; it may be delivered twice');
      } else {
        logger.info({ ...log, event: 'outbox.sent', response: result.response }, 'message sent');
      }
    } catch (e) {
      if (isDatabaseUnavailable(e)) {
        // Not the message's fault: its claim stays in the row and runs out, then it is claimed again.
        logger.warn({ ...log, event: 'outbox.database_unavailable', err: (e as Error).message }, 'database unavailable; the message stays claimed until its lease runs out');
        return;
      }
      try {
        await this.recordFailure(m, server, e);
      } catch (e2) {
        logger.warn({ ...log, event: 'outbox.record_failed', err: (e2 as Error).message }, 'could not record the outcome; the message is retried when its lease runs out');
      }
    }
  }

  /**
   * Sent, but the database is down: keep trying to record it (up to a minute) rather than let the
   * lease run out and send it again.
   */
  private async recordSentPatiently(id: string, smtpResponse: string): Promise<boolean> {
    for (let wait = 500; ; wait *= 2) {
      try {
        return await this.recordSent({ id, smtpResponse });
      } catch (e) {
        if (!isDatabaseUnavailable(e) || wait > 32_000) throw e;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  private async recordFailure(m: Claimed, server: MailServerRecord | undefined, e: unknown): Promise<void> {
    const { db, logger } = this.deps;
    const log = { messageId: m.id, mailServerId: m.mailServerId, attempt: m.attempts };
    const now = this.now();
    // The From address (a stored From may carry a display name) and the mailbox, for a Send As refusal.
    const from = (/<([^<>]*)>\s*$/.exec(m.from)?.[1] ?? m.from).trim();
    const application = server && (e instanceof SmtpError || e instanceof GraphError) ? await this.deps.tokens.applicationContext(server.id).catch(() => undefined) : undefined;
    const { failure, error } = classify(e, now, server && { from, mailbox: server.username }, application);
    if (e instanceof GraphError && e.evidence.code === 'MailboxPaused') {
      // Not an attempt: Graph throttled the mailbox and its Retry-After has not passed, so nothing was
      // sent. The message waits (its attempt given back) and goes back to the queue when the pause ends.
      const until = new Date(now.getTime() + (e.evidence.retryAfterSeconds ?? 1) * 1000);
      await markHeld(db, m.id, this.id, error, now, until);
      logger.info({ ...log, event: 'outbox.graph_paused', until: until.toISOString() }, 'Microsoft Graph throttled the mailbox; the message waits for its Retry-After');
      return;
    }
    const decision = decide(failure, m.attempts, now.getTime() - Date.parse(m.queuedAt), this.deps.config);
    const fields = { ...log, event: `outbox.${decision.action}`, code: error.code };
    if (decision.action === 'retry') {
      await markRetry(db, m.id, this.id, new Date(now.getTime() + decision.delayMs), error, now);
      logger.warn({ ...fields, delayMs: decision.delayMs }, 'delivery failed, will retry');
    } else if (decision.action === 'hold' && decision.resumeInMs !== undefined && server) {
      const until = await this.quotaResumeAt(server, now, decision.resumeInMs);
      const held = quotaHeldError(server, until, now, error);
      await markHeld(db, m.id, this.id, held, now, until);
      const others = await holdServerUntil(db, server.id, until, held, now);
      logger.warn({ ...fields, until: until.toISOString(), othersHeld: others }, 'sending quota used up; the server\'s mail is held until the window frees');
    } else if (decision.action === 'hold') {
      await markHeld(db, m.id, this.id, error, now);
      logger.warn(fields, 'message held until the mail server is fixed');
    } else {
      await markFailed(db, m.id, this.id, error, now);
      logger.warn(fields, 'message failed');
    }
  }
}
