import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { Mailroom } from '../../mailroom.ts';
import { countByState } from '../../storage/outbox-store.ts';
import { requireAuth } from '../session-auth.ts';

export function healthRoutes(app: FastifyInstance, mr: Mailroom): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    try {
      await sql`select 1`.execute(mr.database.db);
      return { status: 'ready', database: mr.database.dialect };
    } catch (e) {
      return reply.code(503).send({ status: 'unavailable', database: mr.database.dialect, error: { code: 'MR_DATABASE_UNAVAILABLE', message: `The database cannot be reached: ${(e as Error).message}` } });
    }
  });

  // Server states and queue sizes are not for everyone: an outbox:read or inbound:read API key
  // (Prometheus sends it as a bearer token) unless METRICS_PUBLIC=true. Only counts, never a message:
  // a server-limited key sees the same totals as any other.
  app.get('/metrics', mr.config.http.metricsPublic ? {} : { onRequest: requireAuth('outbox:read', 'inbound:read') }, async (_req, reply) => {
    const servers = await mr.servers.list({ sending: false });
    const counts = new Map<string, number>();
    for (const s of servers) counts.set(s.tokenStatus, (counts.get(s.tokenStatus) ?? 0) + 1);
    const outbox = await countByState(mr.database.db);
    const lines = [
      '# HELP mailroom_outbox_messages Outbox messages by state.',
      '# TYPE mailroom_outbox_messages gauge',
      ...['queued', 'sending', 'sent', 'failed', 'held', 'cancelled'].map((st) => `mailroom_outbox_messages{state="${st}"} ${outbox[st] ?? 0}`),
      '# HELP mailroom_mail_servers Outgoing mail servers by OAuth token status.',
      '# TYPE mailroom_mail_servers gauge',
      ...['valid', 'not_connected', 'reconnect_needed'].map((st) => `mailroom_mail_servers{token_status="${st}"} ${counts.get(st) ?? 0}`),
      '# HELP mailroom_process_uptime_seconds Seconds since the process started.',
      '# TYPE mailroom_process_uptime_seconds gauge',
      `mailroom_process_uptime_seconds ${process.uptime().toFixed(0)}`,
    ];
    return reply.type('text/plain; version=0.0.4').send(lines.join('\n') + '\n');
  });
}
