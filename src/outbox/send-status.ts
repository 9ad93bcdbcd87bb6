import type { Db } from '../storage/database.ts';
import type { MailServerRecord } from '../storage/mail-server-store.ts';
import { dayWindow, firstQueued, heldSummary, sendingSummaries, serverUsage, type ServerUsage } from '../storage/outbox-store.ts';
import { pace } from './pacing.ts';

/** A server's sending against its limits, as the server form and Mail Health show it. */
export interface SendStatus {
  /** Recipients of the last 24 hours (sliding, as Exchange counts), including messages being sent. */
  recipientsToday: number;
  recipientsPerDay: number | null;
  messagesLastMinute: number;
  messagesPerMinute: number | null;
  /** Messages waiting to be sent, and when the next may go: null when none waits (or it may go now). */
  queued: number;
  nextSendAt: string | null;
  /** Messages held, and the time the first quota hold ends (null: held until the server is fixed). */
  held: number;
  heldUntil: string | null;
}

/** Read from the rows, like the worker's own count: every instance shows the same numbers. */
export async function sendStatus(db: Db, server: MailServerRecord, now: Date): Promise<SendStatus> {
  const [usage, held, next] = await Promise.all([serverUsage(db, server.id, now), heldSummary(db, server.id), firstQueued(db, server.id)]);
  return statusOf(db, server, now, usage, held, next);
}

/** sendStatus of every server at once: a few statements for all of them, not a few each. */
export async function sendStatuses(db: Db, servers: readonly MailServerRecord[], now: Date): Promise<Map<string, SendStatus>> {
  const { usage, held, first } = await sendingSummaries(db, now);
  const out = new Map<string, SendStatus>();
  await Promise.all(
    servers.map(async (s) => {
      out.set(s.id, await statusOf(db, s, now, usage.get(s.id) ?? { lastMinute: [], recipientsLastDay: 0 }, held.get(s.id) ?? { count: 0, until: null }, first.get(s.id)));
    }),
  );
  return out;
}

async function statusOf(
  db: Db,
  server: MailServerRecord,
  now: Date,
  usage: ServerUsage,
  held: { count: number; until: string | null },
  next: { nextAttemptAt: string; recipients: number; count: number } | undefined,
): Promise<SendStatus> {
  let nextSendAt: string | null = null;
  if (next) {
    const window = await (server.limits.recipientsPerDay !== null && usage.recipientsLastDay + next.recipients > server.limits.recipientsPerDay ? dayWindow(db, server.id, now) : []);
    const p = pace(server.limits, usage, [next.recipients], now, () => window);
    const at = Math.max(Date.parse(next.nextAttemptAt), p.nextAt?.getTime() ?? 0, p.quotaUntil?.getTime() ?? 0);
    nextSendAt = at > now.getTime() ? new Date(at).toISOString() : null;
  }
  return {
    recipientsToday: usage.recipientsLastDay,
    recipientsPerDay: server.limits.recipientsPerDay,
    messagesLastMinute: usage.lastMinute.length,
    messagesPerMinute: server.limits.messagesPerMinute,
    queued: next?.count ?? 0,
    nextSendAt,
    held: held.count,
    heldUntil: held.until,
  };
}
