import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { privateDir } from '../storage/private-files.ts';
import type { Db } from '../storage/database.ts';
import { deleteRawChunks, findRawChunk, insertRawChunk } from '../storage/inbound-store.ts';
import type { AttachmentMeta, MessageFields, MessageProblem, NewInboundMessage } from '../storage/inbound-store.ts';
import type { AddressObject, AttachmentStream, HeaderValue, MailParser, MessageText } from 'mailparser';
import { safeFilename } from './safe-filename.ts';
// mailparser (and its MIME and charset tables) is loaded by the first message parsed, not at start:
// an installation without incoming servers never pays for it.
let mailparser: Promise<typeof import('mailparser')> | undefined;

/** Loads mailparser now (a parse thread does before it takes work, so its deadlines measure parsing only). */
export async function loadParser(): Promise<void> {
  await (mailparser ??= import('mailparser'));
}

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


/**
 * Limits of our own, checked as the message streams through the parser (mailsplit's defaults are
 * 1,000 parts and 1 MB of header per part, with nothing on depth or on the text kept).
 */
/** MIME parts (the message itself included): mailsplit's own default, which real mail stays far below. */
export const MAX_MIME_PARTS = 1000;
/**
 * Levels of nested multiparts and attached messages. Each delimiter line is compared with the
 * boundary of every open ancestor, so depth multiplies the cost of every line; a forward of a
 * forward of a forward stays under ten.
 */
export const MAX_MIME_DEPTH = 50;
/** Header block of one part: 256 KB is thousands of recipients or Received lines. */
export const MAX_PART_HEADER_BYTES = 256 * 1024;
/** Header blocks of all parts together (they are all kept until the parse ends). */
export const MAX_HEADER_BYTES = 2 * 1024 * 1024;
/** Characters kept of the text and of the HTML each; the rest stays in the raw message. */
export const MAX_BODY_CHARS = 1024 * 1024;
/** Encoded bytes read of one text or HTML part: room for MAX_BODY_CHARS in base64 or quoted-printable. */
const MAX_TEXT_PART_BYTES = 4 * MAX_BODY_CHARS;
/** Encoded bytes read of all text and HTML parts together. */
const MAX_TEXT_BYTES = 8 * MAX_BODY_CHARS;
/** HTML longer than this is not converted into the text of a message without a text part (CPU). */
const MAX_HTML_TO_TEXT_CHARS = 2 * MAX_BODY_CHARS;
/** Of a parser error message quoted in a problem. */
const MAX_DETAIL_CHARS = 200;

const KB = (n: number) => `${Math.round(n / 1024).toLocaleString('en-US')} KB`;
const MB = (n: number) => `${Math.round(n / 1024 / 1024).toLocaleString('en-US')} MB`;

/** The problems the parse limits give, in plain words naming what is wrong with the message. */
export const parseProblems = {
  tooManyParts: (): MessageProblem => ({ code: 'too_many_parts', message: `The message has more than ${MAX_MIME_PARTS.toLocaleString('en-US')} MIME parts; Mailroom reads at most ${MAX_MIME_PARTS.toLocaleString('en-US')}.` }),
  tooDeep: (): MessageProblem => ({ code: 'too_deep', message: `The message's MIME parts are nested more than ${MAX_MIME_DEPTH} levels deep; Mailroom reads at most ${MAX_MIME_DEPTH}.` }),
  partHeaderTooLarge: (): MessageProblem => ({ code: 'malformed', message: `A MIME part of the message has a header block larger than ${KB(MAX_PART_HEADER_BYTES)}; Mailroom reads at most ${KB(MAX_PART_HEADER_BYTES)} per part.` }),
  headersTooLarge: (): MessageProblem => ({ code: 'malformed', message: `The message's MIME headers add up to more than ${MB(MAX_HEADER_BYTES)}; Mailroom reads at most ${MB(MAX_HEADER_BYTES)}.` }),
  malformed: (detail: string): MessageProblem => ({ code: 'malformed', message: `The message's MIME structure could not be read: ${oneLine(detail)}.` }),
  tooLarge: (sizeBytes: number, maxBytes: number, sizeKnown: boolean): MessageProblem => ({
    code: 'too_large',
    message: `The message is ${sizeKnown ? '' : 'larger than '}${MB(sizeBytes)}; Mailroom keeps messages up to ${MB(maxBytes)} (INBOUND_MAX_MESSAGE_MB), so its raw content was not kept.`,
  }),
};

