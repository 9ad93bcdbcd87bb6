import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

// Compiled (dist/), the thread runs parse-worker.js directly; from the sources, parse-worker.mjs loads
// the TypeScript through tsx (a worker does not inherit the main thread's loader hooks).
const WORKER_ENTRY = new URL(import.meta.url.endsWith('.js') ? './parse-worker.js' : './parse-worker.mjs', import.meta.url);
import { type ParsedMessage, parseMessage, unreadableMessage } from './parse-message.ts';
import type { MessageProblem } from '../storage/inbound-store.ts';

export interface ParseJob {
  seq: number;
  source: Uint8Array;
}

export type ParseReply = { seq: number; parsed: ParsedMessage } | { seq: number; error: string } | { ready: true };

/** A message of at most 512 KB parses in milliseconds; one that takes this long is not mail but an attack. */
const DEFAULT_TIMEOUT_MS = 60_000;
/**
 * Heap of one parse thread. Parsing a 512 KB message needs a few MB; a message that makes the
 * parser need more ends that thread (ERR_WORKER_OUT_OF_MEMORY), not the process.
 */
const DEFAULT_WORKER_HEAP_MB = 256;

interface Job {
  seq: number;
  source: Buffer;
  resolve: (p: ParsedMessage) => void;
  reject: (e: Error) => void;
}

interface PooledWorker {
  worker: Worker;
  /** In the order posted: the thread parses them one after another, so the first is the one running. */
  pending: Map<number, Job>;
  idle?: NodeJS.Timeout;
  /** Runs while the first pending job parses. */
  deadline?: NodeJS.Timeout;
  /** Why this pool ended the thread: given to the job it was parsing. */
  endedBecause?: MessageProblem;
  gone?: boolean;
  /** The thread has loaded the parser: deadlines run from then on. */
  ready?: boolean;
}

/** The fields of a message the parse thread could not get through: its size and hash, nothing else. */
function unparsed(source: Buffer, problem: MessageProblem): ParsedMessage {
  return unreadableMessage(problem, { sizeBytes: source.length, sha256: createHash('sha256').update(source).digest('hex') });
}

/**
 * Parses fetched messages on worker threads, so parsing (the costliest step of an import) runs
 * beside the IMAP connection and the database instead of between them. With
 * `threads: 0` everything runs on the calling thread. Workers start on first use and stop after
 * `idleMs` without work.
 *
 * Like parseMessage, parse() never rejects for anything in a message: a message whose parse ends
 * its thread (a crash, the heap limit) or runs past `timeoutMs` resolves as unreadable with
 * `problem`, a new thread takes the jobs queued behind it. Only close() rejects the jobs under way.
 */
export class ParsePool {
  private readonly workers: PooledWorker[] = [];
  private seq = 0;

  constructor(private readonly opts: { threads: number; idleMs?: number; timeoutMs?: number; workerHeapMb?: number }) {}

  get threads(): number {
    return this.opts.threads;
  }

  parse(source: Buffer): Promise<ParsedMessage> {
    if (this.opts.threads <= 0) return parseMessage(source);
    return new Promise<ParsedMessage>((resolve, reject) => this.dispatch({ seq: ++this.seq, source, resolve, reject }));
  }

  /** Starts the threads now (a thread needs about half a second to load), so a large fetch finds them ready. */
  warm(): void {
    while (this.workers.length < this.opts.threads) this.idleLater(this.spawn());
  }

  /** Stops the workers (jobs still running fail); later calls start new ones. */
  async close(): Promise<void> {
    await Promise.all(this.workers.splice(0).map((w) => this.stop(w, new Error('The parse pool was closed.'))));
  }

  private dispatch(job: Job): void {
    const w = this.pick();
    if (w.idle) clearTimeout(w.idle);
    w.idle = undefined;
    w.worker.ref();
    w.pending.set(job.seq, job);
    w.worker.postMessage({ seq: job.seq, source: job.source } satisfies ParseJob);
    if (w.pending.size === 1) this.armDeadline(w);
  }

  /** The least busy worker, or a new one while fewer than `threads` run. */
  private pick(): PooledWorker {
    const free = this.workers.find((w) => w.pending.size === 0);
    if (free) return free;
    if (this.workers.length < this.opts.threads) return this.spawn();
    return this.workers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  private spawn(): PooledWorker {
    const w: PooledWorker = { worker: new Worker(WORKER_ENTRY, { resourceLimits: { maxOldGenerationSizeMb: this.opts.workerHeapMb ?? DEFAULT_WORKER_HEAP_MB } }), pending: new Map() };
    w.worker.on('message', (r: ParseReply) => {
      if ('ready' in r) {
        w.ready = true;
        this.armDeadline(w);
        return;
      }
      const job = w.pending.get(r.seq);
      if (!job) return;
      w.pending.delete(r.seq);
      // parseMessage rejects only for its source, and a buffer cannot fail: still, never a rejection.
      job.resolve('error' in r ? unparsed(job.source, { code: 'malformed', message: `The message could not be read: ${r.error.slice(0, 200)}.` }) : r.parsed);
      this.armDeadline(w);
      if (w.pending.size === 0) this.idleLater(w);
    });
    let reason: string | undefined;
    w.worker.on('error', (e: Error & { code?: string }) => (reason ??= e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `it needed more than ${this.opts.workerHeapMb ?? DEFAULT_WORKER_HEAP_MB} MB of memory` : e.message.slice(0, 200)));
    w.worker.on('exit', (code) => {
      if (w.gone) return;
      w.gone = true;
      this.forget(w);
      const [first, ...rest] = w.pending.values();
      w.pending.clear();
      if (!first) return;
      first.resolve(unparsed(first.source, w.endedBecause ?? { code: 'malformed', message: `Reading the message stopped Mailroom's parser (${reason ?? `exit code ${code}`}); the raw message is kept.` }));
      for (const job of rest) this.dispatch(job);
    });
    this.workers.push(w);
    return w;
  }

  /** The first pending job gets `timeoutMs` from now; past it the thread is ended and that job is unreadable. */
  private armDeadline(w: PooledWorker): void {
    if (w.deadline) clearTimeout(w.deadline);
    w.deadline = undefined;
    if (!w.pending.size || !w.ready) return;
    const ms = this.opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    w.deadline = setTimeout(() => {
      w.endedBecause = { code: 'malformed', message: `Reading the message took longer than ${ms / 1000} s; Mailroom stopped reading it. The raw message is kept.` };
      void w.worker.terminate();
    }, ms);
    w.deadline.unref();
  }

  private forget(w: PooledWorker): void {
    const k = this.workers.indexOf(w);
    if (k >= 0) this.workers.splice(k, 1);
    if (w.idle) clearTimeout(w.idle);
    if (w.deadline) clearTimeout(w.deadline);
  }

  private idleLater(w: PooledWorker): void {
    w.worker.unref();
    w.idle = setTimeout(() => {
      const k = this.workers.indexOf(w);
      if (k >= 0 && w.pending.size === 0) {
        this.workers.splice(k, 1);
        void this.stop(w, new Error('idle'));
      }
    }, this.opts.idleMs ?? 30_000);
    w.idle.unref();
  }

  private async stop(w: PooledWorker, reason: Error): Promise<void> {
    w.gone = true;
    this.forget(w);
    for (const job of w.pending.values()) job.reject(reason);
    w.pending.clear();
    await w.worker.terminate();
  }
}
