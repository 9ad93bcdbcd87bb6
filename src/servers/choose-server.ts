export interface Candidate {
  id: string;
  name: string;
  active: boolean;
  priority: number;
  fromFilter: string | null;
}

export type Choice<T extends Candidate> =
  | { ok: true; server: T; reason: string }
  /** `field`: what the caller should change, the sender or the server it named. */
  | { ok: false; reason: string; field: 'from' | 'mailServerId' };

/** Whether a server's FROM Filtering lets it send as `address`: the exact address, its domain, or no filter. */
export function filterAccepts(fromFilter: string | null, address: string): boolean {
  if (fromFilter === null) return true;
  const a = address.toLowerCase();
  return fromFilter === a || fromFilter === a.slice(a.lastIndexOf('@') + 1);
}

/**
 * Odoo's outgoing-server rule: an explicit server is used if its FROM Filtering accepts the sender
 * exactly as the automatic choice would (otherwise naming a relay would be a way around its filter);
 * otherwise, among active servers in Priority order (lower first), the first whose FROM Filtering is
 * exactly the sender address, else the first whose filter is the sender's domain, else the first
 * without a filter. Without a sender the message goes out as the chosen server's own mailbox.
 */
export function chooseServer<T extends Candidate>(servers: T[], from: string | null, explicitId: string | null): Choice<T> {
  if (explicitId) {
    const s = servers.find((x) => x.id === explicitId);
    if (!s) return { ok: false, reason: `No mail server with id ${explicitId}.`, field: 'mailServerId' };
    if (!s.active) return { ok: false, reason: `The mail server "${s.name}" is archived (inactive).`, field: 'mailServerId' };
    if (from !== null && !filterAccepts(s.fromFilter, from)) {
      return {
        ok: false,
        reason: `The mail server "${s.name}" has FROM Filtering ${s.fromFilter}: it sends only as ${s.fromFilter!.includes('@') ? s.fromFilter : `addresses at ${s.fromFilter}`}, not as ${from.toLowerCase()}.`,
        field: 'from',
      };
    }
    return { ok: true, server: s, reason: 'requested explicitly' };
  }
  const active = servers.filter((s) => s.active).sort((a, b) => a.priority - b.priority || a.name.localeCompare(b.name));
  if (!active.length) return { ok: false, reason: 'No active outgoing mail server exists.', field: 'from' };
  const address = from?.toLowerCase() ?? '';
  const domain = address.slice(address.lastIndexOf('@') + 1);
  const exact = active.find((s) => s.fromFilter !== null && s.fromFilter === address);
  if (exact) return { ok: true, server: exact, reason: `FROM Filtering matches ${address}` };
  const byDomain = active.find((s) => s.fromFilter !== null && s.fromFilter === domain);
  if (byDomain) return { ok: true, server: byDomain, reason: `FROM Filtering matches the domain ${domain}` };
  const open = active.find((s) => s.fromFilter === null);
  if (open) return { ok: true, server: open, reason: 'the first server without FROM Filtering' };
  return {
    ok: false,
    reason: `No mail server may send as ${address || 'this sender'}: every active server has a FROM Filtering for another address or domain (${active.map((s) => s.fromFilter).join(', ')}).`,
    field: 'from',
  };
}
