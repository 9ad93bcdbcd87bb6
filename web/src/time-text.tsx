import { formatDateTime, formatDateTimeShort } from './format-date-time.ts';

/** "2026-11-28 04:18:05 UTC": the exact instant, for a tooltip beside a local time. */
export function exactUtc(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

const UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
  ['year', 365 * 24 * 3600],
  ['month', 30 * 24 * 3600],
  ['week', 7 * 24 * 3600],
  ['day', 24 * 3600],
  ['hour', 3600],
  ['minute', 60],
];

/** "in 5 minutes", "3 hours ago", "just now". */
export function relativeTime(iso: string, now = Date.now()): string {
  const d = new Date(iso).getTime();
  if (Number.isNaN(d)) return iso;
  const seconds = Math.round((d - now) / 1000);
  if (Math.abs(seconds) < 45) return 'just now';
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) return rtf.format(Math.round(seconds / size), unit);
  }
  return rtf.format(Math.round(seconds / 60), 'minute');
}

interface TimeTextProps {
  iso: string | null | undefined;
  /** short: "Nov 28, 9:00 AM" (tables); long: "28 Nov 2026, 09:00"; relative: "in 5 minutes". */
  format?: 'short' | 'long' | 'relative';
  /** Shown when there is no time. */
  empty?: string;
}

/**
 * A moment in the reader's local time; the tooltip carries the exact UTC instant (and the local time
 * itself when the text is relative). The raw ISO string is never shown beside it.
 */
export function TimeText({ iso, format = 'long', empty = '—' }: TimeTextProps) {
  if (!iso) return <span className="muted">{empty}</span>;
  const text = format === 'short' ? formatDateTimeShort(iso) : format === 'relative' ? relativeTime(iso) : formatDateTime(iso);
  const title = format === 'long' ? exactUtc(iso) : `${formatDateTime(iso)} (${exactUtc(iso)})`;
  return (
    <time dateTime={iso} title={title} className="time-text">
      {text}
    </time>
  );
}
