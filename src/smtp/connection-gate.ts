import { randomUUID } from 'node:crypto';
import type { Logger } from '../logger.ts';
import { extendLease, leaseUntil, listLeases, takeNumberedLease, releaseLease, releaseLeasesOf, renewLeases } from '../storage/cluster-store.ts';
import type { Db } from '../storage/database.ts';
import type { Wakeups } from '../storage/wakeups.ts';

/**
 * How many connections one mailbox has open, over everything that opens them: the outbox's pooled
 * connections, Test Connection and Send test email, in every instance. Exchange Online answers a
 * fourth connection submitting at once with 432 4.3.2 (sender thread limit exceeded), so a test waits
 * for a slot and a pool gives one up for it rather than open one more.
 */
export interface ConnectionGate {
  /** A slot now if one is free and nobody is waiting for one; else null. */
  tryAcquire(): Promise<(() => void) | null>;
  /**
   * Waits for a slot; while it waits, holders are asked to give one up (in other instances too, when
   * this one holds none). Rejects with the signal's reason once `signal` aborts.
   */
  acquire(signal?: AbortSignal): Promise<() => void>;
  /** Someone is waiting for a slot: a pool should close a connection once it is idle. */
  readonly wanted: boolean;
  /** A caller in this instance is waiting (a test): it is served before another instance. */
  readonly wantedHere: boolean;
  /** Called when a waiting caller needs a slot (`pressure`) or a slot may have been freed (`freed`). */
  on(event: 'pressure' | 'freed', listener: () => void): () => void;
}

type Release = () => void;

/** While it waits, a waiter looks again this often: a freed notification may be lost, a dead instance's slot expires. */
const POLL_MS = 1000;

/**
 * The waiting and signalling every gate shares; where a slot comes from (a count in this process,
 * lease rows in the database) is the subclass's.
 */
abstract class Gate implements ConnectionGate {
  protected waiters = 0;
  /** Bumped on every `freed`: a waiter whose take failed retries at once if it moved meanwhile. */
  private generation = 0;
  private readonly listeners = { pressure: new Set<() => void>(), freed: new Set<() => void>() };

  constructor(protected limit: number) {}

  /** A slot if one can be had now, or null. May throw (the database unreachable). */
  protected abstract take(): Promise<Release | null>;
  /** Another instance is waiting for one of this mailbox's slots. */
  protected othersWaiting(): boolean {
    return false;
  }
  /** Tells the other instances this one is waiting (`want`) or no longer (`got`). */
  protected announce(_event: 'want' | 'got', _waiter: string): void {}

  setLimit(limit: number): void {
    if (limit === this.limit) return;
    this.limit = limit;
    this.emit('freed');
  }

  get wanted(): boolean {
    return this.waiters > 0 || this.othersWaiting();
  }

  get wantedHere(): boolean {
    return this.waiters > 0;
  }

  protected emit(event: 'pressure' | 'freed'): void {
    if (event === 'freed') this.generation++;
    for (const l of [...this.listeners[event]]) l();
  }

  async tryAcquire(): Promise<Release | null> {
    return this.wanted ? null : this.take();
  }

  async acquire(signal?: AbortSignal): Promise<Release> {
    if (!this.wanted) {
      const now = await this.take().catch(() => null);
      if (now) return now;
    }
    const id = randomUUID();
    this.waiters++;
    let announced = false;
    try {
      for (;;) {
        signal?.throwIfAborted();
        const seen = this.generation;
        this.emit('pressure');
        announced = this.wantFromOthers(id) || announced;
        const got = await this.take().catch(() => null);
        if (got) return got;
        if (this.generation === seen) await this.nextFreed(signal);
      }
    } finally {
      this.waiters--;
      if (announced) this.announce('got', id);
    }
  }

  /** Asks the other instances for a slot, but only while this one holds none: one that has some competes with its own. */
  protected wantFromOthers(_waiter: string): boolean {
    return false;
  }

  private nextFreed(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        off();
        signal?.removeEventListener('abort', aborted);
      };
      const aborted = () => {
        done();
        reject(signal!.reason);
      };
      const timer = setTimeout(() => (done(), resolve()), POLL_MS);
      const off = this.on('freed', () => (done(), resolve()));
      signal?.addEventListener('abort', aborted, { once: true });
    });
  }

  on(event: 'pressure' | 'freed', listener: () => void): () => void {
    this.listeners[event].add(listener);
    return () => this.listeners[event].delete(listener);
  }
}

