import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';
import type { DatabaseTimeouts, OutboxConfig } from '../config/config.ts';
import { type ErrorCode, MailroomError } from '../errors/errors.ts';
import type { Logger } from '../logger.ts';
import type { OutboundPolicy } from '../net/outbound-policy.ts';
import type { TokenManager } from '../oauth/token-manager.ts';
import { type GateOwner, RemoteGates, type SlotReply, type SlotRequest } from '../smtp/remote-gates.ts';
import type { Db } from '../storage/database.ts';

// Compiled (dist/), the thread runs delivery-thread-main.js directly; from the sources,
// delivery-thread-main.mjs loads the TypeScript through tsx (a worker does not inherit loader hooks).
const ENTRY = new URL(import.meta.url.endsWith('.js') ? './delivery-thread-main.js' : './delivery-thread-main.mjs', import.meta.url);

/** What runs the outbox: the worker on this thread, or on a thread of its own. */
export interface OutboxDelivery {
  start(): void;
  /** New work is waiting: look at once. */
  kick(): void;
  /** Stops claiming, waits for messages in flight, closes connections. */
  stop(): Promise<void>;
}

/** What the delivery thread is started with (plain data: it crosses the thread boundary). */
export interface DeliveryThreadData {
  databaseUrl: string;
  /** SQLite: the main connection's turns at the database, shared with the thread's connection. */
  turns?: SharedArrayBuffer;
  databaseTimeouts: DatabaseTimeouts;
  outbox: OutboxConfig;
  graphHost: string;
  outbound: OutboundPolicy;
  logLevel: string;
  /** This instance's name: the holder of its connection slot rows on PostgreSQL. */
  instance: string;
}

/** An error as it crosses the thread boundary: a Mailroom error keeps its code, fix and evidence. */
export interface SentError {
  message: string;
  code?: string;
  mailroom?: { fix?: string; evidence?: Record<string, unknown>; field?: string; fields?: Record<string, string> };
}

export function sendError(e: unknown): SentError {
  if (e instanceof MailroomError) return { message: e.message, code: e.code, mailroom: { fix: e.fix, evidence: e.evidence, field: e.field, fields: e.fields } };
  const x = e as { message?: unknown; code?: unknown } | undefined;
  return { message: typeof x?.message === 'string' ? x.message : String(e), ...(typeof x?.code === 'string' && { code: x.code }) };
}

export function receivedError(s: SentError): Error {
  if (s.mailroom) {
    const { fix, evidence, field, fields } = s.mailroom;
    return new MailroomError(s.code as ErrorCode, s.message, { ...(fix !== undefined && { fix }), ...(evidence !== undefined && { evidence }), ...(field !== undefined && { field }), ...(fields !== undefined && { fields }) });
  }
  // A database error keeps its code: the worker tells "the database is down" from the rest by it.
  return Object.assign(new Error(s.message), s.code === undefined ? {} : { code: s.code });
}

export type ToThread =
  | { t: 'kick' }
  | { t: 'stop' }
  | { t: 'slot'; r: SlotRequest }
  | { t: 'holders'; id: number; instance: string }
  | { t: 'token'; id: number; value?: unknown; error?: SentError };

export type FromThread =
  | { t: 'started' }
  | { t: 'stopped' }
  | { t: 'log'; line: string }
  | { t: 'slot'; r: SlotReply }
  | { t: 'holders'; id: number; holders: Array<[string, Record<string, number>]> }
  | { t: 'token'; id: number; kind: 'access' | 'login' | 'context'; serverId: string; forceRefresh: boolean };

/** A thread that ends on its own is started again after this, doubled while it keeps ending soon. */
const RESTART_MS = 1000;
const RESTART_MAX_MS = 30_000;
/** Alive this long: the next restart waits RESTART_MS again. */
const STABLE_MS = 60_000;

export interface DeliveryThreadDeps {
  data: DeliveryThreadData;
  db: Db;
  /** The one token manager of the process: refreshes stay single-flight per mailbox. */
  tokens: Pick<TokenManager, 'getAccessToken' | 'getLogin' | 'applicationContext'>;
  logger: Logger;
  /** Where the thread's log lines go: the same destination as this thread's. */
  log: { write(line: string): unknown };
}

/**
 * The outbox worker on a thread of its own, with its own database connection, so that accepting
 * messages (HTTP, the SMTP listener) and delivering them do not wait for each other's turns of one
 * event loop. Claims and leases are the worker's, unchanged: what the thread had claimed when it
 * ended is claimed again by the next one. Access tokens come from this thread's token manager (one
 * refresh per mailbox at a time), connection slots from the thread's gates (`gates` here asks it),
 * log lines go to this thread's log. A thread that ends unexpectedly is logged and started again.
 */
