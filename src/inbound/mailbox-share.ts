/**
 * How the mailboxes are shared out among the instances fetching mail: each fetches at most
 * ceil(N / instances) and, while another has fewer than floor(N / instances), at most the floor, so
 * 10 mailboxes over 3 instances settle as 4 / 3 / 3, never 4 / 4 / 2. Every instance works this out
 * from the same lease rows at its own tick; the decisions agree without a coordinator.
 */
export interface MailboxShare {
  /** Mailboxes this instance should hand over now: a new instance came, or another is short and none is free. */
  surplus: number;
  /** Whether this instance, holding `mine`, may take a free mailbox. */
  mayTake(mine: number): boolean;
}

/**
 * `held`: mailboxes held per instance (leases not expired); `live`: the instances fetching mail
 * (their fetcher leases), `me` among them; `free`: fetchable mailboxes nobody holds.
 */
export function mailboxShare(count: number, me: string, live: readonly string[], held: ReadonlyMap<string, number>, free: number): MailboxShare {
  const n = Math.max(1, new Set([...live, me]).size);
  const floor = Math.floor(count / n);
  const ceil = Math.ceil(count / n);
  const mine = held.get(me) ?? 0;
  const short = live.some((i) => i !== me && (held.get(i) ?? 0) < floor);
  return {
    // One at a time when only evening out: the short instance takes it at its next tick.
    surplus: Math.max(mine - ceil, short && free === 0 && mine > floor ? 1 : 0),
    mayTake: (m) => m < ceil && (m < floor || !short),
  };
}
