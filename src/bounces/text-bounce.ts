import { categorize, enhancedStatus } from './bounce-category.ts';
import type { RecipientAction, ReportRecipient } from './delivery-report.ts';

/** What a plain-text bounce says, when one of the known senders wrote it. */
export interface TextBounce {
  format: string;
  recipients: ReportRecipient[];
  reportingMta: string | null;
  /** The original's header block when the text carries a copy of it (qmail, Yahoo, Gmail's old text). */
  originalBlock: string | null;
}

const MAX_RECIPIENTS = 500;
const MAX_LINES = 5000;
const ADDRESS = /^<?([^\s<>@"]{1,64}@[^\s<>@"]{1,255}?)>?:?$/;

function recipient(address: string, action: RecipientAction, diagnostic: string | null): ReportRecipient {
  const d = diagnostic ? diagnostic.replace(/\s+/g, ' ').trim().slice(0, 1000) || null : null;
  const status = enhancedStatus(d);
  return { address: address.toLowerCase(), action, status, diagnostic: d, category: categorize(status, d, action), remoteMta: null };
}

/** The text after a marker line such as qmail's "--- Below this line is a copy of the message." */
function copyAfter(text: string, markers: RegExp): string | null {
  const m = markers.exec(text);
  if (!m) return null;
  const rest = text.slice(m.index + m[0].length).replace(/^[^\n]*\n/, '').replace(/^\s*\n/, '');
  return rest.length > 0 ? rest : null;
}

/**
 * Blocks of "address line, then indented or following lines up to a blank line", the shape qmail,
 * Yahoo and Postfix use: `<x@y>:` then the remote's answer.
 */
function addressBlocks(lines: string[], from: number, stop: RegExp | null, action: RecipientAction, angle: boolean): ReportRecipient[] {
  const out: ReportRecipient[] = [];
  let current: { address: string; diag: string[] } | null = null;
  const push = () => {
    if (current && out.length < MAX_RECIPIENTS) out.push(recipient(current.address, action, current.diag.join(' ')));
    current = null;
  };
  for (let i = from; i < lines.length && i < MAX_LINES; i++) {
    const line = (lines[i] ?? '').trimEnd();
    if (stop && stop.test(line)) break;
    const head = angle ? /^<([^\s<>@]{1,64}@[^\s<>@]{1,255})>(?: \(expanded from [^)]{0,300}\))?:\s?(.{0,2000})$/.exec(line) : null;
    const bare = !head && !/^\s/.test(line) ? ADDRESS.exec(line) : null;
    if (head || bare) {
      push();
      current = { address: (head ? head[1] : bare![1])!, diag: head && head[2] ? [head[2]] : [] };
      continue;
    }
    if (!line.trim()) {
      if (current && current.diag.length > 0) push();
      continue;
    }
    if (current) current.diag.push(line.trim());
  }
  push();
  return out;
}

/** Postfix's bounce(8) text: "This is the mail system at host mx.example.com." then `<addr>: answer`. */
function postfix(text: string, lines: string[]): TextBounce | null {
  const m = /^This is the mail system at host ([A-Za-z0-9.-]{1,255}?)\.?\s/m.exec(text);
  if (!m) return null;
  const delayed = /THIS IS A WARNING ONLY|Delayed Mail|still being retried/i.test(text);
  const start = lines.findIndex((l) => /^<[^\s<>]{1,320}>/.test(l));
  const recipients = start < 0 ? [] : addressBlocks(lines, start, /^(-- |Reporting-MTA:|Content-)/, delayed ? 'delayed' : 'failed', true);
  return { format: 'postfix', recipients, reportingMta: `dns; ${m[1]}`, originalBlock: null };
}

