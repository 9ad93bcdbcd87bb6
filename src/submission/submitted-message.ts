import { randomUUID } from 'node:crypto';
import { MailroomError } from '../errors/errors.ts';
import { parseMailbox } from '../outbox/message-input.ts';
import { type Candidate, type Choice, maySendAs } from '../servers/choose-server.ts';
import type { MessageProblem } from '../storage/inbound-store.ts';

/**
 * X-Mailroom-Owner: the ERP user whose own mailbox sends the message (as `owner` in the REST API).
 * An instruction to Mailroom, never sent on.
 */
export const OWNER_HEADER = 'x-mailroom-owner';

/**
 * Header fields a submission server must not pass on: Bcc would show the blind copies to every
 * recipient (RFC 5322 §3.6.3; Resent-Bcc likewise, §3.6.6). The recipients stay in the envelope.
 */
const DROPPED = new Set(['bcc', 'resent-bcc', OWNER_HEADER]);

export interface PreparedMessage {
  raw: Buffer;
  /** The Message-ID added because the client sent none, or null. */
  addedMessageId: string | null;
  /** Every X-Mailroom-Owner value (unfolded, trimmed): more than one is refused by the caller. */
  owners: string[];
}

/**
 * The message as it will be sent: Bcc removed and, only when the client sent none, a Message-ID
 * added (RFC 6409 §8.3 lets a submission server do so; the outbox needs one to recognise its
 * message at the far end and link replies). Every other byte — header order, folding, case, the
 * body, DKIM-signed parts — is kept. Works on latin1, which maps each byte to one character and back.
 */
export function prepareSubmitted(raw: Buffer, senderDomain: string): PreparedMessage {
  const text = raw.toString('latin1');
  const kept: string[] = [];
  let pos = 0;
  let dropping = false;
  let droppedAny = false;
  let hasMessageId = false;
  const owners: string[] = [];
  let inOwner = false;
  let newline = '\r\n';
  let first = true;
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    const end = nl === -1 ? text.length : nl + 1;
    const line = text.slice(pos, end);
    if (first) {
      newline = line.endsWith('\r\n') || nl === -1 ? '\r\n' : '\n';
      first = false;
    }
    // The first empty line ends the header section (RFC 5322 §2.1).
    if (line === '\r\n' || line === '\n') break;
    const continuation = line[0] === ' ' || line[0] === '\t';
    if (!continuation) {
      const name = line.slice(0, Math.max(0, line.indexOf(':'))).trim().toLowerCase();
      dropping = DROPPED.has(name);
      if (name === 'message-id') hasMessageId = true;
      inOwner = name === OWNER_HEADER;
      if (inOwner) owners.push(line.slice(line.indexOf(':') + 1));
    } else if (inOwner) {
      owners[owners.length - 1] += line;
    }
    if (dropping) droppedAny = true;
    else kept.push(line);
    pos = end;
  }
  const addedMessageId = hasMessageId ? null : `<${randomUUID()}@${senderDomain || 'mailroom.invalid'}>`;
  const owner = owners.map((o) => o.replace(/\r?\n/g, '').trim());
  if (addedMessageId === null && !droppedAny) return { raw, addedMessageId, owners: owner };
  const head = (addedMessageId ? `Message-ID: ${addedMessageId}${newline}` : '') + kept.join('');
  return { raw: Buffer.concat([Buffer.from(head, 'latin1'), raw.subarray(pos)]), addedMessageId, owners: owner };
}

/** A refused submission: `field` 'from' is a sender the server may not send as, 'message' a message that cannot be sent at all. */
const refused = (field: 'from' | 'message', message: string, fix: string) => new MailroomError('MR_UNPROCESSABLE', message, { field, fix });

/**
 * Header fields that name who wrote or sent the message (RFC 5322 §3.6.2, resent fields §3.6.6). A
 * recipient's mail program shows them as the sender, so each mailbox in them must be one the chosen
 * server may send as, not only the first of From.
 */
const SENDER_FIELDS = new Set(['from', 'sender', 'resent-from', 'resent-sender']);
const SINGLE_MAILBOX = new Set(['sender', 'resent-sender']);
const FIELD_NAME: Record<string, string> = { from: 'From', sender: 'Sender', 'resent-from': 'Resent-From', 'resent-sender': 'Resent-Sender' };

export interface SenderField {
  /** Lower case: from, sender, resent-from, resent-sender. */
  name: string;
  /** Unfolded (RFC 5322 §2.2.3), as latin1 characters of the bytes. */
  value: string;
}