const oneLine = (s: string) => s.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim().slice(0, MAX_DETAIL_CHARS).replace(/\.$/, '');

function addresses(v: HeaderValue | undefined): string[] {
  if (!v || typeof v !== 'object' || !('value' in v)) return [];
  const list = Array.isArray(v) ? (v as AddressObject[]) : [v as AddressObject];
  return list.flatMap((a) => a.value.flatMap((x) => (x.group ? x.group : [x]))).map((x) => (x.name ? `${x.name} <${x.address ?? ''}>` : (x.address ?? ''))).filter(Boolean);
}

const idList = (v: HeaderValue | undefined): string[] =>
  (Array.isArray(v) ? v.map(String) : typeof v === 'string' ? v.split(/\s+/) : []).map((s) => s.trim()).filter((s) => /^<.+>$/.test(s));

/** The attachment as stored: a safe name to offer, the sender's name only as data when it differs. */
function attachmentMeta(filename: string | undefined, contentType: string, size: number): AttachmentMeta {
  const safe = safeFilename(filename);
  return { filename: safe, ...(filename !== undefined && filename !== safe && filename !== '' && { originalFilename: filename.slice(0, 1000) }), contentType, size };
}

/** Cuts `s` to `max` UTF-16 units without splitting a surrogate pair. */
function cut(s: string, max: number): string {
  const end = max > 0 && /[\ud800-\udbff]/.test(s[max - 1]!) ? max - 1 : max;
  return s.slice(0, end);
}

/** mailparser 3.14 and mailsplit 5.4 internals the limits hook into (pinned by package-lock; test/unit/parse-limits.test.ts fails if they move). */
interface SplitterNode {
  headerCost(extra?: number): number;
  headers: false | { getList(): unknown[] };
}
interface Splitter {
  node: SplitterNode;
  nodeCounter: number;
  newNode(parent: SplitterNode | false): void;
  checkHeadSize(extra?: number): Error | null;
  processLine(line: Buffer | false, final: boolean, next: (err: Error | null, data: false) => void): void;
  appendPendingLine(chunk: Buffer): void;
  _transform(chunk: Buffer, enc: string, done: () => void): void;
}
interface ParserNode {
  contentType?: string;
  isAttachment?: boolean;
}
interface ParserInternals {
  splitter: Splitter;
  curnode: ParserNode | false;
  hasText: boolean;
  processChunk(data: { type: string; value?: Buffer }, done: (err?: Error) => void): void;
  processHeaders(lines: unknown[]): Map<string, HeaderValue>;
  getTextContent(): { text?: string; html?: string };
}

/**
 * Parses one raw message with mailparser: the fields Mailroom stores, attachment names and sizes
 * (attachments are counted, not kept), the size and SHA-256 of the raw bytes. A stream is read as
 * it comes, so a large message never sits whole in memory, and the text and HTML kept are at most
 * MAX_BODY_CHARS each (`textTruncated`, `htmlTruncated`).
 *
 * Never rejects for anything in the message: a message past the limits above, or one the parser
 * cannot read, resolves with what was read up to there and `problem` saying what is wrong. The
 * input is read to its end in every case (a fetch stays in step with its server). Only an error of
 * the source stream itself rejects.
 */
/**
 * Mailroom stores text and html as sent: no textAsHtml, no linkifying (a third of the parse time), no
 * attachment MD5 (never read). Our part limits are checked first (in parseMessage); mailsplit's own
 * stays as the last resort.
 */
