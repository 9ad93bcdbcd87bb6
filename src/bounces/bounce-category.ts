import type { BounceCategory, RecipientAction } from './delivery-report.ts';

/** Enhanced status code (RFC 3463): class.subject.detail, each part at most 3 digits. */
const STATUS = /\b([245])\.(\d{1,3})\.(\d{1,3})\b/;

/** The first enhanced status in a Status field or an SMTP reply, e.g. "5.1.1". */
export function enhancedStatus(text: string | null | undefined): string | null {
  if (!text) return null;
  const m = STATUS.exec(text.slice(0, 2000));
  return m ? `${m[1]}.${m[2]}.${m[3]}` : null;
}

function fromStatus(status: string): BounceCategory | null {
  const [klass, subject, detail] = status.split('.');
  const sd = `${subject}.${detail}`;
  if (sd === '2.2') return 'mailbox_full'; // 4.2.2 and 5.2.2 alike: over quota, hard or soft per sender
  if (klass === '4') return 'temporary';
  // 5.1.10: Exchange Online's RESOLVER.ADR.RecipientNotFound; 5.1.6: mailbox moved, no forwarding;
  // 5.2.1: mailbox disabled (Gmail: "The email account that you tried to reach is disabled").
  if (sd === '1.1' || sd === '1.10' || sd === '1.6' || sd === '1.0' || sd === '2.1') return 'unknown_user';
  // 5.4.310: Exchange Online's "DNS domain does not exist".
  if (sd === '1.2' || sd === '4.4' || sd === '4.310') return 'unknown_domain';
  if (sd === '3.4' || sd === '2.3') return 'message_too_large';
  if (subject === '7') return 'blocked';
  return null;
}

// Short, linear alternatives only (no nested quantifiers), tried on at most 2,000 characters.
const TEXT_RULES: Array<[RegExp, BounceCategory]> = [
  [/mailbox (is )?full|over ?quota|quota exceeded|exceeded (the )?(storage|quota)|insufficient (system )?storage|mailbox size limit/i, 'mailbox_full'],
  [/too (large|big)|size (limit|exceeds)|exceeds (the )?(maximum )?(message )?size|message size/i, 'message_too_large'],
  [/host (or domain name )?not found|domain (name )?(not found|does not exist)|no mx|nxdomain|unrouteable|name service error|dns domain \S{1,255} does not exist|domain .{0,80}not exist/i, 'unknown_domain'],
  [/user unknown|unknown user|no such (user|recipient|mailbox)|(mailbox|recipient|address|account) (not found|unavailable|does not exist|disabled)|recipientnotfound|doesn't have a \S{1,100} account|does not exist|account that you tried to reach (is disabled|does not exist)|invalid (recipient|mailbox|address)|address rejected|unknown (local part|recipient)|not our customer/i, 'unknown_user'],
  [/spam|block(ed| ?list)|black ?list|policy|reputation|denied|not authori[sz]ed|\bspf\b|\bdkim\b|\bdmarc\b|rejected due to|content rejected/i, 'blocked'],
  [/try again later|temporar|greylist|deferred|timed? ?out|connection refused|too many (connections|messages)/i, 'temporary'],
];

/**
 * The category of one recipient's report: the enhanced status first, then the diagnostic text,
 * then the action (a delay is temporary by nature).
 */
export function categorize(status: string | null, diagnostic: string | null, action: RecipientAction): BounceCategory {
  const code = status ?? enhancedStatus(diagnostic);
  const byStatus = code ? fromStatus(code) : null;
  if (byStatus && byStatus !== 'temporary') return byStatus;
  const text = (diagnostic ?? '').slice(0, 2000);
  if (text) {
    for (const [re, category] of TEXT_RULES) {
      if (!re.test(text)) continue;
      // A delay saying "mailbox full" is still a full mailbox; a delay naming a policy is not a block yet.
      if (action === 'delayed' && category !== 'mailbox_full') break;
      return category;
    }
  }
  if (byStatus) return byStatus;
  if (action === 'delayed') return 'temporary';
  if (/^\s*(smtp;\s*)?4\d\d\b/i.test(text)) return 'temporary';
  return 'other';
}
