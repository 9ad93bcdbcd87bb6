/**
 * What a report about an already-accepted message says: a delivery status notification (RFC 3464
 * or a provider's own text), an automatic reply (RFC 3834) or a read receipt (RFC 8098).
 */
export type ReportKind = 'delivery_status' | 'auto_reply' | 'read_receipt';

/** RFC 3464 §2.3.3 Action values. */
export type RecipientAction = 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';

export type BounceCategory =
  | 'unknown_user'
  | 'unknown_domain'
  | 'mailbox_full'
  | 'message_too_large'
  | 'blocked'
  | 'temporary'
  | 'other';

export interface ReportRecipient {
  /** Lower-cased final (or original) recipient. */
  address: string;
  action: RecipientAction;
  /** Enhanced status (RFC 3463), e.g. "5.1.1". */
  status: string | null;
  /** Remote diagnostic, e.g. "smtp; 550 5.1.1 <x@y>: Recipient address rejected". */
  diagnostic: string | null;
  /** 'other' when nothing better is known. */
  category: BounceCategory;
  /** Original-Recipient (RFC 3464 §2.3.1), lower-cased, when the report gives it: the address as sent, before aliases. */
  originalRecipient?: string | null;
  /** Remote-MTA of RFC 3464 §2.3.5 when given, e.g. "dns; mx.example.com". */
  remoteMta?: string | null;
}

export interface DeliveryReport {
  kind: ReportKind;
  /**
   * Which recogniser matched: 'rfc3464', 'exchange', 'gmail', 'postfix', 'exim', 'sendmail', 'qmail',
   * 'text', 'rfc3834', 'exchange-oof', 'gmail-vacation', 'rfc8098' …
   */
  format: string;
  reportingMta: string | null;
  /** Candidates to match the original outgoing message, best first: Message-IDs in angle brackets. */
  originalMessageIds: string[];
  /** The original's headers when the report carries them (message/rfc822 or text/rfc822-headers), else null. */
  originalHeaders: Record<string, string> | null;
  /** Empty for auto-replies and read receipts unless known. */
  recipients: ReportRecipient[];
  /** For auto-replies and read receipts: who answered. */
  from: string | null;
  /** The report's own Message-ID when it has one, to recognise the same report twice. */
  messageId?: string | null;
  /** Subject of the report as received. */
  subject?: string | null;
  /** RFC 8098 Disposition of a read receipt, e.g. "manual-action/MDN-sent-manually; displayed". */
  disposition?: string | null;
}
