import addressparser from 'nodemailer/lib/addressparser';
import { z } from 'zod';
import { MailroomError, validationError } from '../errors/errors.ts';
import { fieldErrors } from '../errors/parse-input.ts';

/** A mailbox as the SMTP envelope needs it: dot-atom local part (or quoted-free), a domain with a TLD. */
const ADDR = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$/;
const CRLF = /[\r\n]/;

/**
 * RFC 5322 §2.1.1: a header line is at most 998 characters. Long values are folded at whitespace when
 * the message is built; a single word longer than this cannot be folded, so it is refused.
 */
const MAX_HEADER_WORD = 900;
const unfoldable = (value: string) => value.split(/\s+/).some((w) => w.length > MAX_HEADER_WORD);
const TOO_LONG = `has a word longer than ${MAX_HEADER_WORD} characters; header lines are limited to 998 characters (RFC 5322)`;

// Attachments are leaf parts. A multipart/* or message/* type would make the attachment's bytes part
// of the message's MIME structure (nested boundaries, a second set of headers) instead of its content.
const STRUCTURAL_TYPE = /^(multipart|message)\//i;

export interface Mailbox {
  name: string;
  address: string;
}

/** Parses one header-style address ("Name <a@b.c>" or "a@b.c"); throws a message for the field. */
export function parseMailbox(input: string): Mailbox {
  if (CRLF.test(input)) throw new Error('must not contain line breaks');
  const parsed = addressparser(input);
  if (parsed.length !== 1 || !parsed[0] || parsed[0].group !== undefined) throw new Error(`"${input}" is not one email address`);
  const { name, address } = parsed[0];
  if (unfoldable(name)) throw new Error(`the display name ${TOO_LONG}`);
  // A display name needs angle brackets; "a b@c.com" is a typo, not "a" <b@c.com>.
  if (name && !input.includes('<')) throw new Error(`"${input}" is not a valid email address`);
  if (!ADDR.test(address) || address.startsWith('.') || address.includes('..') || address.split('@')[0]!.endsWith('.')) {
    throw new Error(`"${input}" is not a valid email address`);
  }
  return { name, address: address.toLowerCase() };
}

// Custom headers the ERP may set. Structural headers (From, To, Content-*, MIME-Version, Bcc...) are
// built by Mailroom from the validated fields and cannot be overridden.
const ALLOWED_HEADERS = new Set([
  'in-reply-to',
  'references',
  'list-unsubscribe',
  'list-unsubscribe-post',
  'list-id',
  'auto-submitted',
  'precedence',
  'importance',
  'priority',
  'x-priority',
  'keywords',
  'comments',
  'organization',
]);
const HEADER_NAME = /^[A-Za-z0-9][A-Za-z0-9-]{0,75}$/;
// Checked after whitespace is stripped: one character class then padding, so the match is linear
// (the old /[A-Za-z0-9+/\r\n]*={0,2}\s*$/ backtracked quadratically on long runs of newlines).
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

// A bound on the request only: how many recipients a message may have is the mail server's limit
// (Recipients per message), checked once the server is chosen.
const address = z.string().max(998, { error: 'An address is at most 998 characters' });
const addressList = z.union([address, z.array(address).max(10_000, { error: 'At most 10,000 recipients per field' })]).optional();

export const sendMessageSchema = z.strictObject({
  from: z.string().max(500, { error: 'The sender is at most 500 characters' }).optional(),
  to: addressList,
  cc: addressList,
  bcc: addressList,
  replyTo: z.string().max(500, { error: 'The reply-to address is at most 500 characters' }).optional(),
  subject: z.string({ error: 'Enter a subject' }).max(998, { error: 'The subject is longer than 998 characters' }),
  text: z.string().optional(),
  html: z.string().optional(),
  attachments: z
    .array(
      z.strictObject({
        filename: z.string({ error: 'Each attachment needs a filename' }).min(1, { error: 'Each attachment needs a filename' }).max(255),
        contentType: z.string().max(255).default('application/octet-stream'),
        content: z.string({ error: 'Attachment content must be base64' }),
      }),
    )
    .max(100, { error: 'At most 100 attachments' })
    .optional(),
  headers: z.record(z.string(), z.string().max(4000)).optional(),
  mailServerId: z.string().optional(),
  owner: z.string({ error: 'The owner is your application\'s id for the user, as text' }).trim().min(1, { error: 'The owner is empty: leave it out for a shared mailbox' }).max(200, { error: 'The owner is at most 200 characters' }).optional(),
  allowSharedFallback: z.boolean({ error: 'allowSharedFallback is true or false' }).optional(),
});

export interface ValidMessage {
  from: Mailbox | null;
  to: Mailbox[];
  cc: Mailbox[];
  bcc: Mailbox[];
  replyTo: Mailbox | null;
  subject: string;
  text: string | null;
  html: string | null;
  attachments: Array<{ filename: string; contentType: string; content: string; size: number }>;
  headers: Record<string, string>;
  mailServerId: string | null;
  /** The ERP user whose own mailbox sends it; null: shared mailboxes only. */
  owner: string | null;
  allowSharedFallback: boolean;
  sizeBytes: number;
}