function parserOptions(): ConstructorParameters<typeof MailParser>[0] {
  return {
    skipImageLinks: true,
    skipTextToHtml: true,
    skipTextLinks: true,
    checksumAlgo: false,
    maxHtmlLengthToParse: MAX_HTML_TO_TEXT_CHARS,
    maxHeadSize: MAX_PART_HEADER_BYTES,
    maxChildNodes: MAX_MIME_PARTS + 1,
  } as ConstructorParameters<typeof MailParser>[0];
}

export async function parseMessage(source: Readable | Buffer): Promise<ParsedMessage> {
  // Before the first listener: a stream must not start flowing while the module loads.
  const { MailParser: Parser } = await (mailparser ??= import('mailparser'));
  const hash = createHash('sha256');
  let size = 0;

  const parser: MailParser = new Parser(parserOptions());
  const internals = parser as unknown as ParserInternals;
  const splitter = internals.splitter;
  const root = splitter.node;

  // The limits are checked as the splitter opens each part and reads each header line. Past one the
  // splitter halts: it reads nothing more of the message (each further line would cost), the parser
  // ends with what the splitter gave it so far (the headers, the parts before), and `limit` says
  // which limit it was. The rest of the input is still read, to count and hash it.
  let limit: MessageProblem | undefined;
  const halt = (problem: MessageProblem) => {
    limit ??= problem;
    splitter.processLine = (_line, _final, next) => next(null, false);
    splitter.appendPendingLine = () => undefined;
    splitter._transform = (_chunk, _enc, done) => done();
    stopFeeding();
  };
  const depth = new WeakMap<SplitterNode, number>();
  let headerBytes = 0;
  const newNode = splitter.newNode;
  splitter.newNode = function (this: Splitter, parent) {
    headerBytes += this.node.headerCost();
    newNode.call(this, parent);
    const d = parent ? (depth.get(parent) ?? 0) + 1 : 0;
    depth.set(this.node, d);
    if (this.nodeCounter > MAX_MIME_PARTS) halt(parseProblems.tooManyParts());
    else if (d > MAX_MIME_DEPTH) halt(parseProblems.tooDeep());
    else if (headerBytes > MAX_HEADER_BYTES) halt(parseProblems.headersTooLarge());
  };
  const checkHeadSize = splitter.checkHeadSize;
  splitter.checkHeadSize = function (this: Splitter, extra) {
    if (checkHeadSize.call(this, extra)) halt(parseProblems.partHeaderTooLarge());
    return null;
  };

  // Text and HTML parts are decoded into memory whole by mailparser: past MAX_TEXT_PART_BYTES of a
  // part (MAX_TEXT_BYTES of all) their bytes are not handed on, so a 200 MB text part costs 4 MB.
  const textBytes = new WeakMap<ParserNode, number>();
  let allTextBytes = 0;
  const cutKinds = new Set<'text' | 'html'>();
  const processChunk = internals.processChunk.bind(parser);
  internals.processChunk = (data, done) => {
    const node = internals.curnode;
    if (data.type === 'body' && data.value && node && node.isAttachment === false) {
      const used = textBytes.get(node) ?? 0;
      const room = Math.min(MAX_TEXT_PART_BYTES - used, MAX_TEXT_BYTES - allTextBytes);
      if (data.value.length > room) {
        cutKinds.add(node.contentType === 'text/html' ? 'html' : 'text');
        if (room <= 0) return done();
        data.value = data.value.subarray(0, room);
      }
      textBytes.set(node, used + data.value.length);
      allTextBytes += data.value.length;
    }
    processChunk(data, done);
  };

  let headers: Map<string, HeaderValue> = new Map();
  let body: { text?: string | undefined; html?: string | false | undefined } | undefined;
  let attachmentError: Error | undefined;
  const attachments: AttachmentMeta[] = [];
  parser.on('headers', (h: Map<string, HeaderValue>) => (headers = h));
  parser.on('data', (data: AttachmentStream | MessageText) => {
    if (data.type === 'attachment') {
      let bytes = 0;
      data.content.on('data', (c: Buffer) => (bytes += c.length));
      data.content.on('error', (e: Error) => (attachmentError ??= e));
      data.content.on('end', () => {
        attachments.push(attachmentMeta(data.filename, data.contentType, bytes));
        data.release?.();
      });
      data.content.resume();
    } else body = data;
  });

  // The parser has ended (undefined) or failed (its error). It takes no more input once it failed or
  // the splitter halted; the source is still read to its end.
  let fed = true;
  let ended = false;
  const onStop: Array<() => void> = [];
  function stopFeeding() {
    fed = false;
    for (const f of onStop.splice(0)) f();
    if (!ended) {
      ended = true;
      parser.end();
    }
  }
  const parsed = new Promise<Error | undefined>((resolve) => {
    parser.on('end', () => resolve(undefined));
    parser.on('error', (e: Error) => {
      ended = true;
      stopFeeding();
      resolve(e);
    });
  });

  let input: Promise<void>;
  if (Buffer.isBuffer(source)) {
    size = source.length;
    hash.update(source);
    ended = true;
    parser.end(source);
    input = Promise.resolve();
  } else {
    input = new Promise<void>((resolve, reject) => {
      let paused = false;
      const resume = () => {
        if (!paused) return;
        paused = false;
        parser.off('drain', resume);
        source.resume();
      };
      onStop.push(resume);
      source.on('data', (c: Buffer) => {
        size += c.length;
        hash.update(c);
        if (!fed) return;
        if (!parser.write(c) && !paused) {
          paused = true;
          source.pause();
          parser.once('drain', resume);
        }
      });
      source.once('end', () => {
        if (!ended) {
          ended = true;
          parser.end();
        }
        resolve();
      });
      source.once('error', reject);
    });
  }
  let failure: Error | undefined;
  try {
    [, failure] = await Promise.all([input, parsed]);
  } catch (e) {
    parser.destroy();
    throw e;
  }

  let problem: MessageProblem | undefined;
  if (failure) {
    // What was read before the failure: the message's headers always, the text of the parts and the
    // attachments the parser had finished (the splitter runs ahead of it, so often none).
    if (!headers.size && root.headers) headers = internals.processHeaders(root.headers.getList());
    try {
      body = internals.getTextContent();
    } catch {
      body = undefined;
    }
    // mailsplit's own limits (the last resort behind ours) fail with EMAXLEN.
    const code = (failure as { code?: unknown }).code;
    problem = limit ?? (code === 'EMAXLEN' ? (splitter.nodeCounter > MAX_MIME_PARTS ? parseProblems.tooManyParts() : parseProblems.partHeaderTooLarge()) : parseProblems.malformed(failure.message));
  } else problem = limit ?? (attachmentError && parseProblems.malformed(attachmentError.message));

  let text = body?.text ?? null;
  let html = typeof body?.html === 'string' ? body.html : null;
  let textTruncated = cutKinds.has('text') || (cutKinds.has('html') && !internals.hasText);
  let htmlTruncated = cutKinds.has('html');
  if (text !== null && text.length > MAX_BODY_CHARS) [text, textTruncated] = [cut(text, MAX_BODY_CHARS), true];
  if (html !== null && html.length > MAX_BODY_CHARS) [html, htmlTruncated] = [cut(html, MAX_BODY_CHARS), true];

  const subject = headers.get('subject');
  const date = headers.get('date');
  const messageId = headers.get('message-id');
  const inReplyTo = idList(headers.get('in-reply-to'))[0] ?? null;
  return {
    ...(problem && { problem }),
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
    ...(textTruncated && { textTruncated }),
    ...(htmlTruncated && { htmlTruncated }),
    attachments,
    sizeBytes: size,
    sha256: hash.digest('hex'),
  };
}

