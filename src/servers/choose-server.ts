export interface Candidate {
  id: string;
  name: string;
  active: boolean;
  priority: number;
  fromFilter: string | null;
  /** The mailbox it signs in as (OAuth) or the relay account. */
  username: string;
  authType: string;
  /** The ERP user whose personal mailbox it is; null or absent: shared. */
  owner?: string | null;
}

export type Choice<T extends Candidate> =
  | { ok: true; server: T; reason: string }
  /** `field`: what the caller should change, the sender or the server it named. */
  | { ok: false; reason: string; field: 'from' | 'mailServerId' | 'owner' };

/** Whether a server's FROM Filtering lets it send as `address`: the exact address, its domain, or no filter. */
export function filterAccepts(fromFilter: string | null, address: string): boolean {
  if (fromFilter === null) return true;
  const a = address.toLowerCase();
  return fromFilter === a || fromFilter === a.slice(a.lastIndexOf('@') + 1);
}

/**
 * What the choice derives from a server list, kept per list: the sender's outbox reuses one list for
 * every message until a server changes, so a thousand mailboxes are sorted and grouped by owner once,
 * not on every message. The lists are never changed in place.
 */
const derived = new WeakMap<readonly Candidate[], { active?: Candidate[]; shared?: Candidate[]; byOwner?: Map<string, Candidate[]> }>();
const derive = <T extends Candidate>(servers: readonly T[]) => {
  let d = derived.get(servers);
  if (!d) derived.set(servers, (d = {}));
  return d as { active?: T[]; shared?: T[]; byOwner?: Map<string, T[]> };
};

/** The active servers in Priority order (lower first), then by name. */
function activeInOrder<T extends Candidate>(servers: readonly T[]): T[] {
  const d = derive(servers);
  return (d.active ??= servers.filter((s) => s.active).sort((a, b) => a.priority - b.priority || a.name.localeCompare(b.name)));
}

/** Password and None servers are relays: they send as whoever the ERP names, as in Odoo. */
const RELAY_AUTH = ['password', 'none'];

/**
 * Whether a server may send as `address`: its FROM Filtering (the exact address or its domain) when it
 * has one; without one, a relay sends as anyone but a mailbox (Microsoft 365, Gmail) only as its own
 * Username, since Exchange refuses any other From with 5.7.60 SendAsDenied after the message was accepted.
 */
export function maySendAs(s: Pick<Candidate, 'fromFilter' | 'username' | 'authType'>, address: string): boolean {
  if (s.fromFilter !== null) return filterAccepts(s.fromFilter, address);
  return RELAY_AUTH.includes(s.authType) || s.username.toLowerCase() === address.toLowerCase();
}

function refusal(s: Candidate, from: string): string {
  const a = from.toLowerCase();
  if (s.fromFilter !== null) {
    return `The mail server "${s.name}" has FROM Filtering ${s.fromFilter}: it sends only as ${s.fromFilter.includes('@') ? s.fromFilter : `addresses at ${s.fromFilter}`}, not as ${a}.`;
  }
  return `The mail server "${s.name}" signs in as the mailbox ${s.username} and has no FROM Filtering: it sends only as ${s.username}, not as ${a}.`;
}

/**
 * Odoo's outgoing-server rule: an explicit server is used if its FROM Filtering accepts the sender
 * exactly as the automatic choice would (otherwise naming a relay would be a way around its filter);
 * otherwise, among active servers in Priority order (lower first), the first whose FROM Filtering is
 * exactly the sender address, else the first whose filter is the sender's domain, else the first
 * without a filter that may send as the sender (a relay, or a mailbox whose Username it is). Without a sender the message goes out as the chosen server's own mailbox.
 */
