import type { Db } from '../storage/database.ts';
import { findOutboxIdsByMessageIds, findOutboxMessage } from '../storage/outbox-store.ts';
import type { DeliveryReport } from './delivery-report.ts';

/**
 * Mailroom's own identifier on outgoing mail: the outbox id, in an `X-Mailroom-Id` header and as the
 * local part of the Message-ID it generates. Exchange and Gmail NDRs often drop the original
 * Message-ID (or replace it with their own) but quote the original headers, X- headers included.
 */
export const MAILROOM_ID_HEADER = 'X-Mailroom-Id';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Reports are small; the headers we look for sit in the first part of the quoted original. */
const SCAN_BYTES = 256 * 1024;

/** The values of a header wherever it occurs in the raw report (its own headers or the quoted original's). */
function headerValues(raw: Buffer, name: string): string[] {
  const text = raw.subarray(0, SCAN_BYTES).toString('latin1');
  const re = new RegExp(`^${name}:[ \\t]*([^\\r\\n]*(?:\\r?\\n[ \\t]+[^\\r\\n]*)*)`, 'gim');
  return [...text.matchAll(re)].map((m) => m[1]!.replace(/\r?\n[ \t]+/g, ' ').trim()).filter(Boolean);
}

const angle = (v: string): string[] => v.match(/<[^<>\s]+>/g) ?? [];

export interface ReportMatch {
  outboxMessageId: string | null;
  /** What matched: 'mailroom-id', 'message-id', 'microsoft-original-message-id', 'in-reply-to', or null. */
  matchedBy: string | null;
}

/**
 * Finds the outgoing message a report is about. Candidates, best first: Mailroom's own identifier,
 * the Message-ID of the attached original (message/rfc822 or text/rfc822-headers),
 * X-Microsoft-Original-Message-ID, then the report's In-Reply-To and References (Exchange NDRs and
 * auto-replies carry them). Among several messages the one whose recipients include a reported
 * address (compared case-insensitively) wins.
 */
export async function matchReport(
  db: Db,
  raw: Buffer,
  report: DeliveryReport,
  own: { inReplyTo: string | null; references: string[] },
): Promise<ReportMatch> {
  const candidates: Array<{ by: string; ids: string[] }> = [];
  const headerId = report.originalHeaders?.[MAILROOM_ID_HEADER.toLowerCase()] ?? report.originalHeaders?.[MAILROOM_ID_HEADER];
  const mailroomIds = [...(headerId ? [headerId] : []), ...headerValues(raw, MAILROOM_ID_HEADER)].map((v) => v.trim()).filter((v) => UUID.test(v));
  candidates.push({ by: 'mailroom-id', ids: mailroomIds });
  candidates.push({ by: 'message-id', ids: report.originalMessageIds });
  candidates.push({ by: 'microsoft-original-message-id', ids: headerValues(raw, 'X-Microsoft-Original-Message-ID').flatMap(angle) });
  candidates.push({ by: 'in-reply-to', ids: [own.inReplyTo, ...own.references].filter((x): x is string => !!x) });
  const addresses = new Set(report.recipients.map((r) => r.address.toLowerCase()));
  if (report.from) addresses.add(report.from.toLowerCase());
  let fallback: ReportMatch | null = null;
  for (const c of candidates) {
    const ids: string[] = [];
    if (c.by === 'mailroom-id') ids.push(...c.ids);
    else {
      for (const id of await findOutboxIdsByMessageIds(db, c.ids.map((x) => [x]))) if (id) ids.push(id);
      // A Message-ID Mailroom generated carries the outbox id as its local part.
      for (const mid of c.ids) {
        const local = /^<([^@>]+)@/.exec(mid)?.[1];
        if (local && UUID.test(local)) ids.push(local.toLowerCase());
      }
    }
    for (const id of ids) {
      const m = await findOutboxMessage(db, id);
      if (!m) continue;
      const theirs = [...m.to, ...m.cc, ...m.bcc].map((d) => (/<([^<>]*)>\s*$/.exec(d)?.[1] ?? d).trim().toLowerCase());
      if (!addresses.size || theirs.some((a) => addresses.has(a))) return { outboxMessageId: m.id, matchedBy: c.by };
      fallback ??= { outboxMessageId: m.id, matchedBy: c.by };
    }
  }
  return fallback ?? { outboxMessageId: null, matchedBy: null };
}
