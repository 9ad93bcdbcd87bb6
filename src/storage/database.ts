import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import { migrateToLatest } from './migrations.ts';
import { privateDir, privateFile } from './private-files.ts';
import type { Database } from './schema.ts';

export type Db = Kysely<Database>;

export interface OpenedDatabase {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  close(): Promise<void>;
}

/** Opens the database named by DATABASE_URL and brings its schema up to date. */
export async function openDatabase(databaseUrl: string): Promise<OpenedDatabase> {
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
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    dialect = 'sqlite';
  } else {
    // Loaded only for PostgreSQL: the embedded default never pays for the driver.
    const { default: pg } = await import('pg');
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    dialect = 'postgres';
  }
  try {
    await migrateToLatest(db, dialect);
  } catch (e) {
    await db.destroy();
    throw e;
  }
  return { db, dialect, close: () => db.destroy() };
}
