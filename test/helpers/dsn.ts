/**
 * An RFC 3464 delivery status notification as a remote MTA mails it back: multipart/report with a
 * human part, message/delivery-status (per-message and per-recipient fields) and the original's
 * headers (text/rfc822-headers, §2 of RFC 6522) — or nothing of the original at all.
 */
export function dsn(o: {
  to: string;
  recipient: string;
  reportingMta?: string;
  action?: 'failed' | 'delayed' | 'delivered';
  status?: string;
  diagnostic?: string;
  /** The original message's headers, quoted; omit for a report that lost them. */
  original?: { messageId?: string; from: string; subject: string; extra?: string[] } | { headerBlock: string } | null;
  /** The report's own header lines (In-Reply-To, X-Microsoft-Original-Message-ID …). */
  headers?: string[];
  messageId?: string;
}): string {
  const action = o.action ?? 'failed';
  const status = o.status ?? '5.1.1';
  const mta = o.reportingMta ?? 'mx.remote.example';
  const b = `dsn-${Math.random().toString(36).slice(2)}`;
  const original = o.original && 'headerBlock' in o.original
    ? [`--${b}`, 'Content-Type: text/rfc822-headers', '', o.original.headerBlock, '']
    : o.original
    ? [
        `--${b}`,
        'Content-Type: text/rfc822-headers',
        '',
        `From: ${o.original.from}`,
        `To: ${o.recipient}`,
        `Subject: ${o.original.subject}`,
        ...(o.original.messageId ? [`Message-ID: ${o.original.messageId}`] : []),
        ...(o.original.extra ?? []),
        '',
      ]
    : [];
  return [
    `From: Mail Delivery System <MAILER-DAEMON@${mta}>`,
    `To: ${o.to}`,
    `Subject: ${action === 'delayed' ? 'Delayed Mail (still being retried)' : 'Undelivered Mail Returned to Sender'}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: ${o.messageId ?? `<${b}@${mta}>`}`,
    'Auto-Submitted: auto-replied',
    ...(o.headers ?? []),
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${b}"`,
    '',
    `--${b}`,
    'Content-Type: text/plain; charset=us-ascii',
    '',
    `This is the mail system at host ${mta}.`,
    '',
    `<${o.recipient}>: host ${mta} said: ${o.diagnostic ?? `550 ${status} User unknown`}`,
    '',
    `--${b}`,
    'Content-Type: message/delivery-status',
    '',
    `Reporting-MTA: dns; ${mta}`,
    '',
    `Final-Recipient: rfc822; ${o.recipient}`,
    `Original-Recipient: rfc822; ${o.recipient}`,
    `Action: ${action}`,
    `Status: ${status}`,
    `Remote-MTA: dns; ${mta}`,
    `Diagnostic-Code: smtp; ${o.diagnostic ?? `550 ${status} <${o.recipient}>: Recipient address rejected: User unknown`}`,
    '',
    ...original,
    `--${b}--`,
    '',
  ].join('\r\n');
}