/**
 * Validates everything before anything is queued: strict addresses, no CR/LF in any header value
 * (header injection), allow-listed custom headers, base64 attachments and a total size limit.
 * Every bad field is reported at once.
 */
export function validateMessage(body: unknown, maxBytes: number): ValidMessage {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw validationError({ body: 'Send a JSON object (Content-Type: application/json)' });
  }
  const r = sendMessageSchema.safeParse(body);
  if (!r.success) throw validationError(fieldErrors(r.error.issues));
  const fields: Record<string, string> = {};
  const b = r.data;
  const list = (name: string, v: string | string[] | undefined): Mailbox[] => {
    const items = v === undefined ? [] : Array.isArray(v) ? v : [v];
    const out: Mailbox[] = [];
    items.forEach((item, i) => {
      try {
        out.push(parseMailbox(item));
      } catch (e) {
        fields[Array.isArray(v) ? `${name}.${i}` : name] ??= `${name}: ${(e as Error).message}`;
      }
    });
    return out;
  };
  const one = (name: string, v: string | undefined): Mailbox | null => list(name, v)[0] ?? null;

  const from = one('from', b.from);
  const to = list('to', b.to);
  const cc = list('cc', b.cc);
  const bcc = list('bcc', b.bcc);
  const replyTo = one('replyTo', b.replyTo);
  if (to.length + cc.length + bcc.length === 0 && !Object.keys(fields).some((k) => /^(to|cc|bcc)/.test(k))) {
    fields.to = 'Give at least one recipient in to, cc or bcc';
  }
  if (b.from === undefined && b.mailServerId === undefined && b.owner === undefined) fields.from = 'Give the sender address in from (or a mailServerId or owner to send as their mailbox)';
  if (b.allowSharedFallback !== undefined && b.owner === undefined) fields.allowSharedFallback = 'allowSharedFallback goes with an owner: without one only shared mailboxes send anyway';
  if (CRLF.test(b.subject)) fields.subject = 'The subject must not contain line breaks';
  else if (unfoldable(b.subject)) fields.subject = `The subject ${TOO_LONG}`;
  if (b.text === undefined && b.html === undefined) fields.text = 'Give the message body in text or html';

  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(b.headers ?? {})) {
    const key = `headers.${name}`;
    if (!HEADER_NAME.test(name)) fields[key] = `"${name}" is not a valid header name`;
    else if (!ALLOWED_HEADERS.has(name.toLowerCase()) && !/^x-/i.test(name)) fields[key] = `The header ${name} cannot be set; Mailroom builds it from the message fields`;
    else if (CRLF.test(value)) fields[key] = `The ${name} header must not contain line breaks`;
    else if (unfoldable(value)) fields[key] = `The ${name} header ${TOO_LONG}`;
    else headers[name] = value;
  }

  let size = Buffer.byteLength(b.text ?? '') + Buffer.byteLength(b.html ?? '');
  const attachments: ValidMessage['attachments'] = [];
  (b.attachments ?? []).forEach((a, i) => {
    if (CRLF.test(a.filename)) fields[`attachments.${i}.filename`] = 'The filename must not contain line breaks';
    if (CRLF.test(a.contentType) || !/^[\w.+-]+\/[\w.+-]+(\s*;.*)?$/.test(a.contentType)) fields[`attachments.${i}.contentType`] = 'Give a MIME type such as application/pdf';
    else if (STRUCTURAL_TYPE.test(a.contentType)) fields[`attachments.${i}.contentType`] = `${a.contentType.split(';')[0]} cannot be an attachment's type; send the file as application/octet-stream`;
    const content = a.content.replace(/\s+/g, '');
    if (!BASE64.test(content) || content.length % 4 === 1) {
      fields[`attachments.${i}.content`] = 'Attachment content must be base64';
      return;
    }
    const bytes = Buffer.byteLength(content, 'base64');
    size += bytes;
    attachments.push({ filename: a.filename, contentType: a.contentType, content, size: bytes });
  });
  if (size > maxBytes) {
    fields.attachments ??= `The message is ${(size / 1048576).toFixed(1)} MB; the limit is ${(maxBytes / 1048576).toFixed(1)} MB`;
  }
  if (Object.keys(fields).length) throw validationError(fields);
  return {
    from,
    to,
    cc,
    bcc,
    replyTo,
    subject: b.subject,
    text: b.text ?? null,
    html: b.html ?? null,
    attachments,
    headers,
    mailServerId: b.mailServerId ?? null,
    owner: b.owner ?? null,
    allowSharedFallback: b.allowSharedFallback ?? false,
    sizeBytes: size,
  };
}

export function unprocessable(message: string, fix: string, field?: string): MailroomError {
  return new MailroomError('MR_UNPROCESSABLE', message, { fix, ...(field !== undefined && { field }) });
}