export class DeliveryThread implements OutboxDelivery {
  /** Connection slots for this side: asked from the delivery thread, which owns the counts. */
  readonly gates: RemoteGates;
  private worker: Worker | undefined;
  private running = false;
  private kickPosted = false;
  private restartMs = RESTART_MS;
  private restartTimer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private stopped: (() => void) | undefined;
  private nextId = 0;
  private readonly holdersAsked = new Map<number, { resolve: (h: Array<[string, Record<string, number>]>) => void; reject: (e: Error) => void }>();

  constructor(private readonly deps: DeliveryThreadDeps) {
    const owner: GateOwner = {
      send: (r) => this.post({ t: 'slot', r }),
      holders: (instance) =>
        new Promise((resolve, reject) => {
          if (!this.worker) return resolve([]);
          const id = ++this.nextId;
          this.holdersAsked.set(id, { resolve, reject });
          this.post({ t: 'holders', id, instance });
        }),
    };
    this.gates = new RemoteGates(owner, deps.db);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.spawn();
  }

  kick(): void {
    // One wake-up per turn of this event loop, however many messages were accepted in it.
    if (this.kickPosted) return;
    this.kickPosted = true;
    setImmediate(() => {
      this.kickPosted = false;
      this.post({ t: 'kick' });
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.restartTimer);
    const w = this.worker;
    if (!w) return;
    await new Promise<void>((resolve) => {
      this.stopped = resolve;
      w.once('exit', () => resolve());
      this.post({ t: 'stop' });
    });
    this.worker = undefined;
    await w.terminate();
  }

  private post(m: ToThread): void {
    this.worker?.postMessage(m);
  }

  private spawn(): void {
    const { logger } = this.deps;
    // What the thread prints itself (a warning before its log is set up) becomes a log line too.
    const w = new Worker(ENTRY, { workerData: this.deps.data, stdout: true, stderr: true });
    this.worker = w;
    for (const [stream, level] of [[w.stdout, 'info'], [w.stderr, 'warn']] as const) {
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => line.trim() && logger[level]({ event: 'outbox.thread_output' }, line));
    }
    this.startedAt = Date.now();
    w.on('message', (m: FromThread) => this.received(m));
    // Its counts start at zero: the slots this side holds or waits for are asked for (again).
    this.gates.ownerRestarted();
    w.on('error', (e) => logger.error({ event: 'outbox.thread_error', err: e }, 'the delivery thread failed; it is started again'));
    w.on('exit', (code) => {
      if (this.worker !== w) return;
      this.worker = undefined;
      for (const [id, h] of this.holdersAsked) {
        this.holdersAsked.delete(id);
        h.reject(new Error('The delivery thread ended.'));
      }
      if (!this.running) return;
      if (Date.now() - this.startedAt > STABLE_MS) this.restartMs = RESTART_MS;
      logger.error({ event: 'outbox.thread_exit', exitCode: code, restartInMs: this.restartMs }, `the delivery thread ended (exit code ${code}); starting it again in ${this.restartMs / 1000} s`);
      this.restartTimer = setTimeout(() => {
        if (this.running) this.spawn();
      }, this.restartMs);
      this.restartMs = Math.min(RESTART_MAX_MS, this.restartMs * 2);
    });
  }

  private received(m: FromThread): void {
    switch (m.t) {
      case 'log':
        this.deps.log.write(m.line);
        return;
      case 'slot':
        this.gates.received(m.r);
        return;
      case 'holders': {
        const h = this.holdersAsked.get(m.id);
        this.holdersAsked.delete(m.id);
        h?.resolve(m.holders);
        return;
      }
      case 'token': {
        const { tokens } = this.deps;
        const got: Promise<unknown> =
          m.kind === 'access' ? tokens.getAccessToken(m.serverId, { forceRefresh: m.forceRefresh })
          : m.kind === 'login' ? tokens.getLogin(m.serverId, { forceRefresh: m.forceRefresh })
          : tokens.applicationContext(m.serverId);
        got.then(
          (value) => this.post({ t: 'token', id: m.id, value }),
          (e: unknown) => this.post({ t: 'token', id: m.id, error: sendError(e) }),
        );
        return;
      }
      case 'stopped':
        this.stopped?.();
        return;
      case 'started':
        return;
    }
  }
}
