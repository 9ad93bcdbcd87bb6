import { createReadStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { z } from 'zod';
import { MailroomError } from '../errors/errors.ts';
import { pageLimit, parseInput, queryText } from '../errors/parse-input.ts';
import type { Db } from '../storage/database.ts';
import { findInbound, findInboundMime, findRawChunk, type InboundRow, listInbound } from '../storage/inbound-store.ts';
import { mailServerNames } from '../storage/mail-server-store.ts';
import { streamAttachment } from './parse-message.ts';
import { safeFilename } from './safe-filename.ts';
import { deliveryStates, listDeliveries } from '../storage/webhook-store.ts';

export const inboundListSchema = z.object({
  order: z.enum(['asc', 'desc'], { error: 'order must be asc or desc' }).default('asc'),
  after: queryText('after').optional(),
  cursor: queryText('cursor').optional(),
  limit: pageLimit,
  serverId: queryText('serverId').optional(),
  q: queryText('q').optional(),
});

const encode = (seq: number) => Buffer.from(`s${seq}`).toString('base64url');
function decode(cursor: string, field: string): number {
  const m = /^s(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m) throw new MailroomError('MR_VALIDATION', 'The cursor is not one this API returned.', { field });
  return Number(m[1]);
}

export class InboundMessageService {
  /** `baseUrl` (BASE_URL) makes `rawUrl` absolute, for webhook receivers; without it the path alone. */
  constructor(private readonly deps: { db: Db; dataDir: string; baseUrl?: string }) {}

  /** Where the message exactly as fetched can be downloaded, or null when it was not kept. */
  rawUrl(r: Pick<InboundRow, 'id' | 'rawKept'>): string | null {
    return r.rawKept ? `${(this.deps.baseUrl ?? '').replace(/\/+$/, '')}/api/v1/inbound-messages/${encodeURIComponent(r.id)}/raw` : null;
  }

  private async views(rows: InboundRow[]) {
    const names = await mailServerNames(this.deps.db, rows.map((r) => r.serverId));
    const states = await deliveryStates(this.deps.db, rows.map((r) => r.id));
    return rows.map((r) => ({
      id: r.id,
      serverId: r.serverId,
      serverName: names.get(r.serverId) ?? null,
      folder: r.folder,
      messageId: r.messageId,
      from: r.from,
      to: r.to,
      cc: r.cc,
      subject: r.subject,
      date: r.date,
      inReplyTo: r.inReplyTo,
      references: r.references,
      attachments: r.attachments,
      size: r.sizeBytes,
      inReplyToOutboxId: r.outboxMessageId,
      receivedAt: r.receivedAt,
      delivery: { state: states.get(r.id) ?? ('none' as const) },
      /** Why the message could not be read whole (it was imported all the same), or null. */
      problem: r.problem,
      /** The text or the HTML is only the beginning (MAX_BODY_CHARS each): the whole message is at rawUrl. */
      truncated: r.textTruncated || r.htmlTruncated,
      textTruncated: r.textTruncated,
      htmlTruncated: r.htmlTruncated,
      rawUrl: this.rawUrl(r),
    }));
  }

  /**
   * Pull API. Ascending (`after` = the last cursor seen) gives every message once, in import order;
   * descending pages the newest first for people.
   */
  /** `serverIds`: the incoming servers the caller may read (an API key limited to some); others' messages are not listed. */
  async list(query: unknown, serverIds?: string[]) {
    const q = parseInput(inboundListSchema, query);
    const token = q.after ?? q.cursor;
    const pos = token ? decode(token, q.after ? 'after' : 'cursor') : undefined;
    const rows = await listInbound(this.deps.db, {
      order: q.order,
      ...(pos !== undefined && (q.order === 'asc' ? { after: pos } : { before: pos })),
      ...(q.serverId && { serverId: q.serverId }),
      ...(serverIds && { serverIds }),
      ...(q.q && { q: q.q }),
      limit: q.limit + 1,
    });
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    return {
      items: await this.views(page),
      // Ascending: always hand back a cursor (the end of the stream so far) so pollers keep their place.
      nextCursor: q.order === 'asc' ? (last ? encode(last.seq) : (token ?? null)) : rows.length > q.limit && last ? encode(last.seq) : null,
    };
  }

  /** A message of a server the caller may not read is 404, as if it did not exist. */
  private async find(id: string, serverIds: string[] | undefined) {
    const r = await findInbound(this.deps.db, id);
    if (!r || (serverIds && !serverIds.includes(r.serverId))) throw new MailroomError('MR_NOT_FOUND', `Incoming message ${id} does not exist.`);
    return r;
  }

  async get(id: string, serverIds?: string[]) {
    const r = await this.find(id, serverIds);
    const [view] = await this.views([r]);
    const deliveries = await listDeliveries(this.deps.db, { messageId: id, limit: 100 });
    return { ...view!, text: r.text, html: r.html, deliveries };
  }

  /**
   * The `index`-th attachment (0-based, as listed in `attachments`), decoded from the message as
   * fetched: its stream, a name safe to save under and its type. Only while the raw message is kept.
   */
  async attachment(id: string, indexText: string, serverIds?: string[]): Promise<{ stream: Readable; filename: string; contentType: string }> {
    const r = await this.find(id, serverIds);
    const index = /^\d{1,4}$/.test(indexText) ? Number(indexText) : NaN;
    const meta = Number.isInteger(index) ? r.attachments[index] : undefined;
    if (!meta) {
      throw new MailroomError('MR_NOT_FOUND', `Incoming message ${id} has no attachment ${indexText}.`, {
        fix: `Use an index from 0 to ${r.attachments.length - 1}: the position in the message's attachments list.`,
      });
    }
    const raw = await this.raw(id, serverIds);
    const stream = await streamAttachment(raw.stream, index);
    if (!stream) throw new MailroomError('MR_NOT_FOUND', `The attachment ${index} of ${id} could not be read from the message as fetched.`);
    return { stream, filename: safeFilename(meta.filename), contentType: meta.contentType };
  }

  async raw(id: string, serverIds?: string[]): Promise<{ stream: Readable; size: number; filename: string }> {
    const r = await this.find(id, serverIds);
    if (!r.rawKept) {
      throw new MailroomError('MR_NOT_FOUND', `The raw message of ${id} was not kept${r.problem ? `: ${r.problem.message}` : '.'}`, {
        fix: 'The message is still in the mailbox. To keep such messages, raise INBOUND_MAX_MESSAGE_MB; the fields Mailroom could read are in GET /api/v1/inbound-messages/{id}.',
        evidence: { problem: r.problem?.code ?? null },
      });
    }
    if (r.rawPath === null) {
      const mime = await findInboundMime(this.deps.db, id);
      if (mime) return { stream: Readable.from([mime]), size: mime.length, filename: `${id}.eml` };
      // A large message on PostgreSQL: streamed a chunk at a time, by any instance.
      const first = await findRawChunk(this.deps.db, id, 0);
      if (!first) throw new MailroomError('MR_NOT_FOUND', 'The raw message is missing from the database.');
      const db = this.deps.db;
      async function* chunks() {
        yield first!;
        for (let seq = 1; ; seq++) {
          const c = await findRawChunk(db, id, seq);
          if (!c) return;
          yield c;
        }
      }
      // One 256 KB row read ahead, not Readable.from's default of 16: three downloads of a 200 MB
      // message then hold about 2 MB, not 12 MB.
      return { stream: Readable.from(chunks(), { highWaterMark: 1 }), size: r.sizeBytes, filename: `${id}.eml` };
    }
    const path = join(this.deps.dataDir, r.rawPath);
    if (!existsSync(path)) throw new MailroomError('MR_NOT_FOUND', 'The raw message file is missing from the data directory.', { fix: 'Restore DATA_DIR/inbound from backup.' });
    return { stream: createReadStream(path), size: r.sizeBytes, filename: `${id}.eml` };
  }
}
