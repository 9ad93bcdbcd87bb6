/**
 * Accepting must not starve delivering: Postfix's in_flow_delay for the outbox. While a mailbox has
 * more than `backlog` messages due and not yet being sent, a new message for it waits until its
 * backlog is under the mark again, or `delayMs` at most, and is then accepted either way: it is never
 * refused for it. A client flooding one mailbox is slowed to about that mailbox's delivery rate, and
 * the cores it would have taken to accept messages that only wait go to delivering them; every other
 * mailbox's messages are accepted at once.
 *
 * The backlog is counted from the database (one grouped count for every mailbox waiting, at most every
 * `pollMs`), so it holds over every instance delivering from it; between counts each accepted message
 * adds one. A mailbox is counted only once it has had `backlog` messages accepted since its last count:
 * nothing is read while mail arrives slower than it leaves.
 */
export class InFlow {
  private readonly estimate = new Map<string, number>();
  private readonly waiting = new Map<string, number>();
  private counting: Promise<void> | undefined;
  private countedAt = -Infinity;

  constructor(
    private readonly deps: {
      /** The due, unclaimed messages of these mailboxes. */
      count: (serverIds: string[]) => Promise<Map<string, number>>;
      backlog: number;
      /** 0: never wait. */
      delayMs: number;
      pollMs?: number;
      now?: () => number;
      sleep?: (ms: number) => Promise<void>;
    },
  ) {}

  private get pollMs(): number {
    return this.deps.pollMs ?? 50;
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now();
  }

  /** Resolves when a message for `serverId` may be accepted (after `delayMs` at most). Never rejects. */
  async admit(serverId: string): Promise<void> {
    const { backlog, delayMs } = this.deps;
    if (delayMs <= 0) return;
    if ((this.estimate.get(serverId) ?? 0) >= backlog) {
      const until = this.now() + delayMs;
      this.waiting.set(serverId, (this.waiting.get(serverId) ?? 0) + 1);
      try {
        for (;;) {
          await this.count();
          if ((this.estimate.get(serverId) ?? 0) < backlog) break;
          const left = until - this.now();
          if (left <= 0) break;
          await (this.deps.sleep ?? sleep)(Math.min(this.pollMs, left));
        }
      } finally {
        const n = (this.waiting.get(serverId) ?? 1) - 1;
        if (n > 0) this.waiting.set(serverId, n);
        else this.waiting.delete(serverId);
      }
    }
    this.estimate.set(serverId, (this.estimate.get(serverId) ?? 0) + 1);
  }

  /** One count for every waiting mailbox, at most every pollMs; a failed count lets them in (it is logged where it is made). */
  private count(): Promise<void> {
    if (this.counting) return this.counting;
    if (this.now() - this.countedAt < this.pollMs) return Promise.resolve();
    const ids = [...this.waiting.keys()];
    this.counting = this.deps
      .count(ids)
      .then(
        (counts) => {
          for (const id of ids) this.estimate.set(id, counts.get(id) ?? 0);
        },
        () => {
          for (const id of ids) this.estimate.delete(id);
        },
      )
      .finally(() => {
        this.countedAt = this.now();
        this.counting = undefined;
      });
    return this.counting;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