/** Where storeRaw writes the raw bytes: a file, or chunks in the database. */
interface RawSink {
  write(chunk: Buffer): Promise<void>;
  /** Everything is written (and flushed): the raw reference to store. */
  finish(): Promise<NewInboundMessage['raw']>;
  /** Removes what was written. */
  abort(): Promise<void>;
}

/** `${dataDir}/inbound/<server>/<id>.eml`, written as `.part` and renamed once flushed to disk. */
function fileSink(dataDir: string, serverId: string, id: string): RawSink {
  const dir = join(dataDir, 'inbound', serverId);
  privateDir(dir);
  const final = join(dir, `${id}.eml`);
  const tmp = `${final}.part`;
  const out = createWriteStream(tmp, { flush: true, mode: 0o600 } as Parameters<typeof createWriteStream>[1]);
  let failed: Error | undefined;
  out.on('error', (e) => (failed ??= e));
  return {
    async write(chunk) {
      if (failed) throw failed;
      if (!out.write(chunk)) await once(out, 'drain');
    },
    async finish() {
      out.end();
      await finished(out);
      renameSync(tmp, final);
      return { path: relative(dataDir, final) };
    },
    async abort() {
      out.destroy();
      await finished(out).catch(() => undefined);
      rmSync(tmp, { force: true });
    },
  };
}

