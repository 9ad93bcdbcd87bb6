import { randomUUID } from 'node:crypto';

/**
 * Header fields a submission server must not pass on: Bcc would show the blind copies to every
 * recipient (RFC 5322 §3.6.3; Resent-Bcc likewise, §3.6.6). The recipients stay in the envelope.
 */
const DROPPED = new Set(['bcc', 'resent-bcc']);

export interface PreparedMessage {
  raw: Buffer;
  /** The Message-ID added because the client sent none, or null. */
  addedMessageId: string | null;
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
    }
    if (dropping) droppedAny = true;
    else kept.push(line);
    pos = end;
  }
  const addedMessageId = hasMessageId ? null : `<${randomUUID()}@${senderDomain || 'mailroom.invalid'}>`;
  if (addedMessageId === null && !droppedAny) return { raw, addedMessageId };
  const head = (addedMessageId ? `Message-ID: ${addedMessageId}${newline}` : '') + kept.join('');
  return { raw: Buffer.concat([Buffer.from(head, 'latin1'), raw.subarray(pos)]), addedMessageId };
}
