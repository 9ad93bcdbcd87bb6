import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOneOptions } from 'node:dns';
import { connect, isIP, isIPv4, type LookupFunction, type Socket } from 'node:net';

/**
 * Where Mailroom may connect out to (webhooks, SMTP and IMAP servers). Cloud metadata, link-local,
 * unspecified, multicast, broadcast and reserved addresses are always refused: a webhook or mail
 * host pointed there would hand the instance's cloud credentials or a message to whoever can edit
 * it. Loopback and private ranges are allowed unless `blockPrivate` (Mailroom often runs beside the
 * ERP on a private network). The check runs on every resolved address at connect time, so a name
 * that resolves to a public address when saved and to 169.254.169.254 later (DNS rebinding) is
 * still refused.
 */
export interface OutboundPolicy {
  /** OUTBOUND_BLOCK_PRIVATE: refuse loopback and private ranges too. */
  readonly blockPrivate: boolean;
  /** OUTBOUND_ALLOW: host names, addresses and CIDRs accepted whatever they are or resolve to. */
  readonly allow: readonly string[];
}

export const DEFAULT_OUTBOUND_POLICY: OutboundPolicy = Object.freeze({ blockPrivate: false, allow: Object.freeze([]) });

let current: OutboundPolicy = DEFAULT_OUTBOUND_POLICY;

/**
 * The process's policy, installed once at start from the configuration (like NODE_EXTRA_CA_CERTS,
 * it applies to every connection the process opens, including those of field checks at save time).
 */
export function setOutboundPolicy(policy: OutboundPolicy): void {
  current = policy;
}

export function outboundPolicy(): OutboundPolicy {
  return current;
}

export type AddressKind = 'public' | 'loopback' | 'private' | 'metadata' | 'link_local' | 'unspecified' | 'multicast' | 'broadcast' | 'reserved';

const ALWAYS_REFUSED = new Set<AddressKind>(['metadata', 'link_local', 'unspecified', 'multicast', 'broadcast', 'reserved']);

/**
 * Names the clouds serve their instance metadata at (GCP, AWS, Alibaba, Tencent, OpenStack's
 * `metadata`); they resolve to a link-local address inside the cloud, but are refused by name too,
 * so saving one fails at once.
 */
const METADATA_NAMES = new Set(['metadata.google.internal', 'metadata.goog', 'metadata', 'instance-data', 'instance-data.ec2.internal', 'metadata.tencentyun.com', 'metadata.azure.internal']);

/** Metadata services outside link-local: Alibaba (100.100.100.200), Azure WireServer (168.63.129.16), AWS IPv6 (fd00:ec2::254). */
const METADATA_V4 = new Set(['100.100.100.200', '168.63.129.16']);
const METADATA_V6 = 'fd00:ec2::254';

/**
 * An IPv4 address in any form inet_aton(3) accepts, which getaddrinfo (and so Node's dns.lookup)
 * also accepts: `2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`, `127.0.1`. Null when `s` is not
 * such a number (a host name).
 */
