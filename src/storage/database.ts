import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { CompiledQuery, type DatabaseConnection, type Driver, Kysely, PostgresDialect, type SqliteDatabase, SqliteDialect, type SqliteDialectConfig, SqliteDriver } from 'kysely';
import { migrateToLatest } from './migrations.ts';
import { privateDir, privateFile } from './private-files.ts';
import type { Database } from './schema.ts';

export type Db = Kysely<Database>;

export interface OpenedDatabase {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  /** SQLite: the turns at the write lock, for another connection of this process (openDatabase's `turns`). */
  turns?: SharedArrayBuffer;
  close(): Promise<void>;
}

/** Atomics.waitAsync (Node 16+), not yet in the ES2023 library types. */
interface AtomicsWaitAsync {
  waitAsync(a: Int32Array, index: number, value: number, timeoutMs: number): { async: false; value: string } | { async: true; value: Promise<string> };
}

/** A turn held this long is taken over: its thread ended in the middle (SQLite's busy timeout). */
const TURN_WAIT_MS = 5000;

/**
 * Turns at SQLite's write lock for the connections of one process's threads (the outbox's delivery
 * thread has its own). SQLite's busy wait, which a connection meets when the other holds the write
 * lock, polls in sleeps of up to 100 ms that block the thread's event loop, and the connection that
 * commits most often keeps winning: measured, the delivery thread spent most of a burst of POSTs
 * asleep in it. A turn is waited for without blocking the event loop, and taken only when the
 * thread runs on (never handed to a thread whose event loop is still busy elsewhere), so the other
 * waits at most for a transaction that is running. SQLite's own lock still guards the data; a turn
 * only orders who asks for it.
 */
export class SqliteTurns {
  /** [0]: 1 while a thread holds the turn. */
  private readonly held: Int32Array;

  /** `buffer`: another thread's turns (its OpenedDatabase.turns), or new ones. */
  constructor(readonly buffer = new SharedArrayBuffer(4)) {
    this.held = new Int32Array(buffer);
  }

  /** Waits for the turn; the function returned gives it back. */
  async take(): Promise<() => void> {
    const held = this.held;
    const deadline = Date.now() + TURN_WAIT_MS;
    while (Atomics.compareExchange(held, 0, 0, 1) !== 0) {
      const left = deadline - Date.now();
      if (left <= 0) {
        Atomics.store(held, 0, 1);
        break;
      }
      const w = (Atomics as unknown as AtomicsWaitAsync).waitAsync(held, 0, 1, left);
      if (w.async) await w.value;
    }
    let given = false;
    return () => {
      if (given) return;
      given = true;
      Atomics.store(held, 0, 0);
      Atomics.notify(held, 0);
    };
  }
}

/**
 * SQLite transactions take the write lock when they begin (BEGIN IMMEDIATE). The outbox's delivery
 * thread has a connection of its own: a deferred transaction that read first and then writes while
 * the other connection commits fails at once with SQLITE_BUSY (the busy timeout does not apply to
 * it), whereas one waiting to begin waits out the other's commit. A transaction waits for its
 * turn (SqliteTurns) before it begins and ends it at commit; a single statement that writes meets
 * the other's transaction, at most a few milliseconds, through SQLite's busy timeout.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  private endTurn: (() => void) | undefined;

  constructor(
    config: SqliteDialectConfig,
    private readonly turns: SqliteTurns,
  ) {
    super(config);
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    this.endTurn = await this.turns.take();
    try {
      await connection.executeQuery(CompiledQuery.raw('begin immediate'));
    } catch (e) {
      this.turnEnded();
      throw e;
    }
  }

  override async commitTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await connection.executeQuery(CompiledQuery.raw('commit'));
    } finally {
      this.turnEnded();
    }
  }

  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await connection.executeQuery(CompiledQuery.raw('rollback'));
    } finally {
      this.turnEnded();
    }
  }

  private turnEnded(): void {
    this.endTurn?.();
    this.endTurn = undefined;
  }
}

/** Compiled statements kept per connection: a thousand mailboxes' claims and imports run the same few hundred. */
const STATEMENTS_KEPT = 500;

