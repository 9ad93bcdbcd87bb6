import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool';
import type { LoginSource } from '../credentials/auth-method.ts';
import { type ConnectionGate, releaseUnused } from './connection-gate.ts';
import { withHeaderCase } from './header-case.ts';
import { type OutgoingMessage, type RawOutgoingMessage, type SendResult, SmtpError, smtpErrorFrom, type SmtpTarget, toResult, transportOptions } from './smtp-client.ts';

/**
 * Carries a token-manager error through nodemailer, which rewrites the `code` of errors raised in an
 * auth handler to EAUTH.
 */
class TokenUnavailable extends Error {
  constructor(readonly inner: unknown) {
    super('no usable access token');
  }
}

/** One kept-open connection: a nodemailer pool of one, holding one slot of the mailbox's gate. */
interface Lane {
  transport: Transporter;
  release: () => void;
  busy: boolean;
  idleTimer: NodeJS.Timeout | undefined;
  openedAt: number;
}

interface Job {
  msg: OutgoingMessage | RawOutgoingMessage;
  resolve: (r: SendResult) => void;
  reject: (e: unknown) => void;
}

/**
 * The gate of a mailbox's SMTP connections: Exchange counts them per mailbox, so every server that
 * logs in as the same mailbox at the same host shares it (the outbox and the server tests).
 */
export const smtpGateKey = (host: string, username: string) => `smtp:${host.trim().toLowerCase()}:${username.trim().toLowerCase()}`;

/** An idle connection is closed after this long (SMTP_IDLE_CLOSE_SECONDS): its slot may be wanted by another sender. */
const IDLE_CLOSE_MS = 30_000;

/** Bounds over every pool of the instance. */
export interface PoolLimits {
  /** SMTP_MAX_OPEN_CONNECTIONS: one slot per open connection, over all mailboxes. */
  instanceGate?: ConnectionGate;
  /** SMTP_IDLE_CLOSE_SECONDS. */
  idleCloseMs?: number;
}
/**
 * Another instance waiting for the mailbox's last connection here gets it once this one has had it
 * this long: instances that outnumber the connections take turns of seconds, not one message each
 * (measured: 578 logins for 600 messages over four instances and three connections without it).
 */
const TURN_MS = 5000;

/**
 * Pooled SMTP connections to one mail server, at most `size` and never more than the mailbox's gate
 * allows, counting connections opened for tests. Each new connection logs in with a token fetched at
 * that moment; a 535 on a token believed valid forces one refresh and one retry of the message.
 */
export class PooledSender {
  private readonly lanes = new Set<Lane>();
  private readonly queue: Job[] = [];
  private forceRefresh = false;
  private closed = false;
  /** Replaced by a pool with the server's new settings: sends what it holds, then closes. */
  private retiring = false;
  /** Slots being asked for: each becomes a lane. */
  private opening = 0;
  private readonly abort = new AbortController();
  private readonly unsubscribe: Array<() => void>;
  private readonly options;

  constructor(
    readonly target: SmtpTarget,
    user: string,
    getLogin: LoginSource,
    private readonly size: number,
    private readonly gate: ConnectionGate,
    private readonly limits: PoolLimits = {},
  ) {
    this.options = transportOptions(target, user, async () => {
      const force = this.forceRefresh;
      this.forceRefresh = false;
      try {
        return await getLogin(force);
      } catch (e) {
        throw new TokenUnavailable(e);
      }
    });
    this.unsubscribe = [gate.on('pressure', () => this.giveUpIdle()), gate.on('freed', () => this.pump())];
    // Another mailbox waits for one of the instance's connections: an idle one here is closed for it.
    const inst = limits.instanceGate;
    if (inst) this.unsubscribe.push(inst.on('pressure', () => this.giveUpIdle()), inst.on('freed', () => this.pump()));
  }

  async send(msg: OutgoingMessage | RawOutgoingMessage): Promise<SendResult> {
    try {
      return await this.sendOnce(msg);
    } catch (e) {
      // A refused token may have been revoked early: refresh once. A refused password stays refused.
      if (!(e instanceof SmtpError && e.isAuthFailure) || (this.target.auth ?? 'xoauth2') !== 'xoauth2') throw e;
      this.forceRefresh = true;
      return this.sendOnce(msg);
    }
  }

  private async sendOnce(msg: OutgoingMessage | RawOutgoingMessage): Promise<SendResult> {
    try {
      return await new Promise<SendResult>((resolve, reject) => {
        this.queue.push({ msg, resolve, reject });
        this.pump();
      });
    } catch (e) {
      if (e instanceof TokenUnavailable) throw e.inner;
      if (e instanceof SmtpError) throw e;
      throw smtpErrorFrom(e, this.target);
    }
  }

