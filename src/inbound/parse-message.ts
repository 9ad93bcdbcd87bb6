import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, renameSync } from 'node:fs';
import { privateDir } from '../storage/private-files.ts';
import { join, relative } from 'node:path';
import { rmSync } from 'node:fs';
import { PassThrough, type Readable, Writable } from 'node:stream';
import type { Db } from '../storage/database.ts';
import { deleteRawChunks, insertRawChunk } from '../storage/inbound-store.ts';
import { pipeline } from 'node:stream/promises';
import type { MessageFields, MessageProblem, NewInboundMessage } from '../storage/inbound-store.ts';
import type { AddressObject, AttachmentStream, HeaderValue, MailParser, MessageText } from 'mailparser';

// mailparser (and its MIME and charset tables) is loaded by the first message parsed, not at start:
// an installation without incoming servers never pays for it.
let mailparser: Promise<typeof import('mailparser')> | undefined;

export interface ParsedMessage extends MessageFields {
  /** Of the raw bytes: the dedupe key of a message without a Message-ID. */
  sha256: string;
}

/**
 * The fields of a message that could not be read (`problem` says why): what is known of it from
 * outside (its size, and the envelope's Message-ID when the server gave one), nothing more.
 */
export function unreadableMessage(problem: MessageProblem, known: { sizeBytes: number; messageId?: string | null; sha256?: string }): ParsedMessage {
  return {
    problem,
    messageId: known.messageId ?? null,
    from: '',
    to: [],
    cc: [],
    subject: '',
    date: null,
    inReplyTo: null,
    references: [],
    text: null,
    html: null,
    attachments: [],
    sizeBytes: known.sizeBytes,
    sha256: known.sha256 ?? createHash('sha256').update(`unreadable:${known.messageId ?? ''}:${known.sizeBytes}:${randomUUID()}`).digest('hex'),
  };
}

function addresses(v: HeaderValue | undefined): string[] {
  if (!v || typeof v !== 'object' || !('value' in v)) return [];
  const list = Array.isArray(v) ? (v as AddressObject[]) : [v as AddressObject];
  return list.flatMap((a) => a.value.flatMap((x) => (x.group ? x.group : [x]))).map((x) => (x.name ? `${x.name} <${x.address ?? ''}>` : (x.address ?? ''))).filter(Boolean);
}

const idList = (v: HeaderValue | undefined): string[] =>
  (Array.isArray(v) ? v.map(String) : typeof v === 'string' ? v.split(/\s+/) : []).map((s) => s.trim()).filter((s) => /^<.+>$/.test(s));

/**
 * Parses one raw message with mailparser: the fields Mailroom stores, attachment names and sizes
 * (attachments are counted, not kept), the size and SHA-256 of the raw bytes. A stream is read as
 * it comes, so a 20 MB message never sits whole in memory.
 */
export async function parseMessage(source: Readable | Buffer): Promise<ParsedMessage> {
  // Before the first listener: a stream must not start flowing while the module loads.
  const { MailParser: Parser } = await (mailparser ??= import('mailparser'));
  const hash = createHash('sha256');
  let size = 0;
  if (Buffer.isBuffer(source)) {
    size = source.length;
    hash.update(source);
  } else {
    source.on('data', (c: Buffer) => {
      size += c.length;
      hash.update(c);
    });
  }

  // Mailroom stores text and html as sent: skip building textAsHtml and linkifying (a third of the parse time).
  const parser: MailParser = new Parser({ skipImageLinks: true, skipTextToHtml: true, skipTextLinks: true } as ConstructorParameters<typeof MailParser>[0]);
  let headers: Map<string, HeaderValue> = new Map();
  let text: string | null = null;
  let html: string | null = null;
  const attachments: ParsedMessage['attachments'] = [];
  parser.on('headers', (h: Map<string, HeaderValue>) => (headers = h));
  parser.on('data', (data: AttachmentStream | MessageText) => {
    if (data.type === 'attachment') {
      let bytes = 0;
      data.content.on('data', (c: Buffer) => (bytes += c.length));
      data.content.on('end', () => {
        attachments.push({ filename: data.filename ?? 'attachment', contentType: data.contentType, size: bytes });
        data.release?.();
      });
      data.content.resume();
    } else {
      text = data.text ?? null;
      html = typeof data.html === 'string' ? data.html : null;
    }
  });
  await new Promise<void>((resolve, reject) => {
    parser.on('end', () => resolve());
    parser.on('error', reject);
    if (Buffer.isBuffer(source)) parser.end(source);
    else source.pipe(parser);
  });

  const subject = headers.get('subject');
  const date = headers.get('date');
  const messageId = headers.get('message-id');
  const inReplyTo = idList(headers.get('in-reply-to'))[0] ?? null;
  return {
    messageId: typeof messageId === 'string' && messageId.trim() ? messageId.trim() : null,
    from: addresses(headers.get('from'))[0] ?? '',
    to: addresses(headers.get('to')),
    cc: addresses(headers.get('cc')),
    subject: typeof subject === 'string' ? subject : '',
    date: date instanceof Date && !Number.isNaN(date.getTime()) ? date.toISOString() : null,
    inReplyTo,
    references: idList(headers.get('references')),
    text,
    html,
    attachments,
    sizeBytes: size,
    sha256: hash.digest('hex'),
  };
}