/** The sender fields of the header section, in order, each unfolded. */
export function senderFields(raw: Buffer): SenderField[] {
  const text = raw.toString('latin1');
  const fields: SenderField[] = [];
  let current: SenderField | null = null;
  let pos = 0;
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    const end = nl === -1 ? text.length : nl + 1;
    const line = text.slice(pos, end).replace(/\r?\n$/, '');
    pos = end;
    if (line === '') break;
    if (line[0] === ' ' || line[0] === '\t') {
      if (current) current.value += line;
      continue;
    }
    const colon = line.indexOf(':');
    // "From :" (whitespace before the colon, RFC 5322 §4.5.3 obs-optional) is still From to a reader.
    const name = colon === -1 ? '' : line.slice(0, colon).trim().toLowerCase();
    current = SENDER_FIELDS.has(name) ? { name, value: line.slice(colon + 1) } : null;
    if (current) fields.push(current);
  }
  return fields;
}

type Token = { t: 'word'; v: string } | { t: 'special'; v: string };

class Unparseable extends Error {}

/**
 * RFC 5322 §3.2 lexical tokens of an address field: atoms (dots included, so a dot-atom is one
 * word), quoted strings, the specials that give the structure; comments and whitespace dropped.
 * Bytes past ASCII are word characters (RFC 6532), so a UTF-8 name is one word and a UTF-8
 * address is refused later as not an address the outbox can send as.
 */
function tokens(value: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < value.length) {
    const c = value[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') i++;
    else if (c === '(') {
      let depth = 0;
      for (; i < value.length; i++) {
        const d = value[i]!;
        if (d === '\\') i++;
        else if (d === '(') depth++;
        else if (d === ')' && --depth === 0) break;
      }
      if (depth !== 0) throw new Unparseable('a comment "(" is not closed');
      i++;
    } else if (c === '"') {
      let v = '';
      for (i++; i < value.length && value[i] !== '"'; i++) v += value[i] === '\\' ? value[++i] ?? '' : value[i];
      if (i >= value.length) throw new Unparseable('a quoted string is not closed');
      i++;
      out.push({ t: 'word', v });
    } else if ('<>@,;:[]\\'.includes(c)) {
      out.push({ t: 'special', v: c });
      i++;
    } else {
      let v = '';
      while (i < value.length && !' \t\r\n()"<>@,;:[]\\'.includes(value[i]!)) v += value[i++];
      out.push({ t: 'word', v });
    }
  }
  return out;
}

/** local "@" domain, exactly three tokens: anything else is not one address to every reader alike. */
function addrSpec(ts: Token[]): string {
  if (ts.length !== 3 || ts[0]!.t !== 'word' || ts[1]!.v !== '@' || ts[1]!.t !== 'special' || ts[2]!.t !== 'word') throw new Unparseable('it is not one address');
  return `${ts[0]!.v}@${ts[2]!.v}`;
}

/** One mailbox: `addr-spec` or `[phrase] <addr-spec>` (RFC 5322 §3.4), nothing before or after. */
function mailbox(ts: Token[]): string {
  const open = ts.findIndex((t) => t.t === 'special' && t.v === '<');
  if (open === -1) return addrSpec(ts);
  if (ts.slice(0, open).some((t) => t.t !== 'word')) throw new Unparseable('the display name holds "@", "<", "," or ":"; put it in double quotes');
  const close = ts.findIndex((t, k) => k > open && t.t === 'special' && t.v === '>');
  if (close === -1) throw new Unparseable('"<" is not closed');
  if (close !== ts.length - 1) throw new Unparseable('something follows the address in "<...>"');
  return addrSpec(ts.slice(open + 1, close));
}

/**
 * Every mailbox of an address field: a list separated by commas, groups (`Name: a@x, b@y;`)
 * flattened. Throws Unparseable for anything a strict reader would not see as exactly these
 * mailboxes (a second address after the first, an unquoted "@" in a display name, an empty list).
 */
export function mailboxesOf(value: string): string[] {
  const ts = tokens(value);
  const found: string[] = [];
  let element: Token[] = [];
  let inGroup = false;
  // Inside "<…>" a comma, colon or semicolon is part of the (then invalid) address, not structure.
  let inAngle = false;
  const flush = () => {
    if (element.length) found.push(mailbox(element));
    else if (!inGroup) throw new Unparseable('the list has an empty entry');
    element = [];
  };
  for (let k = 0; k < ts.length; k++) {
    const t = ts[k]!;
    if (t.t === 'special' && (t.v === '<' || t.v === '>')) inAngle = t.v === '<';
    if (t.t === 'special' && t.v === ':' && !inAngle) {
      if (inGroup || element.some((x) => x.t !== 'word') || element.length === 0) throw new Unparseable('":" is only allowed after a group name');
      inGroup = true;
      element = [];
    } else if (t.t === 'special' && t.v === ';' && !inAngle) {
      if (!inGroup) throw new Unparseable('";" ends no group');
      if (element.length) found.push(mailbox(element));
      element = [];
      inGroup = false;
      const next = ts[k + 1];
      if (next && !(next.t === 'special' && next.v === ',')) throw new Unparseable('something follows a group\'s ";"');
      if (next) k++;
    } else if (t.t === 'special' && t.v === ',' && !inAngle) flush();
    else element.push(t);
  }
  if (inGroup) throw new Unparseable('a group is not closed with ";"');
  if (element.length || ts.length === 0 || (ts.length && ts[ts.length - 1]!.v === ',')) flush();
  if (!found.length) throw new Unparseable('it names no mailbox');
  return found;
}