export function chooseServer<T extends Candidate>(servers: T[], from: string | null, explicitId: string | null): Choice<T> {
  if (explicitId) {
    const s = servers.find((x) => x.id === explicitId);
    if (!s) return { ok: false, reason: `No mail server with id ${explicitId}.`, field: 'mailServerId' };
    if (!s.active) return { ok: false, reason: `The mail server "${s.name}" is archived (inactive).`, field: 'mailServerId' };
    if (from !== null && !maySendAs(s, from)) return { ok: false, reason: refusal(s, from), field: 'from' };
    return { ok: true, server: s, reason: 'requested explicitly' };
  }
  const active = activeInOrder(servers);
  if (!active.length) return { ok: false, reason: 'No active outgoing mail server exists.', field: 'from' };
  const address = from?.toLowerCase() ?? '';
  const domain = address.slice(address.lastIndexOf('@') + 1);
  const exact = active.find((s) => s.fromFilter !== null && s.fromFilter === address);
  if (exact) return { ok: true, server: exact, reason: `FROM Filtering matches ${address}` };
  const byDomain = active.find((s) => s.fromFilter !== null && s.fromFilter === domain);
  if (byDomain) return { ok: true, server: byDomain, reason: `FROM Filtering matches the domain ${domain}` };
  const unfiltered = active.filter((s) => s.fromFilter === null);
  const open = from === null ? unfiltered[0] : unfiltered.find((s) => maySendAs(s, address));
  if (open) return { ok: true, server: open, reason: 'the first server without FROM Filtering' };
  if (unfiltered.length) return { ok: false, reason: refusal(unfiltered[0]!, address), field: 'from' };
  return {
    ok: false,
    reason: `No mail server may send as ${address || 'this sender'}: every active server has a FROM Filtering for another address or domain (${active.map((s) => s.fromFilter).join(', ')}).`,
    field: 'from',
  };
}

/** Whose mailboxes a message may use. */
export interface Ownership {
  /** A text: that owner's mailboxes; null: shared ones only; undefined: any (a check before the owner is known). */
  owner: string | null | undefined;
  /** For an owner: a shared mailbox may send when none of the owner's may. */
  allowSharedFallback?: boolean;
}

const isShared = (s: Candidate) => (s.owner ?? null) === null;

const sharedOf = <T extends Candidate>(servers: readonly T[]): T[] => (derive(servers).shared ??= servers.filter(isShared));

function ownedBy<T extends Candidate>(servers: readonly T[], owner: string): T[] {
  const d = derive(servers);
  if (!d.byOwner) {
    d.byOwner = new Map();
    for (const s of servers) {
      if (isShared(s)) continue;
      const list = d.byOwner.get(s.owner!);
      if (list) list.push(s);
      else d.byOwner.set(s.owner!, [s]);
    }
  }
  return d.byOwner.get(owner) ?? [];
}

/**
 * chooseServer among the servers a message may use: an owner's message goes only through the owner's
 * own mailboxes (never another owner's), and through a shared one only when the request allows the
 * fallback; a message without an owner never through a personal mailbox. Since a personal mailbox has
 * no FROM Filtering, the owner's From can only be one of their own addresses.
 */
export function chooseOwnedServer<T extends Candidate>(servers: T[], from: string | null, explicitId: string | null, o: Ownership): Choice<T> {
  if (o.owner === undefined) return chooseServer(servers, from, explicitId);
  const named = explicitId ? servers.find((x) => x.id === explicitId) : undefined;
  const shared = sharedOf(servers);
  if (o.owner === null) {
    if (named && !isShared(named)) return { ok: false, reason: `The mail server "${named.name}" is the personal mailbox of one user; a message without that owner never uses it.`, field: 'mailServerId' };
    return chooseServer(shared, from, explicitId);
  }
  const own = ownedBy(servers, o.owner);
  if (named) {
    if (named.owner === o.owner) return chooseServer(own, from, explicitId);
    if (isShared(named) && o.allowSharedFallback) return chooseServer(shared, from, explicitId);
    return {
      ok: false,
      reason: isShared(named)
        ? `The mail server "${named.name}" is shared, and this message for ${o.owner} does not allow a shared fallback.`
        : `The mail server "${named.name}" is another user's personal mailbox.`,
      field: 'mailServerId',
    };
  }
  const mine = chooseServer(own, from, null);
  if (mine.ok) return mine;
  if (o.allowSharedFallback) {
    const fallback = chooseServer(shared, from, null);
    return fallback.ok ? { ...fallback, reason: `${fallback.reason}, shared (${o.owner} has no mailbox that may send as this sender)` } : fallback;
  }
  const active = own.filter((s) => s.active);
  if (!active.length) return { ok: false, reason: `${o.owner} has no active mailbox of their own, and this message does not allow a shared fallback.`, field: 'owner' };
  return {
    ok: false,
    reason: `A message for ${o.owner} is sent only from their own mailbox (${active.map((s) => s.username).join(', ')}), not as ${from ?? 'this sender'}.`,
    field: 'from',
  };
}
