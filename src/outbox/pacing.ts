import type { SendLimits } from '../servers/send-limits.ts';

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 3600_000;

export interface Pace {
  /** How many of the due messages (a prefix, in claim order) may go now. */
  take: number;
  /** The messages-per-minute limit stopped the claim: the next message may go at this time. */
  nextAt: Date | null;
  /** The daily recipient limit stopped the claim: the server's mail is held until this time. */
  quotaUntil: Date | null;
}

/**
 * Pure: which due messages of a server may go now under its limits, and if not all, when the next one
 * may. `lastMinute` are the times of the server's sends in the last 60 s (oldest first), `recipientsLastDay`
 * the recipients of the last 24 h, `due` the recipient counts of the due messages in claim order, and
 * `dayWindow` the sends of the last 24 h oldest first (only read when the daily limit is reached).
 */
export function pace(
  limits: Pick<SendLimits, 'messagesPerMinute' | 'recipientsPerDay'>,
  usage: { lastMinute: string[]; recipientsLastDay: number },
  due: number[],
  now: Date,
  dayWindow: () => Array<{ at: string; recipients: number }> = () => [],
): Pace {
  const perMinute = limits.messagesPerMinute ?? Infinity;
  const perDay = limits.recipientsPerDay ?? Infinity;
  const recent = usage.lastMinute.filter((t) => Date.parse(t) > now.getTime() - MINUTE_MS);
  const byRate = Math.max(0, perMinute - recent.length);
  let take = 0;
  let used = usage.recipientsLastDay;
  for (const n of due) {
    if (take >= byRate) break;
    // A message with more recipients than a whole day allows goes out when the window is empty: the
    // API refuses those for new messages; this is one queued before the limit was lowered.
    if (used + n > perDay && used > 0) {
      // The messages taken in this very claim leave the window a day from now.
      const window = [...dayWindow(), ...due.slice(0, take).map((recipients) => ({ at: now.toISOString(), recipients }))];
      return { take, nextAt: null, quotaUntil: quotaResume(used, n, perDay, window, now) };
    }
    used += n;
    take++;
  }
  if (take === due.length) return { take, nextAt: null, quotaUntil: null };
  // Stopped by the rate: one more may go when the oldest send that keeps the count at the limit turns a minute old.
  const oldest = recent[recent.length - perMinute + take];
  return { take, nextAt: new Date((oldest ? Date.parse(oldest) : now.getTime()) + MINUTE_MS), quotaUntil: null };
}

/** When enough of the last 24 h's recipients have left the window for a message of `n` recipients. */
export function quotaResume(used: number, n: number, perDay: number, window: Array<{ at: string; recipients: number }>, now: Date): Date {
  let left = used;
  for (const s of window) {
    left -= s.recipients;
    if (left + n <= perDay || left <= 0) return new Date(Math.max(now.getTime(), Date.parse(s.at) + DAY_MS));
  }
  // Usage this instance cannot see in its rows (the server said the quota is used up, or messages are
  // still being sent): look again in an hour.
  return new Date(now.getTime() + 3600_000);
}