  private pump(): void {
    if (this.closed) return;
    for (let lane = this.idleLane(); lane && this.queue.length; lane = this.idleLane()) this.run(lane, this.queue.shift()!);
    while (this.queue.length > this.opening && this.lanes.size + this.opening < this.size) {
      // No connection at all: wait for a slot, asking whoever holds one (a test, another instance) to
      // give it up. With one at least, take more only when they are free.
      this.open(this.slot(this.lanes.size + this.opening === 0));
    }
  }

  /** A slot of the mailbox's gate and, under SMTP_MAX_OPEN_CONNECTIONS, one of the instance's: waited for when `wait`, else only if free now. */
  private async slot(wait: boolean): Promise<(() => void) | null> {
    const take = (g: ConnectionGate) => (wait ? g.acquire(this.abort.signal) : g.tryAcquire());
    const inst = this.limits.instanceGate;
    if (!inst) return take(this.gate);
    const a = await take(inst);
    if (!a) return null;
    try {
      const b = await take(this.gate);
      if (!b) {
        releaseUnused(a, inst);
        return null;
      }
      return () => {
        b();
        a();
      };
    } catch (e) {
      releaseUnused(a, inst);
      throw e;
    }
  }

  private idleLane(): Lane | undefined {
    for (const l of this.lanes) if (!l.busy) return l;
    return undefined;
  }

  private open(slot: Promise<(() => void) | null>): void {
    this.opening++;
    slot.then(
      (release) => {
        this.opening--;
        if (release && (this.closed || !this.queue.length)) release();
        else if (release) {
          this.openLane(release);
          this.pump();
        }
        this.settle();
      },
      () => {
        // Closed while waiting, or the database unreachable: look again in a moment.
        this.opening--;
        if (!this.closed) setTimeout(() => this.pump(), 1000).unref();
        this.settle();
      },
    );
  }

  private openLane(release: () => void): Lane {
    const transport = nodemailer.createTransport({
      ...this.options,
      pool: true,
      maxConnections: 1,
      // Exchange Online ends a session after a few dozen messages anyway; reconnect before that.
      maxMessages: 30,
    } as SMTPPool.Options);
    const lane: Lane = { transport, release, busy: false, idleTimer: undefined, openedAt: Date.now() };
    this.lanes.add(lane);
    return lane;
  }

  private closeLane(lane: Lane): void {
    clearTimeout(lane.idleTimer);
    this.lanes.delete(lane);
    lane.transport.close();
    lane.release();
  }

  private run(lane: Lane, job: Job): void {
    lane.busy = true;
    clearTimeout(lane.idleTimer);
    lane.transport.sendMail(withHeaderCase(job.msg)).then(
      (info) => job.resolve(toResult(info as Parameters<typeof toResult>[0])),
      (e: unknown) => job.reject(e),
    ).finally(() => {
      lane.busy = false;
      // Someone waits for a slot of this mailbox: hand this one over now that it is free; to another
      // instance only after this one's turn if it is the last connection here.
      const handOver = this.gate.wantedHere || (this.gate.wanted && (this.lanes.size > 1 || Date.now() - lane.openedAt >= TURN_MS)) || (!this.queue.length && this.limits.instanceGate?.wantedHere === true);
      if (handOver || this.closed) this.closeLane(lane);
      else {
        lane.idleTimer = setTimeout(() => this.closeLane(lane), this.limits.idleCloseMs ?? IDLE_CLOSE_MS);
        lane.idleTimer.unref();
      }
      this.pump();
      this.settle();
    });
  }

  private giveUpIdle(): void {
    const idle = [...this.lanes].find((l) => !l.busy);
    if (idle) this.closeLane(idle);
  }

  /**
   * The server was saved and a pool with its new settings takes the next messages: the ones queued or
   * being sent here are still sent (closing would fail them mid-send, an attempt lost for an edit or a
   * certificate roll), then the connections close.
   */
  retire(): void {
    this.retiring = true;
    this.settle();
  }

  /** A retired pool that holds nothing more to send closes. */
  private settle(): void {
    if (this.retiring && !this.closed && !this.queue.length && this.opening === 0 && ![...this.lanes].some((l) => l.busy)) this.close();
  }

  close(): void {
    this.closed = true;
    this.abort.abort(new Error('the connection pool was closed'));
    for (const u of this.unsubscribe) u();
    for (const lane of [...this.lanes]) if (!lane.busy) this.closeLane(lane);
    for (const job of this.queue.splice(0)) job.reject(new Error('the connection pool was closed'));
  }
}