/** One instance's connections: a count (SQLite, where one instance owns the outbox). */
class LocalGate extends Gate {
  used = 0;
  /** Set while a slot is given back unused (see quietly). */
  private quiet = false;

  protected async take(): Promise<Release | null> {
    if (this.used >= this.limit) return null;
    this.used++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.used--;
      if (!this.quiet) this.emit('freed');
    };
  }

  /**
   * A slot given back unused, at once (the mailbox's own slot was not free): no 'freed' event. Each
   * 'freed' makes every pool try again, and a pool whose mailbox is still full would take and give
   * back the instance's slot in a loop of promises that never lets I/O run. A waiter looks again
   * within POLL_MS.
   */
  static quietly(release: () => void, gate: ConnectionGate): void {
    if (!(gate instanceof LocalGate)) return release();
    gate.quiet = true;
    try {
      release();
    } finally {
      gate.quiet = false;
    }
  }
}

/** Gives back a slot of `gate` that was never used, without waking the gate's other waiters. */
export function releaseUnused(release: () => void, gate: ConnectionGate): void {
  LocalGate.quietly(release, gate);
}

/** A count of connections in this instance only, e.g. SMTP_MAX_OPEN_CONNECTIONS over every mailbox. */
export function localGate(limit: number): ConnectionGate {
  return new LocalGate(limit);
}

interface ClusterDeps {
  db: Db;
  /** This instance's name, the holder of its slot rows. */
  instance: string;
  wakeups: Wakeups;
  /** A dead instance's slots come back after this long. */
  leaseMs: number;
  now: () => Date;
  logger: Logger;
}

/** What instances tell each other about one gate on `mailroom_connections`. */
interface GateSignal {
  gate: string;
  event: 'want' | 'got' | 'freed';
  from: string;
  waiter?: string;
}

/** A slot given back by this instance's last user stays held this long, for the next message, before it goes back to the others. */
const LINGER_MS = 1000;
/** A `want` counts this long unless renewed: the waiter repeats it every POLL_MS. */
const WANT_TTL_MS = 3 * POLL_MS;

/**
 * A mailbox's slots shared by every instance on one PostgreSQL: slot i is the lease row
 * `connections:<gate>:<i>` (i < limit), held by the instance using it and renewed by a heartbeat, so
 * a killed instance's slots come back after the lease. A slot its user gives up lingers here a moment
 * for the next message (Graph takes one per request) unless another instance is waiting. An instance
 * that holds none of the slots and needs one says so on `mailroom_connections`; the holders then
 * close a connection as soon as it is idle and give its slot back.
 */
class ClusterGate extends Gate {
  /** Slot numbers this instance holds, and which of them are idle (lingering). */
  private readonly held = new Set<number>();
  /** Takes under way: each may become a slot. */
  private taking = 0;
  private readonly idle = new Map<number, NodeJS.Timeout>();
  private readonly remoteWaiters = new Map<string, number>();
  /** After a take found every slot taken: no new attempt at the database before this, unless one is freed. */
  private fullUntil = 0;

  constructor(
    private readonly key: string,
    limit: number,
    private readonly deps: ClusterDeps,
  ) {
    super(limit);
  }

  private slotName(i: number | ''): string {
    return `connections:${this.key}:${i}`;
  }

  /** The lease names this instance holds, for the heartbeat. */
  heldNames(): string[] {
    return [...this.held].map((i) => this.slotName(i));
  }

  protected override othersWaiting(): boolean {
    const now = Date.now();
    for (const [id, until] of this.remoteWaiters) if (until <= now) this.remoteWaiters.delete(id);
    return this.remoteWaiters.size > 0;
  }

  protected override async take(): Promise<Release | null> {
    const lingering = this.idle.keys().next();
    if (!lingering.done) {
      const i = lingering.value;
      clearTimeout(this.idle.get(i));
      this.idle.delete(i);
      return this.releaseOf(i);
    }
    if (this.held.size + this.taking >= this.limit || Date.now() < this.fullUntil) return null;
    this.taking++;
    let i: number | null;
    try {
      i = await takeNumberedLease(this.deps.db, this.slotName(''), this.limit, this.deps.instance, this.deps.leaseMs, this.deps.now());
    } finally {
      this.taking--;
    }
    if (i === null) {
      this.fullUntil = Date.now() + POLL_MS / 2;
      return null;
    }
    this.held.add(i);
    return this.releaseOf(i);
  }

