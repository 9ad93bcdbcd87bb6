import { randomUUID } from 'node:crypto';
import type { OutboxConfig } from '../config/config.ts';
import { diagnose } from '../diagnose/diagnose.ts';
import type { Evidence, OAuthEvidence } from '../diagnose/evidence.ts';
import { isMailroomError } from '../errors/errors.ts';
import type { Logger } from '../logger.ts';
import type { TokenManager } from '../oauth/token-manager.ts';
import { SmtpError } from '../smtp/smtp-client.ts';
import { PooledSender } from '../smtp/smtp-pool.ts';
import type { Db } from '../storage/database.ts';
import { findMailServer, type MailServerRecord, type StoredError } from '../storage/mail-server-store.ts';
import { type Claimed, claimDue, markFailed, markHeld, markRetry, markSentMany, releaseHeld } from '../storage/outbox-store.ts';
import { decide, type Failure } from './retry-policy.ts';

const IDLE_POLL_MS = 500;
const RELEASE_EVERY_MS = 2000;
const CREDENTIAL_CODES = new Set(['MR_OAUTH_RECONNECT_NEEDED', 'MR_OAUTH_NOT_CONNECTED', 'MR_OAUTH_NOT_CONFIGURED', 'MR_SECRET_TAMPERED', 'MR_SECRET_KEY_UNKNOWN']);

/** Error → what the retry policy needs, plus what the admin sees on the message. */
export function classify(e: unknown, now: Date): { failure: Failure; error: StoredError } {
  if (e instanceof SmtpError) {
    const d = diagnose(e.evidence);
    return {
      failure: { kind: 'delivery', evidence: e.evidence },
      error: { code: d.code, message: `${d.cause} The server said: ${e.message}`, fix: d.fix, evidence: { ...e.evidence, guideStep: d.guideStep }, at: now.toISOString() },
    };
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
  tokens: TokenManager;
  logger: Logger;
  now?: () => Date;
}

/**
 * Drains the outbox: claims due messages under a lease (a crashed worker's messages are taken over
 * when its lease runs out), sends each through a pooled connection per mail server, and records the
 * outcome. At most `concurrency` messages are in flight.
 */
export class OutboxWorker {
  readonly id = `worker-${randomUUID()}`;
  private running = false;
  private inflight = 0;
  private loopDone: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly pools = new Map<string, { sender: PooledSender; signature: string }>();
  private lastRelease = 0;
  private sentQueue: Array<{ id: string; smtpResponse: string; done: (ok: boolean) => void; fail: (e: unknown) => void }> = [];

  constructor(private readonly deps: OutboxWorkerDeps) {}

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  /** New work is waiting: skip the idle wait. */
  kick(): void {
    this.wake?.();
  }

  /** Stops claiming, waits for messages in flight, closes connections. */
  async stop(): Promise<void> {
    this.running = false;
    this.kick();
    await this.loopDone;
    while (this.inflight > 0) await new Promise((r) => setTimeout(r, 20));
    for (const { sender } of this.pools.values()) sender.close();
    this.pools.clear();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      let claimed = 0;
      try {
        if (Date.now() - this.lastRelease > RELEASE_EVERY_MS) {
          this.lastRelease = Date.now();
          const released = await releaseHeld(this.deps.db, this.now());
          if (released) this.deps.logger.info({ event: 'outbox.released', count: released }, 'held messages back in the queue');
        }
        const capacity = this.deps.config.concurrency - this.inflight;
        // Claim in batches: one claim transaction (and fsync) for several messages, not one each.
        const minBatch = Math.max(1, Math.floor(this.deps.config.concurrency / 4));
        if (capacity > 0 && (this.inflight === 0 || capacity >= minBatch)) {
          const batch = await claimDue(this.deps.db, this.deps.dialect, this.id, this.now(), this.deps.config.leaseMs, capacity);
          claimed = batch.length;
          for (const m of batch) {
            this.inflight++;
            void this.deliver(m).finally(() => {
              this.inflight--;
              this.kick();
            });
          }
        }
      } catch (e) {
        this.deps.logger.error({ err: e, event: 'outbox.loop_error' }, 'outbox worker error');
      }
      if (this.running && (claimed === 0 || this.inflight >= this.deps.config.concurrency)) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, IDLE_POLL_MS);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = undefined;
      }
    }
  }

  /** Deliveries finished in the same event-loop turn are recorded in one transaction. */
  private recordSent(id: string, smtpResponse: string): Promise<boolean> {
    return new Promise((done, fail) => {
      this.sentQueue.push({ id, smtpResponse, done, fail });
      if (this.sentQueue.length > 1) return;
      setImmediate(() => {
        const batch = this.sentQueue.splice(0);
        markSentMany(this.deps.db, this.id, batch, this.now()).then(
          (ok) => batch.forEach((b, i) => b.done(ok[i]!)),
          (e: unknown) => batch.forEach((b) => b.fail(e)),
        );
      });
    });
  }

  private senderFor(server: MailServerRecord): PooledSender {
    const signature = [server.smtpHost, server.smtpPort, server.smtpSecurity, server.username, server.updatedAt].join('|');
    const existing = this.pools.get(server.id);
    if (existing?.signature === signature) return existing.sender;
    existing?.sender.close();
    const sender = new PooledSender(
      { host: server.smtpHost, port: server.smtpPort, security: server.smtpSecurity },
      server.username,
      (forceRefresh) => this.deps.tokens.getAccessToken(server.id, { forceRefresh }),
      this.deps.config.poolSize,
    );
    this.pools.set(server.id, { sender, signature });
    return sender;
  }

  private async deliver(m: Claimed): Promise<void> {
    const { db, logger } = this.deps;
    const log = { messageId: m.id, mailServerId: m.mailServerId, attempt: m.attempts };
    try {
      const server = m.mailServerId ? await findMailServer(db, m.mailServerId) : undefined;
      if (!server) {
        await markFailed(db, m.id, this.id, { code: 'MR_NOT_FOUND', message: 'The mail server of this message was deleted.', fix: 'Retry the message: it will go through the server chosen now.', at: this.now().toISOString() }, this.now());
        return;
      }
      const p = m.payload;
      // A message received over SMTP goes out as it came; the others are built from their fields.
      const result = await this.senderFor(server).send(p.kind === 'raw' ? { envelope: p.envelope, raw: p.raw } : {
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
      if (!(await this.recordSent(m.id, result.response))) {
        logger.warn({ ...log, event: 'outbox.lease_lost' }, 'message sent after its lease was taken over; it may be delivered twice');
      } else {
        logger.info({ ...log, event: 'outbox.sent', response: result.response }, 'message sent');
      }
    } catch (e) {
      const now = this.now();
      const { failure, error } = classify(e, now);
      const decision = decide(failure, m.attempts, now.getTime() - Date.parse(m.queuedAt), this.deps.config);
      const fields = { ...log, event: `outbox.${decision.action}`, code: error.code };
      if (decision.action === 'retry') {
        await markRetry(db, m.id, this.id, new Date(now.getTime() + decision.delayMs), error, now);
        logger.warn({ ...fields, delayMs: decision.delayMs }, 'delivery failed, will retry');
      } else if (decision.action === 'hold') {
        await markHeld(db, m.id, this.id, error, now);
        logger.warn(fields, 'message held until the mail server is fixed');
      } else {
        await markFailed(db, m.id, this.id, error, now);
        logger.warn(fields, 'message failed');
      }
    }
  }
}
