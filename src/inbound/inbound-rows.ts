import { randomUUID } from 'node:crypto';
import { matchReport } from '../bounces/match-report.ts';
import { recognizeReport } from '../bounces/recognize-report.ts';
import { type NewReport, serverReportSettings } from '../storage/bounce-store.ts';
import type { Db } from '../storage/database.ts';
import type { NewInboundMessage } from '../storage/inbound-store.ts';
import type { MailServerRecord } from '../storage/mail-server-store.ts';
import { findOutboxIdsByMessageIds } from '../storage/outbox-store.ts';
import { MAX_READ_BYTES } from '../bounces/mime-walk.ts';
import { type ParsedMessage, type RawTarget, rawHead } from './parse-message.ts';

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
 * they answer, the after-fetch action pending, reports recognised. One definition for IMAP and Graph.
 * `stored` says where raw messages streamed to storage are, so a large report is recognised too.
 */
export async function inboundRows(db: Db, server: MailServerRecord, folder: string, uidValidity: string, got: FetchedMessage[], stored?: RawTarget): Promise<NewInboundMessage[]> {
  const links = await findOutboxIdsByMessageIds(db, got.map(({ parsed: p }) => [p.inReplyTo, ...p.references].filter((x): x is string => !!x)));
  const afterFetch = server.imap!.afterFetch !== 'leave';
  const { deliverReports } = await serverReportSettings(db, server.id);
  const reports = await Promise.all(got.map((f) => reportOf(db, f, stored)));
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
 * Recognises a report (DSN, auto-reply, read receipt) in a fetched message and finds the outgoing
 * message it is about. A non-delivery report carries the original, attachments included, so it is
 * often over the in-memory threshold and streamed to storage: its first MAX_READ_BYTES are read back
 * from there (the report's own parts come before the original).
 */
async function reportOf(db: Db, f: FetchedMessage, stored: RawTarget | undefined): Promise<Omit<NewReport, 'inboundMessageId'> | null> {
  if (f.parsed.problem) return null;
  const head = 'mime' in f.raw ? f.raw.mime : stored ? await rawHead(stored, f.raw, f.id, MAX_READ_BYTES) : null;
  if (!head) return null;
  const report = await recognizeReport(head);
  if (!report) return null;
  const { outboxMessageId } = await matchReport(db, head, report, f.parsed);
  const own = report.messageId ?? f.parsed.messageId;
  return { id: randomUUID(), reportKey: own ? `mid:${own}` : `sha256:${f.parsed.sha256}`, outboxMessageId, report };
}
