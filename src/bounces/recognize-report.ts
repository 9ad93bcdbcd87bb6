import { BOUNCE_CATALOGUE } from '../diagnose/catalogue.ts';
import { categorize, enhancedStatus } from './bounce-category.ts';
import type { BounceCategory, DeliveryReport, RecipientAction, ReportRecipient } from './delivery-report.ts';
import { decodedText, first, htmlToText, leafParts, parseHeaderBlock, readMessage, splitHeaders, type Headers, type MimePart } from './mime-walk.ts';
import { failedRecipientsOnly, recognizeTextBounce, type TextBounce, type TextSender } from './text-bounce.ts';

const ACTIONS: ReadonlySet<string> = new Set(['failed', 'delayed', 'delivered', 'relayed', 'expanded']);
const MAX_RECIPIENTS = 500;
const MAX_IDS = 20;

/**
 * Recognises a delivery status notification, an automatic reply or a read receipt in a raw message;
 * null for ordinary mail. Never throws; bounded work on any input (reads at most the first few MB).
 */
export async function recognizeReport(raw: Buffer): Promise<DeliveryReport | null> {
  try {
    return recognize(raw);
  } catch {
    return null;
  }
}

function recognize(raw: Buffer): DeliveryReport | null {
  const root = readMessage(raw);
  const h = root.headers;
  const parts = leafParts(root);
  const reportType = root.type === 'multipart/report' ? (root.params['report-type'] ?? '').toLowerCase() : '';

  // The report part counts inside a report (or from a daemon): a person may attach one to a question.
  const mdn = parts.find((p) => p.type === 'message/disposition-notification');
  if (reportType === 'disposition-notification' || (mdn && root.type === 'multipart/report')) return readReceipt(root, parts, mdn ?? null);

  const dsn = parts.find((p) => p.type === 'message/delivery-status' || p.type === 'message/global-delivery-status');
  const failed = addressList(h, 'x-failed-recipients');
  const sender = textSender(h);
  if (dsn && (reportType === 'delivery-status' || sender || failed.length > 0 || isDaemon(h))) return fromDsn(root, parts, dsn, sender);

  if (looksLikeBounce(h, failed, sender)) {
    const text = mainText(parts);
    const bounce = recognizeTextBounce(text, failed, sender === 'exchange' ? 'exchange' : null) ?? (failed.length || isDaemon(h) ? failedRecipientsOnly(text, failed, sender ?? 'text') : null);
    if (bounce) return fromText(root, parts, bounce, sender);
  }

  return autoReply(h);
}

// ── delivery status notifications (RFC 3464) ──

function fromDsn(root: MimePart, parts: MimePart[], dsn: MimePart, sender: TextSender): DeliveryReport {
  const groups = decodedText(dsn)
    .split(/\r?\n(?:[ \t]*\r?\n)+/, MAX_RECIPIENTS + 2)
    .map((g) => parseHeaderBlock(g.trim()))
    .filter((g) => g.size > 0);
  const isRecipient = (g: Headers) => g.has('final-recipient') || g.has('original-recipient');
  const perMessage = groups.find((g) => !isRecipient(g)) ?? new Map();
  const recipients: ReportRecipient[] = [];
  for (const g of groups) {
    if (!isRecipient(g) || recipients.length >= MAX_RECIPIENTS) continue;
    const originalRecipient = typedAddress(first(g, 'original-recipient'));
    const address = typedAddress(first(g, 'final-recipient')) ?? originalRecipient;
    if (!address) continue;
    const action = toAction(first(g, 'action'));
    const status = enhancedStatus(first(g, 'status'));
    const diagnostic = first(g, 'diagnostic-code')?.slice(0, 1000) || null;
    recipients.push({ address, originalRecipient, action, status, diagnostic, category: categorize(status, diagnostic, action), remoteMta: first(g, 'remote-mta') || null });
  }
  const { headers: originalHeaders, messageId } = original(parts, null);
  return {
    kind: 'delivery_status',
    format: sender ?? 'rfc3464',
    reportingMta: first(perMessage, 'reporting-mta') || null,
    // Gmail names the original in the per-message fields too (X-Original-Message-ID).
    originalMessageIds: messageIds(root.headers, messageId, bracketed(first(perMessage, 'x-original-message-id'))),
    originalHeaders,
    recipients,
    from: null,
    messageId: ownId(root.headers),
    subject: first(root.headers, 'subject'),
  };
}

function fromText(root: MimePart, parts: MimePart[], bounce: TextBounce, sender: TextSender): DeliveryReport {
  const { headers: originalHeaders, messageId } = original(parts, bounce.originalBlock);
  return {
    kind: 'delivery_status',
    format: bounce.format,
    reportingMta: bounce.reportingMta ?? daemonHost(root.headers),
    originalMessageIds: messageIds(root.headers, messageId),
    originalHeaders,
    recipients: bounce.recipients,
    from: null,
    messageId: ownId(root.headers),
    subject: first(root.headers, 'subject'),
  };
}

