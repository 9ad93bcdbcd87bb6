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
  }));
}