/**
 * Streams one raw message to `${dataDir}/inbound/<server>/<id>.eml` and through the parser at the
 * same time, for messages too large to keep in the database. The file is flushed to disk before
 * this resolves; `rawPath` is relative to the data directory.
 */
export async function storeAndParse(source: Readable, dataDir: string, serverId: string, id: string = randomUUID()): Promise<ParsedMessage & { rawPath: string }> {
  const dir = join(dataDir, 'inbound', serverId);
  privateDir(dir);
  const final = join(dir, `${id}.eml`);
  const tmp = `${final}.part`;
  const toParser = new PassThrough();
  const [, parsed] = await Promise.all([pipeline(source, createWriteStream(tmp, { flush: true, mode: 0o600 } as Parameters<typeof createWriteStream>[1])), parseMessage(source.pipe(toParser))]);
  renameSync(tmp, final);
  return { ...parsed, rawPath: relative(dataDir, final) };
}

/** 256 KB per row: large enough that a 25 MB message is 100 inserts, small enough to stream. */
const CHUNK_BYTES = 256 * 1024;

/**
 * As storeAndParse, into the database a chunk at a time (PostgreSQL: instances share no disk). The
 * chunks are written before the message row; discardRaw removes them if that import fails.
 */
export async function storeInDatabaseAndParse(source: Readable, db: Db, id: string): Promise<ParsedMessage> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let seq = 0;
  const flush = async () => {
    if (pendingBytes === 0) return;
    const data = Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    await insertRawChunk(db, id, seq++, data);
  };
  const sink = new Writable({
    highWaterMark: CHUNK_BYTES,
    write(chunk: Buffer, _enc, done) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes < CHUNK_BYTES) return done();
      flush().then(() => done(), done);
    },
    final(done) {
      flush().then(() => done(), done);
    },
  });
  const toParser = new PassThrough();
  try {
    const [, parsed] = await Promise.all([pipeline(source, sink), parseMessage(source.pipe(toParser))]);
    return parsed;
  } catch (e) {
    await deleteRawChunks(db, id).catch(() => undefined);
    throw e;
  }
}

export interface RawTarget {
  db: Db;
  dataDir: string;
  /** PostgreSQL: raw messages of any size go to the database, never to DATA_DIR. */
  rawInDatabase: boolean;
  /** INBOUND_MAX_MESSAGE_MB: what is larger is not stored. */
  maxMessageBytes?: number;
}

/** Stores a large raw message where this installation keeps them, parsing it on the way. */
export async function storeRaw(source: Readable, target: RawTarget, serverId: string, id: string): Promise<ParsedMessage & { raw: NewInboundMessage['raw'] }> {
  if (target.rawInDatabase) return { ...(await storeInDatabaseAndParse(source, target.db, id)), raw: { chunked: true } };
  const { rawPath, ...parsed } = await storeAndParse(source, target.dataDir, serverId, id);
  return { ...parsed, raw: { path: rawPath } };
}

/** Removes what storeRaw wrote, when the import that was to reference it failed. */
export async function discardRaw(target: RawTarget, raw: NewInboundMessage['raw'], id: string): Promise<void> {
  if ('path' in raw) rmSync(join(target.dataDir, raw.path), { force: true });
  else if ('chunked' in raw) await deleteRawChunks(target.db, id).catch(() => undefined);
}