export function looseIpv4(s: string): string | null {
  const parts = s.split('.');
  if (parts.length < 1 || parts.length > 4) return null;
  const nums: number[] = [];
  for (const p of parts) {
    let n: number;
    if (/^0x[0-9a-f]*$/i.test(p)) n = p.length === 2 ? 0 : parseInt(p.slice(2), 16);
    else if (/^0[0-7]*$/.test(p)) n = p === '0' ? 0 : parseInt(p, 8);
    else if (/^[1-9]\d*$/.test(p)) n = Number(p);
    else return null;
    nums.push(n);
  }
  // The last part fills the bytes left: a.b.c.d, a.b.(16 bits), a.(24 bits), (32 bits).
  const last = nums.pop()!;
  if (nums.some((n) => n > 255) || last >= 2 ** (8 * (4 - nums.length))) return null;
  let value = last;
  nums.forEach((n, i) => (value += n * 2 ** (8 * (3 - i))));
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

/** The address a host names by itself (no DNS): an IPv4 in any numeric form, or an IPv6 (brackets allowed). */
export function literalAddress(host: string): string | null {
  const h = host.trim().replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (isIP(h)) return h;
  return looseIpv4(h);
}

function v6Bytes(ip: string): number[] {
  let s = ip.replace(/%.*$/, '');
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    s = `${s.slice(0, -v4[1]!.length)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => {
    const n = parseInt(g || '0', 16);
    return [n >> 8, n & 255];
  });
}

function v4Kind(ip: string): AddressKind {
  const [a, b, c, d] = ip.split('.').map(Number) as [number, number, number, number];
  if (METADATA_V4.has(ip)) return 'metadata';
  if (a === 169 && b === 254) return c === 169 && d === 254 ? 'metadata' : 'link_local';
  if (a === 0) return 'unspecified';
  if (a === 127) return 'loopback';
  if (a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127)) return 'private';
  if (a === 255 && b === 255 && c === 255 && d === 255) return 'broadcast';
  if (a >= 224 && a <= 239) return 'multicast';
  if (a >= 240) return 'reserved';
  return 'public';
}

/** What an address is. IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64) are that IPv4 address. */
export function addressKind(address: string): AddressKind {
  const ip = address.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (isIPv4(ip)) return v4Kind(ip);
  if (!isIP(ip)) throw new TypeError(`not an IP address: ${address}`);
  const b = v6Bytes(ip);
  const embedded = b.slice(12).join('.');
  const zero = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible, deprecated), 64:ff9b::a.b.c.d (NAT64, RFC 6052).
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return v4Kind(embedded);
  if (zero(0, 12) && !zero(12, 16) && !(zero(12, 15) && b[15] === 1)) return v4Kind(embedded);
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12)) return v4Kind(embedded);
  if (zero(0, 16)) return 'unspecified';
  if (zero(0, 15) && b[15] === 1) return 'loopback';
  if (v6Bytes(METADATA_V6).every((x, i) => x === b[i])) return 'metadata';
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return 'link_local';
  if (b[0] === 0xff) return 'multicast';
  if ((b[0]! & 0xfe) === 0xfc) return 'private';
  return 'public';
}

/** Why a target is refused, in words an admin reads next to the field. */
export interface OutboundRefusal {
  host: string;
  /** The address refused (absent for a metadata name refused by its name). */
  address?: string;
  kind: Exclude<AddressKind, 'public'> | 'metadata_name';
}

const KIND_WORDS: Record<OutboundRefusal['kind'], string> = {
  metadata: 'a cloud metadata service address',
  metadata_name: 'the name of a cloud metadata service',
  link_local: 'a link-local address (169.254.0.0/16 or fe80::/10, where clouds serve instance metadata)',
  unspecified: 'an unspecified address (0.0.0.0 or ::)',
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
  reserved: 'a reserved address (240.0.0.0/4)',
  loopback: 'a loopback address (this machine)',
  private: 'a private network address',
};

/** One sentence for the admin: what was refused and why (the fix is the catalogue's). */
export function refusalText(r: OutboundRefusal): string {
  const resolved = r.address && r.address !== r.host.replace(/^\[(.*)\]$/, '$1').toLowerCase() ? ` resolves to ${r.address}, which is` : ' is';
  const policy = r.kind === 'loopback' || r.kind === 'private' ? 'refused because OUTBOUND_BLOCK_PRIVATE=true' : 'refused by Mailroom\'s outbound policy';
  return `${r.host}${resolved} ${KIND_WORDS[r.kind]}: ${policy}`;
}

function ipInCidr(ip: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const a = base!.toLowerCase();
  if (!isIP(a)) return false;
  const v4 = (x: string) => isIPv4(x) ? [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...x.split('.').map(Number)] : v6Bytes(x);
  const x = v4(ip);
  const y = v4(a);
  const bits = bitsText === undefined ? 128 : Number(bitsText) + (isIPv4(a) ? 96 : 0);
  for (let i = 0; i < 16; i++) {
    const take = Math.max(0, Math.min(8, bits - i * 8));
    const mask = take === 0 ? 0 : (0xff << (8 - take)) & 0xff;
    if ((x[i]! & mask) !== (y[i]! & mask)) return false;
  }
  return true;
}

const normalName = (host: string) => host.trim().toLowerCase().replace(/\.$/, '');

function nameAllowed(host: string, policy: OutboundPolicy): boolean {
  const h = normalName(host);
  return policy.allow.some((entry) => !entry.includes('/') && !isIP(entry) && normalName(entry) === h);
}

/**
 * Whether the policy refuses this address reached through `host`. A name in OUTBOUND_ALLOW lifts
 * only OUTBOUND_BLOCK_PRIVATE: a metadata or link-local address is reached only when that address
 * or its CIDR is listed itself, so an allowed name that is later pointed there is still refused.
 */
export function addressRefusal(host: string, address: string, policy: OutboundPolicy): OutboundRefusal | null {
  const kind = addressKind(address);
  if (kind === 'public') return null;
  const always = ALWAYS_REFUSED.has(kind);
  if (!always && !policy.blockPrivate) return null;
  if (policy.allow.some((entry) => (entry.includes('/') || isIP(entry)) && ipInCidr(unmapped(address), entry))) return null;
  if (!always && nameAllowed(host, policy)) return null;
  return { host, address, kind };
}

/** IPv4-mapped forms compare as their IPv4 address against an allow-list entry. */
function unmapped(address: string): string {
  const ip = address.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  return m ? m[1]! : ip;
}

/**
 * What can be refused without DNS: an address written in the host (any numeric form), a metadata
 * service's name, and with OUTBOUND_BLOCK_PRIVATE `localhost`. Used when a host is saved and before
 * any connection; names are checked again on what they resolve to when connecting.
 */
export function hostRefusal(host: string, policy: OutboundPolicy = current): OutboundRefusal | null {
  const literal = literalAddress(host);
  if (literal) return addressRefusal(host, literal, policy);
  const name = normalName(host);
  if (nameAllowed(name, policy)) return null;
  if (METADATA_NAMES.has(name)) return { host, kind: 'metadata_name' };
  // RFC 6761 §6.3: localhost and every name under it are this machine.
  if (policy.blockPrivate && (name === 'localhost' || name.endsWith('.localhost'))) return { host, address: '127.0.0.1', kind: 'loopback' };
  return null;
}

/** A connection the outbound policy refused; nothing was sent and no socket was opened. */
export class OutboundRefusedError extends Error {
  /** Node-style, so it travels as network evidence (NET_OUTBOUND_REFUSED in the catalogue). */
  readonly code = 'EOUTBOUND_REFUSED';

  constructor(readonly refusal: OutboundRefusal) {
    super(refusalText(refusal));
    this.name = 'OutboundRefusedError';
  }
}

/** Throws OutboundRefusedError when the host is refused by itself (see hostRefusal). */
export function assertHostAllowed(host: string, policy: OutboundPolicy = current): void {
  const r = hostRefusal(host, policy);
  if (r) throw new OutboundRefusedError(r);
}

type LookupAll = (hostname: string, options: LookupAllOptions, callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void;

/**
 * A `lookup` for net.connect, tls.connect and http.request: resolves the name, and refuses the
 * connection unless every address it resolved to is allowed (one refused address refuses the name:
 * a round-robin answer must not send some connections to the metadata service). The socket then
 * connects only to the addresses checked here, so nothing resolved later can slip in.
 */
export function guardedLookup(policy: OutboundPolicy = current, resolve: LookupAll = dnsLookup as unknown as LookupAll): LookupFunction {
  return ((hostname: string, options: LookupOneOptions | LookupAllOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => {
    const named = hostRefusal(hostname, policy);
    if (named) return process.nextTick(() => callback(new OutboundRefusedError(named) as unknown as NodeJS.ErrnoException, ''));
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '');
      for (const a of addresses) {
        const r = addressRefusal(hostname, a.address, policy);
        if (r) return callback(new OutboundRefusedError(r) as unknown as NodeJS.ErrnoException, '');
      }
      if ((options as LookupAllOptions).all) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '');
      callback(null, first.address, first.family);
    });
  }) as LookupFunction;
}

/**
 * A plain TCP connection to `host:port` under the policy, for clients that take a ready socket
 * (nodemailer's getSocket): a refused host fails before any socket exists.
 */
export function connectGuarded(host: string, port: number, timeoutMs: number, policy: OutboundPolicy = current): Promise<Socket> {
  return new Promise((resolve, reject) => {
    try {
      assertHostAllowed(host, policy);
    } catch (e) {
      reject(e);
      return;
    }
    const literal = literalAddress(host);
    // A numeric form other than the dotted quad is given to connect as the address it means.
    const socket = connect({ host: literal ?? host, port, lookup: guardedLookup(policy), autoSelectFamily: true });
    const timer = setTimeout(() => socket.destroy(Object.assign(new Error(`connection to ${host}:${port} timed out`), { code: 'ETIMEDOUT' })), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      resolve(socket);
    });
    const onError = (e: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    };
    socket.once('error', onError);
  });
}

/** OUTBOUND_ALLOW entry: a host name, an IP address or a CIDR. */
export function isOutboundAllowEntry(entry: string): boolean {
  if (entry.includes('/')) {
    const [base, bits] = entry.split('/');
    const ip = base && isIP(base);
    return !!ip && /^\d{1,3}$/.test(bits ?? '') && Number(bits) <= (ip === 4 ? 32 : 128);
  }
  if (isIP(entry)) return true;
  // 2130706433 or 127.1 would read as a name here, never matching: write addresses in dotted form.
  if (looseIpv4(entry)) return false;
  return /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i.test(entry);
}

/** A URL as it may be shown or logged: a user name and password in it (webhooks saved before they were refused) replaced by `***`. */
export function redactUrlCredentials(v: string): string {
  try {
    const u = new URL(v);
    if (!u.username && !u.password) return v;
    u.username = '';
    u.password = '';
    return u.href.replace('://', '://***@');
  } catch {
    return v;
  }
}
