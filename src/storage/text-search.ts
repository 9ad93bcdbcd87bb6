import { type Expression, type SqlBool, sql } from 'kysely';

/**
 * `lower(column) LIKE '%q%' ESCAPE '\'` over the columns, OR-ed. The ESCAPE clause makes the search
 * text's own `%`, `_` and `\` match themselves on both engines (SQLite has no default escape
 * character; PostgreSQL's is the backslash), and lower() makes it case-insensitive on both.
 */
export function containsText(columns: readonly string[], q: string): Expression<SqlBool> {
  const pattern = `%${q.toLowerCase().replace(/[%_\\]/g, (c) => `\\${c}`)}%`;
  return sql<SqlBool>`(${sql.join(
    columns.map((c) => sql`lower(${sql.ref(c)}) like ${pattern} escape '\\'`),
    sql` or `,
  )})`;
}