  private releaseOf(i: number): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      // Another instance holding none waits: hand it over, unless this is the last slot here and a caller here waits too.
      if (i >= this.limit || (this.othersWaiting() && (this.waiters === 0 || this.held.size > 1))) this.giveBack(i);
      else {
        const timer = setTimeout(() => {
          this.idle.delete(i);
          this.giveBack(i);
        }, LINGER_MS);
        timer.unref();
        this.idle.set(i, timer);
        this.emit('freed');
      }
    };
  }

  private giveBack(i: number): void {
    releaseLease(this.deps.db, this.slotName(i), this.deps.instance)
      .then(() => this.signal({ gate: this.key, event: 'freed', from: this.deps.instance }))
      // The row stays until its lease runs out: the slot comes back then.
      .catch((e: unknown) => this.deps.logger.debug({ event: 'connections.release_failed', gate: this.key, err: (e as Error).message }, 'could not give a connection slot back'))
      .finally(() => {
        this.held.delete(i);
        this.emit('freed');
      });
  }

  /** Every lingering slot goes back to the others at once. */
  private giveBackIdle(): void {
    for (const [i, timer] of this.idle) {
      clearTimeout(timer);
      this.idle.delete(i);
      this.giveBack(i);
    }
  }

  protected override wantFromOthers(waiter: string): boolean {
    if (this.held.size > 0) return false;
    this.announce('want', waiter);
    return true;
  }

  protected override announce(event: 'want' | 'got', waiter: string): void {
    this.signal({ gate: this.key, event, from: this.deps.instance, waiter });
  }

  private signal(s: GateSignal): void {
    this.deps.wakeups.notify('mailroom_connections', JSON.stringify(s));
  }

  /** A signal from another instance (or, with no payload, the LISTEN connection back after a gap). */
  received(s: GateSignal | null): void {
    if (!s) {
      this.fullUntil = 0;
      this.emit('freed');
      return;
    }
    if (s.from === this.deps.instance) return;
    if (s.event === 'want' && s.waiter) {
      this.remoteWaiters.set(s.waiter, Date.now() + WANT_TTL_MS);
      this.giveBackIdle();
      this.emit('pressure');
    } else if (s.event === 'got' && s.waiter) {
      this.remoteWaiters.delete(s.waiter);
    } else if (s.event === 'freed') {
      this.fullUntil = 0;
      this.emit('freed');
    }
  }

  close(): void {
    for (const timer of this.idle.values()) clearTimeout(timer);
    this.idle.clear();
  }
}

