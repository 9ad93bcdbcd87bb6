/**
 * A small MIME walk for reports only: headers, the multipart tree and the few part bodies a report
 * needs, with every loop bounded by a count or a length so hostile input costs linear time and
 * bounded memory. Bodies stay latin1 strings (one char per byte) until a text part is decoded.
 */

/** Reports are a few KB to a few hundred KB; the original attached after them can be large and is not needed whole. */
export const MAX_READ_BYTES = 4 * 1024 * 1024;
const MAX_HEADER_BLOCK = 256 * 1024;
const MAX_HEADER_LINES = 1000;
const MAX_HEADER_VALUE = 16 * 1024;
const MAX_PARTS = 200;
const MAX_DEPTH = 8;
const MAX_TEXT = 256 * 1024;

export type Headers = Map<string, string[]>;

export interface MimePart {
  headers: Headers;
  /** Lower-cased type/subtype; text/plain when missing (RFC 2045 §5.2). */
  type: string;
  params: Record<string, string>;
  /** Undecoded body as a latin1 string. */
  body: string;
}

export function first(headers: Headers, name: string): string | null {
  return headers.get(name)?.[0] ?? null;
}

/** Splits a header block from its body: the first blank line (CRLF or bare LF). */
export function splitHeaders(s: string): { headers: Headers; body: string } {
  if (s.startsWith('\n') || s.startsWith('\r\n')) return { headers: new Map(), body: s.slice(s.indexOf('\n') + 1) };
  const blank = /\r?\n\r?\n/.exec(s.length > MAX_HEADER_BLOCK ? s.slice(0, MAX_HEADER_BLOCK) : s);
  if (!blank) return { headers: parseHeaderBlock(s.slice(0, MAX_HEADER_BLOCK)), body: '' };
  return { headers: parseHeaderBlock(s.slice(0, blank.index)), body: s.slice(blank.index + blank[0].length) };
}

/** Header fields by lower-cased name, unfolded (RFC 5322 §2.2.3), at most MAX_HEADER_LINES of them. */
export function parseHeaderBlock(block: string): Headers {
  const headers: Headers = new Map();
  const lines = block.split('\n', MAX_HEADER_LINES * 4);
  let name: string | null = null;
  let value = '';
  let count = 0;
  const flush = () => {
    if (name === null || count >= MAX_HEADER_LINES) return;
    count++;
    const list = headers.get(name) ?? [];
    list.push(value.replace(/\0/g, '').trim());
    headers.set(name, list);
  };
  for (const raw of lines) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if ((line.startsWith(' ') || line.startsWith('\t')) && name !== null) {
      if (value.length < MAX_HEADER_VALUE) value += ' ' + line.trim();
      continue;
    }
    flush();
    const colon = line.indexOf(':');
    if (colon <= 0 || colon > 200) {
      name = null;
      continue;
    }
    name = line.slice(0, colon).trim().toLowerCase();
    value = line.slice(colon + 1, colon + 1 + MAX_HEADER_VALUE);
  }
  flush();
  return headers;
}

/** `type/subtype; a=b; c="d"` → lower-cased type and parameters (names lower-cased). */
export function parseContentType(value: string | null): { type: string; params: Record<string, string> } {
  const params: Record<string, string> = {};
  if (!value) return { type: 'text/plain', params };
  const pieces: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < value.length && i < 4096; i++) {
    const c = value[i];
    if (c === '"') quoted = !quoted;
    if (c === ';' && !quoted) {
      pieces.push(current);
      current = '';
    } else current += c;
  }
  pieces.push(current);
  const type = (pieces.shift() ?? '').trim().toLowerCase() || 'text/plain';
  for (const p of pieces.slice(0, 32)) {
    const eq = p.indexOf('=');
    if (eq <= 0) continue;
    let v = p.slice(eq + 1).trim();
    if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1);
    params[p.slice(0, eq).trim().toLowerCase()] = v;
  }
  return { type, params };
}

/** The message as a part, read from at most MAX_READ_BYTES. */
export function readMessage(raw: Buffer): MimePart {
  const s = raw.subarray(0, MAX_READ_BYTES).toString('latin1');
  return toPart(s);
}

