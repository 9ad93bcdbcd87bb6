import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { CompiledQuery, type DatabaseConnection, type Driver, Kysely, PostgresDialect, SqliteDialect, type SqliteDialectConfig, SqliteDriver } from 'kysely';
import { migrateToLatest } from './migrations.ts';
import { privateDir, privateFile } from './private-files.ts';
import type { Database } from './schema.ts';

export type Db = Kysely<Database>;

export interface OpenedDatabase {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  close(): Promise<void>;
}

/**
 * SQLite transactions take the write lock when they begin (BEGIN IMMEDIATE). The outbox's delivery
 * thread has a connection of its own: a deferred transaction that read first and then writes while
 * the other connection commits fails at once with SQLITE_BUSY (the busy timeout does not apply to
 * it), whereas one waiting to begin waits out the other's commit.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  constructor(private readonly options: SqliteDialectConfig) {
    super(options);
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.options);
  }
}

/**
 * Opens the database named by DATABASE_URL and brings its schema up to date (`migrate: false`: a
 * second connection of a process that has already done so).
 */
export async function openDatabase(
  databaseUrl: string,
  timeouts: { connectMs: number; statementMs: number } = { connectMs: 5000, statementMs: 30_000 },
  opts: { migrate?: boolean } = {},
): Promise<OpenedDatabase> {
  let db: Db;
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
    db = new Kysely<Database>({ dialect: new ImmediateSqliteDialect({ database: sqlite }) });
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
  return { db, dialect, close: () => db.destroy() };
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