/** "rfc822; Jane@Example.com" → "jane@example.com" (RFC 3464 §2.3.1, address-type; address). */
function typedAddress(value: string | null): string | null {
  if (!value) return null;
  const semi = value.indexOf(';');
  const address = (semi >= 0 ? value.slice(semi + 1) : value).trim().replace(/^<|>$/g, '').trim().toLowerCase();
  return address.length > 0 && address.length <= 320 ? address : null;
}

function toAction(value: string | null): RecipientAction {
  const word = (value ?? '').trim().toLowerCase().split(/[\s(;]/, 1)[0] ?? '';
  if (ACTIONS.has(word)) return word as RecipientAction;
  // Pre-RFC 3464 drafts and some gateways write "failure"/"delay".
  return word.startsWith('delay') ? 'delayed' : 'failed';
}

// ── plain-text bounces ──

/** Exchange and Gmail say who they are in headers; the text then follows their own layout. */
function textSender(h: Headers): TextSender {
  if (h.has('x-ms-exchange-message-is-ndr')) return 'exchange';
  const from = (first(h, 'from') ?? '').toLowerCase();
  if (/mailer-daemon@(googlemail|gmail)\.com/.test(from)) return 'gmail';
  return null;
}

function isDaemon(h: Headers): boolean {
  // The address, not the display name: "Postmaster Team Lead <lead@…>" is a person.
  const local = (fromAddress(h) ?? '').split('@', 1)[0] ?? '';
  return /^(mailer-daemon|mailerdaemon|postmaster)$/.test(local) || (first(h, 'return-path') ?? 'x').trim() === '<>';
}

const BOUNCE_SUBJECT = /undeliver|undelivered|delivery (status notification|failure|has failed|failed|delayed|incomplete)|returned mail|failure notice|mail delivery failed|non[- ]?delivery|could not be delivered|warning: message .{0,200} delayed/i;

function looksLikeBounce(h: Headers, failed: string[], sender: TextSender): boolean {
  if (sender || failed.length > 0) return true;
  const subject = (first(h, 'subject') ?? '').slice(0, 500);
  // A person's reply quoting "Undeliverable" is not a bounce: it needs a daemon sender too, and no "Re:".
  return isDaemon(h) && BOUNCE_SUBJECT.test(subject) && !/^\s*(re|aw|sv|fw|fwd|wg|tr)\s*:/i.test(subject);
}

function daemonHost(h: Headers): string | null {
  const m = /mailer-daemon@([A-Za-z0-9.-]{1,255})/i.exec(first(h, 'from') ?? '');
  return m ? `dns; ${m[1]!.toLowerCase()}` : null;
}

/** The first text/plain part that is not the attached original, or the first HTML one as text. */
function mainText(parts: MimePart[]): string {
  const plain = parts.find((p) => p.type === 'text/plain');
  if (plain) return decodedText(plain);
  const html = parts.find((p) => p.type === 'text/html');
  return html ? htmlToText(decodedText(html)) : '';
}

function addressList(h: Headers, name: string): string[] {
  const out: string[] = [];
  for (const v of h.get(name) ?? []) {
    for (const a of v.split(',', MAX_RECIPIENTS)) {
      const address = a.trim().replace(/^<|>$/g, '').toLowerCase();
      if (address.includes('@') && address.length <= 320 && out.length < MAX_RECIPIENTS) out.push(address);
    }
  }
  return out;
}

// ── the original message ──

/** The original's headers from message/rfc822, text/rfc822-headers, or a copy in the text. */
function original(parts: MimePart[], textCopy: string | null): { headers: Record<string, string> | null; messageId: string | null } {
  let block: Headers | null = null;
  const attached = parts.find((p) => p.type === 'message/rfc822' || p.type === 'message/global' || p.type === 'text/rfc822-headers' || p.type === 'message/global-headers');
  if (attached) block = splitHeaders(decodedText(attached)).headers;
  else if (textCopy) block = splitHeaders(textCopy).headers;
  if (!block || block.size === 0) return { headers: null, messageId: null };
  const headers: Record<string, string> = {};
  for (const [name, values] of block) headers[name] = values[0] ?? '';
  return { headers, messageId: bracketed(first(block, 'message-id')) };
}

function bracketed(value: string | null): string | null {
  if (!value) return null;
  const m = /<[^<>\s]{1,995}>/.exec(value);
  if (m) return m[0];
  const bare = value.trim();
  return /^[^<>\s@]{1,500}@[^<>\s@]{1,500}$/.test(bare) ? `<${bare}>` : null;
}

function idsIn(value: string | null): string[] {
  return value ? (value.slice(0, 20_000).match(/<[^<>\s]{1,995}>/g) ?? []) : [];
}

/**
 * Best first: the attached original's Message-ID, Exchange's X-Microsoft-Original-Message-ID, then
 * In-Reply-To and References newest last (the message answered is the last reference, RFC 5322 §3.6.4).
 */
function messageIds(h: Headers, attached: string | null, extra: string | null = null): string[] {
  const list = [
    attached,
    extra,
    bracketed(first(h, 'x-microsoft-original-message-id')),
    ...idsIn(first(h, 'in-reply-to')),
    ...idsIn(first(h, 'references')).reverse(),
  ];
  const out: string[] = [];
  for (const id of list) if (id && !out.includes(id) && out.length < MAX_IDS) out.push(id);
  return out;
}

function ownId(h: Headers): string | null {
  return bracketed(first(h, 'message-id'));
}

function fromAddress(h: Headers): string | null {
  const from = first(h, 'from') ?? '';
  const m = /<([^<>\s]{1,320})>/.exec(from) ?? /([^\s<>"]{1,64}@[^\s<>"]{1,255})/.exec(from);
  return m ? m[1]!.toLowerCase() : null;
}

// ── read receipts (RFC 8098) ──

function readReceipt(root: MimePart, parts: MimePart[], mdn: MimePart | null): DeliveryReport {
  const fields = mdn ? parseHeaderBlock(decodedText(mdn).trim()) : new Map();
  const { headers: originalHeaders, messageId } = original(parts, null);
  return {
    kind: 'read_receipt',
    format: 'rfc8098',
    reportingMta: first(fields, 'reporting-ua') || null,
    originalMessageIds: messageIds(root.headers, messageId, bracketed(first(fields, 'original-message-id'))),
    originalHeaders,
    recipients: [],
    from: typedAddress(first(fields, 'final-recipient')) ?? fromAddress(root.headers),
    messageId: ownId(root.headers),
    subject: first(root.headers, 'subject'),
    disposition: first(fields, 'disposition') || null,
  };
}

// ── automatic replies (RFC 3834) ──

const AUTO_SUBJECT = /^\s*(automatic reply|auto(matic)?[- ]?(reply|response)|autoreply|out of (the )?office|abwesenheitsnotiz|automatische antwort|r[ée]ponse automatique|risposta automatica|respuesta autom[áa]tica)\b/i;

function autoReply(h: Headers): DeliveryReport | null {
  const submitted = (first(h, 'auto-submitted') ?? '').trim().toLowerCase().split(/[\s;(]/, 1)[0] ?? '';
  const subject = first(h, 'subject') ?? '';
  let format: string | null = null;
  // Exchange marks its OOF ("Automatic reply: …") with Auto-Submitted: auto-generated, not auto-replied,
  // and with X-MS-Exchange-Inbox-Rules-Loop and X-Auto-Response-Suppress.
  const exchangeMark = h.has('x-ms-exchange-inbox-rules-loop') || h.has('x-auto-response-suppress');
  const autoSubject = AUTO_SUBJECT.test(subject);
  const gmail = /@mail\.gmail\.com>/i.test(first(h, 'message-id') ?? '') || [...h.keys()].some((k) => k.startsWith('x-gm-') || k.startsWith('x-google-'));
  if (submitted === 'auto-replied') format = exchangeMark ? 'exchange-oof' : gmail ? 'gmail-vacation' : 'rfc3834';
  else if (exchangeMark && autoSubject && submitted !== 'no') format = 'exchange-oof';
  else if (h.has('x-autoreply') || h.has('x-autorespond')) format = 'x-autoreply';
  else if (/^auto[-_]reply$/i.test((first(h, 'precedence') ?? '').trim())) format = 'precedence';
  // Auto-Submitted: auto-generated alone is a newsletter, a notification, a report of another kind: not an answer.
  if (!format) return null;
  return {
    kind: 'auto_reply',
    format,
    reportingMta: null,
    originalMessageIds: messageIds(h, null),
    originalHeaders: null,
    recipients: [],
    from: fromAddress(h),
    messageId: ownId(h),
    subject: subject || null,
  };
}

/** Plain-words explanation (cause + fix) of a category, through the catalogue. */
export function explainCategory(category: BounceCategory): { cause: string; fix: string; code: string } {
  const code = CATEGORY_CODES[category];
  const entry = BOUNCE_CATALOGUE[code];
  return { cause: entry.cause, fix: entry.fix, code };
}

const CATEGORY_CODES = {
  unknown_user: 'BOUNCE_UnknownUser',
  unknown_domain: 'BOUNCE_UnknownDomain',
  mailbox_full: 'BOUNCE_MailboxFull',
  message_too_large: 'BOUNCE_MessageTooLarge',
  blocked: 'BOUNCE_Blocked',
  temporary: 'BOUNCE_Temporary',
  other: 'BOUNCE_Other',
} as const satisfies Record<BounceCategory, string>;