export function toPart(s: string): MimePart {
  const { headers, body } = splitHeaders(s);
  const { type, params } = parseContentType(first(headers, 'content-type'));
  return { headers, type, params, body };
}

/**
 * Leaf parts in document order, multiparts opened up to MAX_DEPTH, at most MAX_PARTS in all.
 * message/rfc822 is a leaf: the original's own parts are not the report's.
 */
export function leafParts(root: MimePart): MimePart[] {
  const out: MimePart[] = [];
  let budget = MAX_PARTS;
  const visit = (part: MimePart, depth: number) => {
    if (budget <= 0) return;
    budget--;
    if (part.type.startsWith('multipart/') && part.params.boundary && depth < MAX_DEPTH) {
      for (const child of splitMultipart(part.body, part.params.boundary, budget)) visit(child, depth + 1);
      return;
    }
    out.push(part);
  };
  visit(root, 0);
  return out;
}

function splitMultipart(body: string, boundary: string, max: number): MimePart[] {
  if (boundary.length > 200) return [];
  const delimiter = '--' + boundary;
  const parts: MimePart[] = [];
  // A delimiter is only one at the start of a line (RFC 2046 §5.1.1).
  let at = body.startsWith(delimiter) ? 0 : body.indexOf('\n' + delimiter);
  if (at < 0) return [];
  if (at > 0) at += 1;
  while (at >= 0 && parts.length < max) {
    const after = at + delimiter.length;
    if (body.startsWith('--', after)) break;
    const lineEnd = body.indexOf('\n', after);
    if (lineEnd < 0) break;
    const next = body.indexOf('\n' + delimiter, lineEnd);
    let content = body.slice(lineEnd + 1, next < 0 ? body.length : next);
    if (content.endsWith('\r')) content = content.slice(0, -1);
    parts.push(toPart(content));
    at = next < 0 ? -1 : next + 1;
  }
  return parts;
}

/** Transfer-decoded bytes of a part (base64, quoted-printable, or as is), at most MAX_TEXT of them. */
export function decodedBytes(part: MimePart): Buffer {
  const cte = (first(part.headers, 'content-transfer-encoding') ?? '').trim().toLowerCase();
  const body = part.body.slice(0, MAX_TEXT * 2);
  if (cte === 'base64') return Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64').subarray(0, MAX_TEXT);
  if (cte === 'quoted-printable') return decodeQuotedPrintable(body).subarray(0, MAX_TEXT);
  return Buffer.from(body.slice(0, MAX_TEXT), 'latin1');
}

/** Text of a part in its charset (UTF-8 when unknown). */
export function decodedText(part: MimePart): string {
  const bytes = decodedBytes(part);
  const charset = (part.params.charset ?? 'utf-8').toLowerCase();
  try {
    return new TextDecoder(charset).decode(bytes).replace(/\0/g, '');
  } catch {
    return bytes.toString('utf8').replace(/\0/g, '');
  }
}

function decodeQuotedPrintable(s: string): Buffer {
  const out = Buffer.alloc(s.length);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 0x3d) {
      out[n++] = c & 0xff;
      continue;
    }
    if (s[i + 1] === '\r' && s[i + 2] === '\n') i += 2;
    else if (s[i + 1] === '\n') i += 1;
    else {
      const hex = s.slice(i + 1, i + 3);
      if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
        out[n++] = parseInt(hex, 16);
        i += 2;
      } else out[n++] = c;
    }
  }
  return out.subarray(0, n);
}

/**
 * Strips tags for reports that only come as HTML; enough to find addresses and SMTP replies.
 * [^<>] keeps a run of '<' linear: each try stops at the next '<'.
 */
export function htmlToText(html: string): string {
  return html
    .slice(0, MAX_TEXT)
    .replace(/<(br|\/p|\/div|\/tr|\/li)[^<>]{0,200}>/gi, '\n')
    .replace(/<[^<>]{0,2000}>/g, '')
    .replace(/&nbsp;/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');
}
