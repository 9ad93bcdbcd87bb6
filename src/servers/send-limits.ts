/**
 * A mailbox's sending limits, as the mail server enforces them. Exchange Online documents them per
 * mailbox (learn.microsoft.com › Exchange Online limits › Sending limits): 3 connections submitting at
 * once (more: 432 4.3.2 sender thread limit exceeded), 30 messages a minute (more are delayed), 10,000
 * recipients in any 24 hours (then 554 5.2.0 SubmissionQuotaExceededException), 500 recipients per
 * message. null: no limit known, nothing to pace.
 */
export interface SendLimits {
  maxConnections: number | null;
  messagesPerMinute: number | null;
  recipientsPerDay: number | null;
  recipientsPerMessage: number | null;
}

export const NO_LIMITS: SendLimits = Object.freeze({ maxConnections: null, messagesPerMinute: null, recipientsPerDay: null, recipientsPerMessage: null });

export const MICROSOFT_LIMITS: SendLimits = Object.freeze({ maxConnections: 3, messagesPerMinute: 30, recipientsPerDay: 10_000, recipientsPerMessage: 500 });

/** Exchange Online's SMTP submission hosts: worldwide, personal accounts, GCC High/DoD, 21Vianet. */
const MICROSOFT_HOSTS = /(^|\.)(office365\.com|outlook\.com|office365\.us|partner\.outlook\.cn)$/i;

export function isMicrosoftHost(host: string): boolean {
  return MICROSOFT_HOSTS.test(host.trim().replace(/\.$/, ''));
}

/** What a new server starts with: Microsoft's limits for Microsoft's hosts, none for the rest. */
export function defaultLimits(smtpHost: string): SendLimits {
  return isMicrosoftHost(smtpHost) ? MICROSOFT_LIMITS : NO_LIMITS;
}

/** Labels as the server form shows them: error messages name the limit the admin can change. */
export const LIMIT_LABELS: Record<keyof SendLimits, string> = {
  maxConnections: 'Connections per mailbox',
  messagesPerMinute: 'Messages per minute',
  recipientsPerDay: 'Recipients per day',
  recipientsPerMessage: 'Recipients per message',
};