/** 256 KB per row: large enough that a 25 MB message is 100 inserts, small enough to stream. */
const CHUNK_BYTES = 256 * 1024;

/** Rows of inbound_raw_chunks (PostgreSQL: instances share no disk), written before the message row. */
function chunkSink(db: Db, id: string): RawSink {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let seq = 0;
  // Rows of exactly CHUNK_BYTES (the last one shorter), whatever the size of what the source hands
  // over (an IMAP partial FETCH brings 1 MB): a download then holds one row, and reads one ahead.
  const flush = async (all: boolean) => {
    while (pendingBytes >= CHUNK_BYTES || (all && pendingBytes > 0)) {
      const data = Buffer.concat(pending, pendingBytes);
      const row = data.subarray(0, Math.min(CHUNK_BYTES, data.length));
      const rest = data.subarray(row.length);
      pending = rest.length ? [rest] : [];
      pendingBytes = rest.length;
      await insertRawChunk(db, id, seq++, row);
    }
  };
  return {
    async write(chunk) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      await flush(false);
    },
    async finish() {
      await flush(true);
      return { chunked: true };
    },
    async abort() {
      pending = [];
      pendingBytes = 0;
      await deleteRawChunks(db, id).catch(() => undefined);
    },
  };
}

export interface RawTarget {
  db: Db;
  dataDir: string;
  /** PostgreSQL: raw messages of any size go to the database, never to DATA_DIR. */
  rawInDatabase: boolean;
  /** INBOUND_MAX_MESSAGE_MB: what is larger is not stored. */
  maxMessageBytes?: number;
}

export interface StoreRawOptions {
  /**
   * Past maxMessageBytes: 'drain' (default) reads the rest of `source` and drops it, so an IMAP
   * FETCH ends in step and the size is exact; 'destroy' destroys `source` at once (an HTTP body).
   */
  overLimit?: 'drain' | 'destroy';
}

/**
 * Streams one raw message to where this installation keeps them (a file under DATA_DIR, or chunks
 * in the database on PostgreSQL) and through the parser at the same time: the message never sits
 * whole in memory.
 *
 * Resolves with the parsed fields and the raw reference to store; it does not reject for anything
 * in the message (a message the parser cannot read comes back with `problem`, its raw bytes kept).
 * A message larger than `target.maxMessageBytes` comes back with `problem.code` 'too_large', the
 * fields read from its first maxMessageBytes, `sizeBytes` as read (exact unless 'destroy'), and
 * `raw: {none: true}`: nothing stays stored. It rejects only when the source stream or the storage
 * fails, having removed what it wrote.
 */
