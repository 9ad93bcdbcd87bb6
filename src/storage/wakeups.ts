import { PostgresAdapter, sql } from 'kysely';
import type { Logger } from '../logger.ts';
import type { Db } from './database.ts';

/** What an instance tells the others: new outbox mail, new webhook deliveries, a mailbox's connection slots wanted or freed. */
export type WakeupChannel = 'mailroom_outbox' | 'mailroom_webhooks' | 'mailroom_connections' | 'mailroom_inbound';
const CHANNELS: readonly WakeupChannel[] = ['mailroom_outbox', 'mailroom_webhooks', 'mailroom_connections', 'mailroom_inbound'];

/**
 * Wake-ups across instances on PostgreSQL: LISTEN on one dedicated connection per process
 * (reconnected with backoff when it drops), NOTIFY after a commit. Polling stays the fallback, so a
 * lost notification only costs a poll interval; after a reconnect every handler runs once to catch
 * up. On SQLite there is one instance and this does nothing.
 */
export interface Wakeups {
  /**
   * Tells every instance (this one included) that work is waiting; the same channel and payload are
   * coalesced to one NOTIFY per turn of the event loop.
   */
  notify(channel: WakeupChannel, payload?: string): void;
  /** `payload` is what the NOTIFY carried; empty after a reconnect, when every handler runs once to catch up. */
  on(channel: WakeupChannel, handler: (payload: string) => void): void;
  /** Whether the LISTEN connection is up (PostgreSQL) — for the health view. */
  listening(): boolean;
  close(): Promise<void>;
}

export function isPostgres(db: Db): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/** NOTIFY inside a transaction is delivered when it commits, and not at all if it rolls back. */
export async function notifyOnCommit(db: Db, channel: WakeupChannel, payload = ''): Promise<void> {
  if (isPostgres(db)) await sql`select pg_notify(${channel}, ${payload})`.execute(db);
}

export function startWakeups(db: Db, databaseUrl: string, logger: Logger, opts: { connectionTimeoutMs?: number } = {}): Wakeups {
  const handlers = new Map<WakeupChannel, Array<(payload: string) => void>>();
  const pending = new Set<string>();
  const run = (channel: string, payload = '') => {
    for (const h of handlers.get(channel as WakeupChannel) ?? []) {
      try {
        h(payload);
      } catch (e) {
        logger.error({ err: e, event: 'wakeup.handler_error', channel }, 'wake-up handler failed');
      }
    }
  };
  if (!isPostgres(db)) {
    return {
      notify: () => undefined,
      on: (channel, h) => void handlers.set(channel, [...(handlers.get(channel) ?? []), h]),
      listening: () => false,
      close: async () => undefined,
    };
  }

  let closed = false;
  let up = false;
  let client: import('pg').Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  let delay = 500;
  const schedule = () => {
    up = false;
    client = undefined;
    if (closed || retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      void connect();
    }, delay);
    retry.unref();
    delay = Math.min(delay * 2, 10_000);
  };
  const connect = async () => {
    const { default: pg } = await import('pg');
    const c = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: opts.connectionTimeoutMs ?? 5000, keepAlive: true });
    let gone = false;
    const lost = (why: string) => {
      if (gone) return;
      gone = true;
      if (!closed) logger.warn({ event: 'wakeup.disconnected', reason: why }, 'wake-up connection lost; polling until it is back');
      c.end().catch(() => undefined);
      schedule();
    };
    c.on('error', (e) => lost(e.message));
    c.on('end', () => lost('connection closed'));
    c.on('notification', (m) => run(m.channel, m.payload));
    try {
      await c.connect();
      for (const ch of CHANNELS) await c.query(`LISTEN ${ch}`);
    } catch (e) {
      lost((e as Error).message);
      return;
    }
    if (closed) {
      await c.end().catch(() => undefined);
      return;
    }
    client = c;
    up = true;
    delay = 500;
    // Whatever was notified while the connection was down: look once now.
    for (const ch of CHANNELS) run(ch);
  };
  void connect();

  return {
    notify(channel, payload = '') {
      const key = `${channel}\n${payload}`;
      if (pending.has(key)) return;
      pending.add(key);
      setImmediate(() => {
        pending.delete(key);
        notifyOnCommit(db, channel, payload).catch((e: unknown) => logger.debug({ event: 'wakeup.notify_failed', channel, err: (e as Error).message }, 'NOTIFY failed; the others will poll'));
      });
    },
    on: (channel, h) => void handlers.set(channel, [...(handlers.get(channel) ?? []), h]),
    listening: () => up,
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      const c = client;
      client = undefined;
      up = false;
      await c?.end().catch(() => undefined);
    },
  };
}