/** qmail-send, and Yahoo's text bounce that kept its shape. */
function qmailLike(text: string, lines: string[]): TextBounce | null {
  const qmail = /^Hi\. This is the qmail-send program at ([A-Za-z0-9.-]{1,255}?)\.?\s/m.exec(text);
  const yahoo = !qmail && /^(Sorry, we were unable to deliver your message to the following address|Message not delivered to the following recipient)/im.exec(text);
  if (!qmail && !yahoo) return null;
  const delayed = /has not been delivered|still trying|temporary problem|will keep trying/i.test(text) && !/permanent error/i.test(text);
  const start = lines.findIndex((l) => /^<[^\s<>]{1,320}>:/.test(l));
  const recipients = start < 0 ? [] : addressBlocks(lines, start, /^--- (Below this line|Enclosed are)/, delayed ? 'delayed' : 'failed', true);
  const originalBlock = copyAfter(text, /^--- (Below this line is a copy of the message|Enclosed are the original headers of the message)\.?/m);
  return { format: qmail ? 'qmail' : 'yahoo', recipients, reportingMta: qmail ? `dns; ${qmail[1]}` : null, originalBlock };
}

/** Exim's text: "The following address(es) failed:" then indented addresses and their SMTP errors. */
function exim(text: string, lines: string[], failed: string[]): TextBounce | null {
  if (!/^This message was created automatically by mail delivery software/im.test(text)) return null;
  const delayed = /has not yet been delivered|delayed|still being tried/i.test(text) && !/permanent error|could not be delivered/i.test(text);
  const start = lines.findIndex((l) => /following address\(es\) (failed|deferred)|address\(es\) failed:|not yet been delivered to the following|addresse?s? to which the message has not yet been delivered/i.test(l));
  const out: ReportRecipient[] = [];
  let current: { address: string; diag: string[] } | null = null;
  const push = () => {
    if (current && out.length < MAX_RECIPIENTS) out.push(recipient(current.address, delayed ? 'delayed' : 'failed', current.diag.join(' ')));
    current = null;
  };
  for (let i = start + 1; start >= 0 && i < lines.length && i < MAX_LINES; i++) {
    const line = (lines[i] ?? '').trimEnd();
    if (/^-{3,}|^Reporting-MTA:|^------ This is a copy/i.test(line)) break;
    const addr = /^ {1,4}<?([^\s<>@]{1,64}@[^\s<>@]{1,255}?)>?$/.exec(line);
    if (addr) {
      push();
      current = { address: addr[1]!, diag: [] };
    } else if (current && /^\s/.test(line) && line.trim()) current.diag.push(line.trim());
    // Exim's closing words ("No action is required on your part.") start at the margin.
    else if (out.length + (current ? 1 : 0) > 0 && line.trim()) break;
  }
  push();
  const recipients = out.length > 0 ? out : failed.map((a) => recipient(a, delayed ? 'delayed' : 'failed', null));
  return { format: 'exim', recipients, reportingMta: null, originalBlock: copyAfter(text, /^-{6} This is a copy of the message, including all the headers\. -{6}/m) };
}

/** Sendmail's "----- The following addresses had permanent fatal errors -----" and its transcript. */
function sendmail(text: string, lines: string[]): TextBounce | null {
  const start = lines.findIndex((l) => /^-{3,} The following addresses had (permanent fatal|transient non-fatal) errors -{3,}/.test(l.trim()));
  if (start < 0) return null;
  const action: RecipientAction = /transient non-fatal/.test(lines[start] ?? '') ? 'delayed' : 'failed';
  const out: ReportRecipient[] = [];
  for (let i = start + 1; i < lines.length && i < MAX_LINES && out.length < MAX_RECIPIENTS; i++) {
    const line = (lines[i] ?? '').trim();
    if (!line) break;
    const addr = /^<?([^\s<>@]{1,64}@[^\s<>@]{1,255}?)>?$/.exec(line);
    if (addr) {
      const next = lines[i + 1]?.trim() ?? '';
      const reason = /^\(reason: (.{1,1000})\)$/.exec(next);
      let diag = reason ? reason[1] : null;
      if (!diag) {
        // The transcript's "<<< 550 5.1.1 <x@y>... User unknown" line for this address.
        const lower = addr[1]!.toLowerCase();
        const hit = lines.slice(i, MAX_LINES).find((l) => /^(<<<|\d{3}[ -])/.test(l.trim().replace(/^<<< /, '<<< ')) && l.toLowerCase().includes(lower) && /\b[45]\d\d\b/.test(l));
        diag = hit ? hit.trim().replace(/^<<< /, '') : null;
      }
      out.push(recipient(addr[1]!, action, diag));
    }
  }
  const host = /^Reporting-MTA: dns; ?([A-Za-z0-9.-]{1,255})/m.exec(text);
  return { format: 'sendmail', recipients: out, reportingMta: host && host[1] ? `dns; ${host[1]}` : null, originalBlock: null };
}

