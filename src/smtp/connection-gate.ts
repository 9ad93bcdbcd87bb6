/**
 * How many SMTP connections one mailbox has open, over everything that opens them: the outbox's
 * pooled connections, Test Connection and Send test email. Exchange Online answers a fourth connection
 * submitting at once with 432 4.3.2 (sender thread limit exceeded), so a test waits for a slot and the
 * pool gives one up for it rather than open one more.
 *
 * In-process: one instance's connections. Several instances sending from one mailbox need a shared
 * count (a lease row per slot) behind this same interface.
 */
export interface ConnectionGate {
  /** A slot now if one is free and no test is waiting for one; else null. */
  tryAcquire(): (() => void) | null;
  /** Waits for a slot; while it waits, holders are asked to give one up. */
  acquire(): Promise<() => void>;
  /** Someone is waiting for a slot: a pool should close a connection once it is idle. */
  readonly wanted: boolean;
  /** Called when a waiting caller needs a slot (`pressure`) or a slot was freed (`freed`). */
  on(event: 'pressure' | 'freed', listener: () => void): () => void;
}

class Gate implements ConnectionGate {
  private used = 0;
  private readonly waiters: Array<(release: () => void) => void> = [];
  private readonly listeners = { pressure: new Set<() => void>(), freed: new Set<() => void>() };

  constructor(private limit: number) {}

  setLimit(limit: number): void {
    if (limit === this.limit) return;
    this.limit = limit;
    this.handOver();
  }

  get wanted(): boolean {
    return this.waiters.length > 0;
  }

  private slot(): () => void {
    this.used++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.used--;
      this.handOver();
    };
  }

  private handOver(): void {
    while (this.waiters.length && this.used < this.limit) this.waiters.shift()!(this.slot());
    if (!this.waiters.length) for (const l of this.listeners.freed) l();
  }

  tryAcquire(): (() => void) | null {
    return this.used < this.limit && !this.waiters.length ? this.slot() : null;
  }

  acquire(): Promise<() => void> {
    const now = this.tryAcquire();
    if (now) return Promise.resolve(now);
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      for (const l of this.listeners.pressure) l();
    });
  }

  on(event: 'pressure' | 'freed', listener: () => void): () => void {
    this.listeners[event].add(listener);
    return () => this.listeners[event].delete(listener);
  }
}

/** One gate per mail server, shared by the outbox worker and the server tests of this process. */
export class ConnectionGates {
  private readonly gates = new Map<string, Gate>();

  /** The server's gate, its limit updated to `limit` (null: no limit). */
  for(serverId: string, limit: number | null): ConnectionGate {
    const max = limit ?? Infinity;
    const g = this.gates.get(serverId);
    if (g) g.setLimit(max);
    else this.gates.set(serverId, new Gate(max));
    return this.gates.get(serverId)!;
  }

  /** Runs `fn` holding one of the server's connection slots. */
  async with<T>(serverId: string, limit: number | null, fn: () => Promise<T>): Promise<T> {
    const release = await this.for(serverId, limit).acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
