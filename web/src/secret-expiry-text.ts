import type { SecretExpiry } from './api.ts';

const days = (n: number) => `${n} day${n === 1 ? '' : 's'}`;

/** "Expires in 7 days", "Expires today", "Expired 3 days ago"; null when no expiry date is known. */
export function secretExpiryText(e: SecretExpiry | null | undefined): string | null {
  if (!e || e.state === 'unknown' || e.daysLeft === null) return null;
  if (e.state === 'expired') return `Expired ${days(Math.max(1, -e.daysLeft))} ago`;
  if (e.daysLeft <= 0) return 'Expires today';
  return `Expires in ${days(e.daysLeft)}`;
}

/** The client secret needs attention: expiring within 30 days, or expired. */
export function secretNeedsAttention(e: SecretExpiry | null | undefined): boolean {
  return e?.state === 'expiring' || e?.state === 'expired';
}
