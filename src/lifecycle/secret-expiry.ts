/** Warning thresholds in days before a client secret expires; 0 = expired. */
export const SECRET_THRESHOLDS = [30, 7, 1, 0] as const;

export interface SecretExpiry {
  state: 'unknown' | 'ok' | 'expiring' | 'expired';
  /** Whole days left (negative once expired), null without a date. */
  daysLeft: number | null;
  /** The tightest threshold reached (30, 7, 1, or 0 when expired), null before the first. */
  threshold: number | null;
}

const DAY = 86_400_000;

/** Pure: where a secret stands against the warning thresholds. The date is the last valid day (UTC). */
export function secretExpiry(expiresOn: string | null, now: Date): SecretExpiry {
  if (!expiresOn) return { state: 'unknown', daysLeft: null, threshold: null };
  const end = Date.parse(`${expiresOn}T23:59:59.999Z`);
  if (Number.isNaN(end)) return { state: 'unknown', daysLeft: null, threshold: null };
  if (now.getTime() > end) return { state: 'expired', daysLeft: -Math.ceil((now.getTime() - end) / DAY), threshold: 0 };
  const daysLeft = Math.floor((end - now.getTime()) / DAY);
  const threshold = [...SECRET_THRESHOLDS].reverse().find((t) => t > 0 && daysLeft <= t) ?? null;
  return { state: threshold === null ? 'ok' : 'expiring', daysLeft, threshold };
}

/** Whether a warning is due: a tighter threshold than the last one sent was reached. */
export function alertDue(expiry: SecretExpiry, lastSent: number | null): boolean {
  return expiry.threshold !== null && (lastSent === null || expiry.threshold < lastSent);
}

/**
 * Where the certificate a server signs with stands against the same thresholds, by its notAfter
 * (the last valid day, UTC); null when the server does not authenticate with a certificate.
 */
export function certificateExpiry(s: { clientCredential: string; certificate: { notAfter: string } | null }, now: Date): SecretExpiry | null {
  if (s.clientCredential !== 'certificate' || !s.certificate) return null;
  // A certificate is valid to its notAfter instant, not to the end of a day.
  const end = Date.parse(s.certificate.notAfter);
  if (Number.isNaN(end)) return { state: 'unknown', daysLeft: null, threshold: null };
  if (now.getTime() >= end) return { state: 'expired', daysLeft: -Math.ceil((now.getTime() - end) / DAY), threshold: 0 };
  const daysLeft = Math.floor((end - now.getTime()) / DAY);
  const threshold = [...SECRET_THRESHOLDS].reverse().find((t) => t > 0 && daysLeft <= t) ?? null;
  return { state: threshold === null ? 'ok' : 'expiring', daysLeft, threshold };
}