/** Gmail's older text: "Delivery to the following recipient failed permanently:" then the address indented. */
function gmailText(text: string, lines: string[]): TextBounce | null {
  const head = lines.findIndex((l) => /^Delivery to the following recipients? (failed permanently|has been delayed|failed)/i.test(l.trim()));
  if (head < 0) return null;
  const action: RecipientAction = /delayed/i.test(lines[head] ?? '') ? 'delayed' : 'failed';
  const addresses: string[] = [];
  let i = head + 1;
  for (; i < lines.length && i < MAX_LINES && addresses.length < MAX_RECIPIENTS; i++) {
    const line = (lines[i] ?? '').trim();
    if (!line) {
      if (addresses.length) break;
      continue;
    }
    const a = /^<?([^\s<>@]{1,64}@[^\s<>@]{1,255}?)>?$/.exec(line);
    if (!a) break;
    addresses.push(a[1]!);
  }
  // The remote's own reply ("The error that the other server returned was: 550 …") beats Google's summary.
  const at = text.search(/Technical details of (permanent|temporary) failure:/);
  const section = at < 0 ? '' : text.slice(at, at + 2000).split(/^-----/m, 1)[0]!;
  const reply = /^\s{0,20}([45]\d\d[ -][^\n]{1,1000})/m.exec(section);
  const summary = /failure:[ \t]*\r?\n?([^\n]{1,1000})/.exec(section);
  const diag = reply ? reply[1]! : summary ? summary[1]! : null;
  return {
    format: 'gmail',
    recipients: addresses.map((a) => recipient(a, action, diag)),
    reportingMta: null,
    originalBlock: copyAfter(text, /^----- (Original message|Message header follows) -----/m),
  };
}

/** Exchange's NDR text when the message/delivery-status part is missing. */
function exchangeText(text: string): TextBounce | null {
  const to = /(?:Your message to|Delivery has failed to these recipients or groups:)\s{0,200}<?([^\s<>@()]{1,64}@[^\s<>@()]{1,255}?)>?[ (]/i.exec(text);
  if (!to) return null;
  const remote = /Remote Server returned '([^'\n]{1,1000})'/.exec(text) ?? /(\b5\d\d[ -]5\.\d{1,3}\.\d{1,3} [^\n]{1,500})/.exec(text);
  const action: RecipientAction = /Delivery (is )?delayed|hasn't been delivered yet|will keep trying/i.test(text) ? 'delayed' : 'failed';
  return { format: 'exchange', recipients: [recipient(to[1]!, action, remote ? remote[1]! : null)], reportingMta: null, originalBlock: null };
}

export type TextSender = 'exchange' | 'gmail' | null;

/**
 * Recognises a plain-text bounce by its sender's own words. `failed` holds X-Failed-Recipients
 * (Exim, Gmail) to fall back on when the text names nobody.
 */
export function recognizeTextBounce(text: string, failed: string[], hint: TextSender): TextBounce | null {
  const lines = text.split('\n', MAX_LINES).map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (hint === 'exchange') return exchangeText(text);
  return postfix(text, lines) ?? qmailLike(text, lines) ?? exim(text, lines, failed) ?? sendmail(text, lines) ?? gmailText(text, lines) ?? null;
}

/** The recipients named by X-Failed-Recipients only, with the first SMTP reply found in the text. */
export function failedRecipientsOnly(text: string, failed: string[], format: string): TextBounce {
  const reply = /\b([45]\d\d[ -][245]\.\d{1,3}\.\d{1,3}\b[^\n]{0,500})/.exec(text);
  return { format, recipients: failed.map((a) => recipient(a, 'failed', reply ? reply[1]! : null)), reportingMta: null, originalBlock: null };
}
