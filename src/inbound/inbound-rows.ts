import { randomUUID } from 'node:crypto';
import { matchReport } from '../bounces/match-report.ts';
import { recognizeReport } from '../bounces/recognize-report.ts';
import { type NewReport, serverReportSettings } from '../storage/bounce-store.ts';
import type { Db } from '../storage/database.ts';
import type { NewInboundMessage } from '../storage/inbound-store.ts';
import type { MailServerRecord } from '../storage/mail-server-store.ts';
import { findOutboxIdsByMessageIds } from '../storage/outbox-store.ts';
import type { ParsedMessage } from './parse-message.ts';

/** A fetched and parsed message, whichever way it was fetched (IMAP UID, Graph immutable id). */
export interface FetchedMessage {
  uid: number;
  id: string;
  parsed: ParsedMessage;
  raw: NewInboundMessage['raw'];
  /** Graph: the immutable id, which is also what makes the import exactly-once. */
  remoteId?: string;
}

/**
 * The rows an import stores for fetched messages: their fields, replies linked to the outbox message
 * they answer, the after-fetch action pending. One definition for IMAP and Graph.
 */
export async function inboundRows(db: Db, server: MailServerRecord, folder: string, uidValidity: string, got: FetchedMessage[]): Promise<NewInboundMessage[]> {
  const links = await findOutboxIdsByMessageIds(db, got.map(({ parsed: p }) => [p.inReplyTo, ...p.references].filter((x): x is string => !!x)));
  const afterFetch = server.imap!.afterFetch !== 'leave';
  const { deliverReports } = await serverReportSettings(db, server.id);
  const reports = await Promise.all(got.map((f) => reportOf(db, f)));
  return got.map(({ uid, id, parsed: { sha256, ...fields }, raw, remoteId }, k) => ({
    ...fields,
    id,
    serverId: server.id,
    folder,
    uidValidity,
    uid,
    dedupeKey: remoteId !== undefined ? `graph:${remoteId}` : (fields.messageId ?? `sha256:${sha256}`),
    raw,
    outboxMessageId: links[k] ?? null,
    afterFetchPending: afterFetch,
    ...(remoteId !== undefined && { remoteId }),
    ...(reports[k] && { report: reports[k], reportOnly: !deliverReports }),
  }));
}

/**
 * Recognises a report (DSN, auto-reply, read receipt) in a fetched message held in memory and finds
 * the outgoing message it is about. Reports are small; one streamed to storage (above the in-memory
 * threshold) is imported as ordinary mail.
 */
async function reportOf(db: Db, f: FetchedMessage): Promise<Omit<NewReport, 'inboundMessageId'> | null> {
  if (!('mime' in f.raw) || f.parsed.problem) return null;
  const report = await recognizeReport(f.raw.mime);
  if (!report) return null;
  const { outboxMessageId } = await matchReport(db, f.raw.mime, report, f.parsed);
  const own = report.messageId ?? f.parsed.messageId;
  return { id: randomUUID(), reportKey: own ? `mid:${own}` : `sha256:${f.parsed.sha256}`, outboxMessageId, report };
}