export async function storeRaw(source: Readable, target: RawTarget, serverId: string, id: string, opts: StoreRawOptions = {}): Promise<ParsedMessage & { raw: NewInboundMessage['raw'] }> {
  const max = target.maxMessageBytes ?? Infinity;
  const sink = target.rawInDatabase ? chunkSink(target.db, id) : fileSink(target.dataDir, serverId, id);
  const toParser = new PassThrough();
  const parsing = parseMessage(toParser);
  let seen = 0;
  let over = false;
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      seen += chunk.length;
      if (!over && seen > max) {
        over = true;
        toParser.end();
        await sink.abort();
        if (opts.overLimit === 'destroy') break; // the iterator's return() destroys the source
      }
      if (over) continue;
      await sink.write(chunk);
      if (!toParser.write(chunk)) await once(toParser, 'drain');
    }
    if (!over) toParser.end();
    const parsed = await parsing;
    if (over) return { ...parsed, problem: parseProblems.tooLarge(seen, max, opts.overLimit !== 'destroy'), sizeBytes: seen, raw: { none: true } };
    return { ...parsed, raw: await sink.finish() };
  } catch (e) {
    toParser.destroy(e as Error);
    await parsing.catch(() => undefined);
    await sink.abort();
    throw e;
  }
}

/**
 * The first `maxBytes` of a raw message wherever storeRaw put it (bytes, a file under the data
 * directory, rows in the database), read without holding more; null when it was not kept.
 */
export async function rawHead(target: RawTarget, raw: NewInboundMessage['raw'], id: string, maxBytes: number): Promise<Buffer | null> {
  if ('mime' in raw) return raw.mime.subarray(0, maxBytes);
  if ('path' in raw) {
    const file = await open(join(target.dataDir, raw.path), 'r');
    try {
      const buf = Buffer.allocUnsafe(maxBytes);
      const { bytesRead } = await file.read(buf, 0, maxBytes, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await file.close();
    }
  }
  if ('chunked' in raw) {
    const parts: Buffer[] = [];
    let bytes = 0;
    for (let seq = 0; bytes < maxBytes; seq++) {
      const c = await findRawChunk(target.db, id, seq);
      if (!c) break;
      parts.push(c);
      bytes += c.length;
    }
    return Buffer.concat(parts).subarray(0, maxBytes);
  }
  return null;
}

/** Removes what storeRaw wrote, when the import that was to reference it failed. */
export async function discardRaw(target: RawTarget, raw: NewInboundMessage['raw'], id: string): Promise<void> {
  if ('path' in raw) rmSync(join(target.dataDir, raw.path), { force: true });
  else if ('chunked' in raw) await deleteRawChunks(target.db, id).catch(() => undefined);
}

/**
 * The decoded content of the `index`-th attachment of a raw message (counted as parseMessage counted
 * them at import), streamed as the parser reaches it; null when the message has fewer. Only that
 * attachment flows to the caller; the others are read past. The source is closed once it is done.
 */
export async function streamAttachment(source: Readable, index: number): Promise<Readable | null> {
  const { MailParser: Parser } = await (mailparser ??= import('mailparser'));
  const parser: MailParser = new Parser(parserOptions());
  const stop = () => {
    source.unpipe(parser);
    source.destroy();
    parser.destroy();
  };
  return new Promise((resolve, reject) => {
    let seen = 0;
    let settled = false;
    parser.on('data', (data: AttachmentStream | MessageText) => {
      if (data.type !== 'attachment') return;
      if (settled || seen++ !== index) {
        data.content.on('end', () => data.release?.());
        data.content.resume();
        return;
      }
      settled = true;
      const out = new PassThrough();
      data.content.on('error', (e: Error) => out.destroy(e));
      data.content.on('end', () => {
        data.release?.();
        stop();
      });
      out.on('close', () => {
        if (!data.content.readableEnded) stop();
      });
      data.content.pipe(out);
      resolve(out);
    });
    parser.on('end', () => {
      if (!settled) {
        settled = true;
        resolve(null);
      }
    });
    parser.on('error', (e: Error) => {
      if (!settled) {
        settled = true;
        reject(e);
      }
    });
    source.on('error', (e: Error) => parser.destroy(e));
    source.pipe(parser);
  });
}
