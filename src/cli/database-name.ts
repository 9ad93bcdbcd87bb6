/** The database a command opens, for people: the SQLite file, or PostgreSQL's user@host:port/database (never the password). */
export function databaseName(databaseUrl: string): string {
  if (databaseUrl.startsWith('sqlite:')) return `SQLite ${databaseUrl.slice('sqlite:'.length)}`;
  try {
    const u = new URL(databaseUrl);
    return `PostgreSQL ${u.username ? `${decodeURIComponent(u.username)}@` : ''}${u.host}${u.pathname}`;
  } catch {
    return 'PostgreSQL (DATABASE_URL does not parse as a URL)';
  }
}