/**
 * The server for a message submitted as it is (SMTP): chosen by the first From mailbox (else the
 * envelope sender), then every mailbox of From, Sender, Resent-From and Resent-Sender must be one
 * that server may send as. A message the parser could not read (`problem`), a sender field that
 * does not parse, or a second From or Sender is refused (`field` 'message'); a mailbox the server may
 * not send as is refused naming it (`field` 'from').
 */
export async function chooseForSubmitted<T extends Candidate>(
  raw: Buffer,
  problem: MessageProblem | null | undefined,
  envelopeFrom: string,
  chooseFor: (from: string) => Promise<Choice<T> & { fix?: string }>,
): Promise<T> {
  if (problem) throw refused('message', problem.message, 'Nothing was queued and sending it again will not help: send it as a simpler message (fewer parts, attachments zipped) or fix what builds it.');
  const mailboxes: Array<{ field: string; address: string }> = [];
  const counts = new Map<string, number>();
  for (const f of senderFields(raw)) {
    counts.set(f.name, (counts.get(f.name) ?? 0) + 1);
    const label = FIELD_NAME[f.name]!;
    // RFC 5322 §3.6: one From and at most one Sender; a reader shows one of two, and not always the same one.
    if ((f.name === 'from' || f.name === 'sender') && counts.get(f.name) === 2) {
      throw refused('message', `The message has more than one ${label} field; RFC 5322 allows one.`, `Send it with a single ${label} field (several authors go in one From, separated by commas).`);
    }
    let found: string[];
    try {
      found = mailboxesOf(f.value);
      if (SINGLE_MAILBOX.has(f.name) && found.length !== 1) throw new Unparseable('it must name exactly one mailbox');
      for (const a of found) if (!isSendable(a)) throw new Unparseable(`"${shown(a)}" is not an address Mailroom can send as (ASCII only; write international domains in punycode, xn--...)`);
    } catch (e) {
      if (!(e instanceof Unparseable)) throw e;
      throw refused('message', `The ${label} field "${shown(f.value)}" does not parse: ${e.message}.`, `Write it as Name <address@your-domain> (several separated by commas), with the name in double quotes if it holds punctuation.`);
    }
    for (const a of found) mailboxes.push({ field: label, address: a.toLowerCase() });
  }
  const first = mailboxes.find((m) => m.field === 'From')?.address ?? envelopeFrom;
  const choice = await chooseFor(first);
  if (!choice.ok) throw refused('from', choice.reason, choice.fix ?? '');
  const server = choice.server;
  const other = mailboxes.find((m) => !maySendAs(server, m.address));
  if (other) {
    throw refused(
      'from',
      `The ${other.field} field names ${other.address}, and the mail server "${server.name}" chosen for ${first} may send only as ${server.fromFilter ?? server.username}.`,
      `Remove ${other.address} from the ${other.field} field, send it as a message of its own, or add it to the FROM Filtering of a mail server in Settings > Technical > Mail Servers.`,
    );
  }
  return server;
}

/** An address the outbox can send as: what the REST API accepts (ASCII, a domain with a TLD). */
const isSendable = (address: string) => {
  try {
    parseMailbox(address);
    return true;
  } catch {
    return false;
  }
};

/** A header value in an SMTP reply: one line of printable ASCII (other bytes as "?"), cut at 200 characters. */
const shown = (v: string) => {
  const s = v.replace(/[\t\r\n]/g, ' ').replace(/[^\x20-\x7e]/g, '?').trim();
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
};

/**
 * Bytes RFC 5322 §2.3 forbids in a message that some mail servers read in their own way: a CR not
 * followed by LF is a line end to some (a `Subject: x\rBcc: y` would become a Bcc field upstream),
 * and NUL ends a string in others. Returns what is wrong in plain words, or null.
 */
export function forbiddenBytes(raw: Buffer): string | null {
  const nul = raw.indexOf(0);
  if (nul !== -1) return `The message contains a NUL byte (at byte ${nul.toLocaleString('en-US')}); RFC 5322 does not allow NUL in a message.`;
  for (let cr = raw.indexOf(13); cr !== -1; cr = raw.indexOf(13, cr + 1)) {
    if (raw[cr + 1] !== 10) {
      return `The message contains a CR not followed by LF (at byte ${cr.toLocaleString('en-US')}); RFC 5322 allows CR only in CRLF, and some servers would read it as a line end.`;
    }
  }
  return null;
}
