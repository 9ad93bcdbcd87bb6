import { randomUUID } from 'node:crypto';
import type { Db } from '../storage/database.ts';
import { type ConnectionGate, ConnectionGates } from './connection-gate.ts';

/**
 * The gates of a process whose outbox runs on its own thread: that thread owns every mailbox's count
 * (its SMTP pool opens most of the connections), and this side asks it for a slot whenever it opens
 * one itself (Test Connection, Send test email, a Graph fetch). One count per process, as before, so
 * a mailbox's limit holds over both threads; on PostgreSQL the owner's gates are the lease rows
 * every instance shares.
 */
export type SlotRequest =
  | { op: 'acquire'; id: string; key: string; limit: number | null }
  | { op: 'try'; id: string; key: string; limit: number | null }
  | { op: 'release'; id: string };

export type SlotReply = { op: 'granted'; id: string } | { op: 'none'; id: string } | { op: 'failed'; id: string; message: string };

/** The thread that owns the gates, as this side sees it. */
export interface GateOwner {
  send(r: SlotRequest): void;
  /** Who holds each gate's connections (ConnectionGates.holders on the owner). */
  holders(instance: string): Promise<Array<[string, Record<string, number>]>>;
}

interface Wanted {
  key: string;
  limit: number | null;
  /** Set until the owner answers; gone once the slot is held. */
  answer?: (r: SlotReply) => void;
}

/** This side's gates: every slot comes from the owner thread. */
export class RemoteGates extends ConnectionGates {
  /** Slots asked for or held, by request id: asked again from a new owner after a restart. */
  private readonly open = new Map<string, Wanted>();

  constructor(
    private readonly owner: GateOwner,
    db?: Db,
  ) {
    super(undefined, db);
  }

  /** An answer from the owner. */
  received(r: SlotReply): void {
    const w = this.open.get(r.id);
    const answer = w?.answer;
    if (!w || !answer) return;
    w.answer = undefined;
    answer(r);
  }

  /**
   * The owner thread started again (the last one ended): its counts began at zero, so every slot
   * held here, and every one still asked for, is asked for again.
   */
  ownerRestarted(): void {
    for (const [id, w] of this.open) this.owner.send({ op: 'acquire', id, key: w.key, limit: w.limit });
  }

  override for(key: string, limit: number | null): ConnectionGate {
    const ask = (op: 'acquire' | 'try', signal?: AbortSignal) =>
      new Promise<(() => void) | null>((resolve, reject) => {
        const id = randomUUID();
        const release = () => {
          if (!this.open.delete(id)) return;
          this.owner.send({ op: 'release', id });
        };
        const aborted = () => {
          release();
          reject(signal!.reason);
        };
        signal?.throwIfAborted();
        signal?.addEventListener('abort', aborted, { once: true });
        this.open.set(id, {
          key,
          limit,
          answer: (r) => {
            signal?.removeEventListener('abort', aborted);
            if (r.op === 'granted') return resolve(release);
            this.open.delete(id);
            if (r.op === 'none') resolve(null);
            else reject(new Error(r.message));
          },
        });
        this.owner.send({ op, id, key, limit });
      });
    const waiting = () => [...this.open.values()].some((w) => w.key === key && w.answer);
    return {
      tryAcquire: () => ask('try'),
      acquire: async (signal) => (await ask('acquire', signal))!,
      // Nothing on this side keeps connections open for others to ask for: no pool listens here.
      get wanted() {
        return waiting();
      },
      get wantedHere() {
        return waiting();
      },
      on: () => () => undefined,
    };
  }

  override async holders(instance: string): Promise<Map<string, Record<string, number>>> {
    return new Map(await this.owner.holders(instance));
  }

  override async close(): Promise<void> {}
}

/**
 * The owner's side: serves slot requests from `gates`, answering through `reply`. A release that
 * comes before its slot was granted withdraws the request.
 */
export function serveSlots(gates: ConnectionGates, reply: (r: SlotReply) => void): (r: SlotRequest) => void {
  const held = new Map<string, { release?: () => void; abort: AbortController }>();
  return (r) => {
    if (r.op === 'release') {
      const h = held.get(r.id);
      held.delete(r.id);
      if (h?.release) h.release();
      else h?.abort.abort(new Error('withdrawn'));
      return;
    }
    const entry = { abort: new AbortController() } as { release?: () => void; abort: AbortController };
    held.set(r.id, entry);
    const gate = gates.for(r.key, r.limit);
    (r.op === 'try' ? gate.tryAcquire() : gate.acquire(entry.abort.signal)).then(
      (release) => {
        if (!release) {
          held.delete(r.id);
          return reply({ op: 'none', id: r.id });
        }
        if (held.get(r.id) !== entry) return release();
        entry.release = release;
        reply({ op: 'granted', id: r.id });
      },
      (e: unknown) => {
        if (held.get(r.id) !== entry) return;
        held.delete(r.id);
        reply({ op: 'failed', id: r.id, message: (e as Error)?.message ?? String(e) });
      },
    );
  };
}