/**
 * The connection as kysely sees it, with its compiled statements kept by SQL text: kysely asks
 * better-sqlite3 to compile each query anew, a tenth of the event loop's time at a thousand mailboxes.
 * The least recently used is dropped past STATEMENTS_KEPT. Kysely runs one query at a time per
 * connection, so a kept statement is never in use twice at once.
 */
export function keepingStatements(sqlite: SQLite.Database): SqliteDatabase {
  const kept = new Map<string, SQLite.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(sql: string) {
      let stmt = kept.get(sql);
      if (stmt) kept.delete(sql);
      else {
        stmt = sqlite.prepare(sql);
        if (kept.size >= STATEMENTS_KEPT) kept.delete(kept.keys().next().value!);
      }
      kept.set(sql, stmt);
      return stmt;
    },
  };
}

class ImmediateSqliteDialect extends SqliteDialect {
  constructor(
    private readonly options: SqliteDialectConfig,
    private readonly turns: SqliteTurns,
  ) {
    super(options);
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.options, this.turns);
  }
}

/**
 * Opens the database named by DATABASE_URL and brings its schema up to date (`migrate: false`: a
 * second connection of a process that has already done so).
 */
export async function openDatabase(
  databaseUrl: string,
  timeouts: { connectMs: number; statementMs: number } = { connectMs: 5000, statementMs: 30_000 },
  opts: { migrate?: boolean; turns?: SharedArrayBuffer } = {},
): Promise<OpenedDatabase> {
  let db: Db;
  let turns: SqliteTurns | undefined;
  let dialect: OpenedDatabase['dialect'];
  if (databaseUrl.startsWith('sqlite:')) {
    const file = databaseUrl.slice('sqlite:'.length);
    if (file !== ':memory:') {
      privateDir(dirname(file));
      privateFile(file);
    }
    const sqlite = new SQLite(file);
    // WAL for concurrent readers; synchronous=FULL so a committed row survives power loss.
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = FULL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    turns = new SqliteTurns(opts.turns);
    db = new Kysely<Database>({ dialect: new ImmediateSqliteDialect({ database: keepingStatements(sqlite) }, turns) });
    dialect = 'sqlite';
  } else {
    // Loaded only for PostgreSQL: the embedded default never pays for the driver.
    const { default: pg } = await import('pg');
    // Bounded waits: with the database down or unreachable a request fails within the connect
    // timeout (503 MR_DATABASE_UNAVAILABLE) instead of hanging; the server cancels a statement that
    // runs too long, and the client gives up a little later if even the cancel does not come back.
    const pool = new pg.Pool({
      connectionString: databaseUrl,
      max: 10,
      connectionTimeoutMillis: timeouts.connectMs,
      statement_timeout: timeouts.statementMs,
      query_timeout: timeouts.statementMs + 5000,
      keepAlive: true,
    });
    // An idle connection killed by the server (a restart, pg_terminate_backend) is dropped from the
    // pool; without a listener it would crash the process.
    pool.on('error', () => undefined);
    // The same for a connection in use: its query fails (and the caller sees it), the process lives.
    pool.on('connect', (client) => client.on('error', () => undefined));
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    dialect = 'postgres';
  }
  try {
    if (opts.migrate !== false) await migrateToLatest(db, dialect);
  } catch (e) {
    await db.destroy();
    throw e;
  }
  return { db, dialect, ...(turns && { turns: turns.buffer }), close: () => db.destroy() };
}

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', '57P01', '57P02', '57P03', '3D000', '53300']);

/**
 * Whether an error means the database cannot be reached right now (down, restarting, unreachable,
 * our connection killed, the connect timeout passed) rather than a fault in the request.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err as { code?: unknown; message?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && (UNAVAILABLE_CODES.has(e.code) || e.code.startsWith('08'))) return true;
    const m = typeof e.message === 'string' ? e.message : '';
    if (/timeout exceeded when trying to connect|Connection terminated|Query read timeout|Client has encountered a connection error|connection is closed|terminating connection/i.test(m)) return true;
  }
  return false;
}
