import { Worker } from 'node:worker_threads';

// Compiled (dist/), the thread runs parse-worker.js directly; from the sources, parse-worker.mjs loads
// the TypeScript through tsx (a worker does not inherit the main thread's loader hooks).
const WORKER_ENTRY = new URL(import.meta.url.endsWith('.js') ? './parse-worker.js' : './parse-worker.mjs', import.meta.url);
import { type ParsedMessage, parseMessage } from './parse-message.ts';

export interface ParseJob {
  seq: number;
  source: Uint8Array;
}

export type ParseReply = { seq: number; parsed: ParsedMessage } | { seq: number; error: string };

interface PooledWorker {
  worker: Worker;
  pending: Map<number, { resolve: (p: ParsedMessage) => void; reject: (e: Error) => void }>;
  idle?: NodeJS.Timeout;
}

/**
 * Parses fetched messages on worker threads, so parsing (the costliest step of an import) runs
 * beside the IMAP connection and the database instead of between them. With
 * `threads: 0` everything runs on the calling thread. Workers start on first use and stop after
 * `idleMs` without work.
 */
export class ParsePool {
  private readonly workers: PooledWorker[] = [];
  private seq = 0;

  constructor(private readonly opts: { threads: number; idleMs?: number }) {}

  get threads(): number {
    return this.opts.threads;
  }

  parse(source: Buffer): Promise<ParsedMessage> {
    if (this.opts.threads <= 0) return parseMessage(source);
    const w = this.pick();
    const seq = ++this.seq;
    if (w.idle) clearTimeout(w.idle);
    w.idle = undefined;
    w.worker.ref();
    return new Promise<ParsedMessage>((resolve, reject) => {
      w.pending.set(seq, { resolve, reject });
      w.worker.postMessage({ seq, source } satisfies ParseJob);
    });
  }

  /** Starts the threads now (a thread needs about half a second to load), so a large fetch finds them ready. */
  warm(): void {
    while (this.workers.length < this.opts.threads) this.idleLater(this.spawn());
  }

  /** Stops the workers (jobs still running fail); later calls start new ones. */
  async close(): Promise<void> {
    await Promise.all(this.workers.splice(0).map((w) => this.stop(w, new Error('The parse pool was closed.'))));
  }

  /** The least busy worker, or a new one while fewer than `threads` run. */
  private pick(): PooledWorker {
    const free = this.workers.find((w) => w.pending.size === 0);
    if (free) return free;
    if (this.workers.length < this.opts.threads) return this.spawn();
    return this.workers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  private spawn(): PooledWorker {
    const w: PooledWorker = { worker: new Worker(WORKER_ENTRY), pending: new Map() };
    w.worker.on('message', (r: ParseReply) => {
      const job = w.pending.get(r.seq);
      if (!job) return;
      w.pending.delete(r.seq);
      if ('error' in r) job.reject(new Error(r.error));
      else job.resolve(r.parsed);
      if (w.pending.size === 0) this.idleLater(w);
    });
    const fail = (e: Error) => {
      const k = this.workers.indexOf(w);
      if (k >= 0) this.workers.splice(k, 1);
      for (const job of w.pending.values()) job.reject(e);
      w.pending.clear();
    };
    w.worker.on('error', fail);
    w.worker.on('exit', (code) => fail(new Error(`A parse worker stopped (exit code ${code}).`)));
    this.workers.push(w);
    return w;
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
    if (w.idle) clearTimeout(w.idle);
    for (const job of w.pending.values()) job.reject(reason);
    w.pending.clear();
    await w.worker.terminate();
  }
}