function parseSignal(payload: string): GateSignal | null | undefined {
  if (!payload) return null;
  try {
    const s = JSON.parse(payload) as GateSignal;
    return typeof s.gate === 'string' && typeof s.from === 'string' ? s : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Gates a peer asked to leave alone for a while (Microsoft Graph's 429 or 503 with Retry-After
 * throttles the whole mailbox for that long). With a database, a pause is the lease row
 * `pause:<gate>` expiring when it ends, so every instance sees it (SQLite and PostgreSQL alike);
 * this instance also remembers its own, so its next request is held back without a query.
 */
export class GatePauses {
  private readonly local = new Map<string, number>();

  constructor(
    private readonly db: Db | undefined,
    private readonly instance: string,
    /** The clock pauses are measured on (the application's). */
    readonly now: () => Date = () => new Date(),
  ) {}

  private name(key: string): string {
    return `pause:${key}`;
  }

  /** Pauses `key` until `until` (a longer pause already recorded stays). */
  async pause(key: string, until: Date): Promise<void> {
    if (until.getTime() > (this.local.get(key) ?? 0)) this.local.set(key, until.getTime());
    if (this.db) await extendLease(this.db, this.name(key), this.instance, until, this.now());
  }

  /** Pauses `key` for `ms` from now. */
  pauseFor(key: string, ms: number): Promise<void> {
    return this.pause(key, new Date(this.now().getTime() + ms));
  }

  /** When the pause of `key` ends, if it is paused now; else null. A database that does not answer pauses nothing. */
  async until(key: string): Promise<Date | null> {
    const now = this.now().getTime();
    const mine = this.local.get(key);
    if (mine !== undefined && mine <= now) this.local.delete(key);
    if (mine !== undefined && mine > now) return new Date(mine);
    if (!this.db) return null;
    return leaseUntil(this.db, this.name(key), this.now()).catch(() => null);
  }
}

/**
 * One gate per mailbox (and per resource: a Graph mailbox's requests are another gate), shared by the
 * outbox worker and the server tests of this process; on PostgreSQL, by every instance.
 */
export class ConnectionGates {
  private readonly gates = new Map<string, Gate>();
  private heartbeat: NodeJS.Timeout | undefined;
  /** Gates a peer asked to leave alone until a time (throttling); recorded in `db` when given, else here only. */
  readonly pauses: GatePauses;

  constructor(
    private readonly cluster?: ClusterDeps,
    db?: Db,
  ) {
    this.pauses = new GatePauses(db ?? cluster?.db, cluster?.instance ?? `instance-${randomUUID()}`, cluster?.now);
    if (!cluster) return;
    cluster.wakeups.on('mailroom_connections', (payload) => {
      const s = parseSignal(payload);
      if (s === undefined) return;
      for (const [key, gate] of this.gates) if (gate instanceof ClusterGate && (s === null || s.gate === key)) gate.received(s);
    });
    // A third of the lease: two heartbeats may be missed before a live instance's slot could be taken.
    this.heartbeat = setInterval(() => void this.renew(), Math.max(100, Math.floor(cluster.leaseMs / 3)));
    this.heartbeat.unref();
  }

  private async renew(): Promise<void> {
    const c = this.cluster!;
    const names = [...this.gates.values()].flatMap((g) => (g instanceof ClusterGate ? g.heldNames() : []));
    try {
      const renewed = new Set(await renewLeases(c.db, names, c.instance, c.leaseMs, c.now()));
      const lost = names.filter((n) => !renewed.has(n));
      if (lost.length) c.logger.warn({ event: 'connections.slot_lost', slots: lost }, 'connection slots expired while in use (the database was unreachable); another instance may open one more connection until they are closed');
    } catch (e) {
      c.logger.debug({ event: 'connections.renew_failed', err: (e as Error).message }, 'could not renew connection slots; retrying at the next heartbeat');
    }
  }

  /** The gate `key`, its limit updated to `limit` (null: no limit). */
  for(key: string, limit: number | null): ConnectionGate {
    const max = limit ?? Infinity;
    // Without a limit there is nothing to count across instances.
    const shared = this.cluster !== undefined && limit !== null;
    let g = this.gates.get(key);
    if (g && (g instanceof ClusterGate) === shared) g.setLimit(max);
    else {
      g = shared ? new ClusterGate(key, max, this.cluster!) : new LocalGate(max);
      this.gates.set(key, g);
    }
    return g;
  }

  /**
   * Who has connections open for each gate, and how many: from the slot rows on PostgreSQL (every
   * instance), else this instance's own count. `instance` names this one.
   */
  async holders(instance: string): Promise<Map<string, Record<string, number>>> {
    const out = new Map<string, Record<string, number>>();
    const add = (key: string, holder: string, n: number) => {
      const h = out.get(key) ?? {};
      h[holder] = (h[holder] ?? 0) + n;
      out.set(key, h);
    };
    for (const [key, g] of this.gates) if (g instanceof LocalGate && g.used > 0) add(key, instance, g.used);
    if (this.cluster) {
      for (const l of await listLeases(this.cluster.db, 'connections:')) {
        const key = l.name.slice('connections:'.length, l.name.lastIndexOf(':'));
        add(key, l.holder, 1);
      }
    }
    return out;
  }

  /** Runs `fn` holding one of the slots of gate `key`. */
  async with<T>(key: string, limit: number | null, fn: () => Promise<T>): Promise<T> {
    const release = await this.for(key, limit).acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Stops the heartbeat and gives back whatever slot rows this instance still has (a clean shutdown). */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    for (const g of this.gates.values()) if (g instanceof ClusterGate) g.close();
    if (this.cluster) await releaseLeasesOf(this.cluster.db, this.cluster.instance, 'connections:').catch(() => undefined);
  }
}
