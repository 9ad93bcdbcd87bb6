import { BlockList, isIP, type Socket } from 'node:net';
import type { Server } from 'node:http';
import type { HttpConfig } from '../config/config.ts';

/**
 * Caps the connections one client address may hold open, so a single client (or a slow-header
 * attacker) cannot take every socket the process can serve. Trusted proxies are not capped: every
 * client behind them shares their address.
 */
export function limitConnectionsPerAddress(server: Server, http: HttpConfig): void {
  // With a hop count the proxies' addresses are not known: every client would share the address of
  // the proxy in front, so the cap would refuse them all together. Only an address list exempts.
  if (typeof http.trustProxy === 'number' && http.trustProxy > 0) return;
  const trusted = new BlockList();
  if (Array.isArray(http.trustProxy)) {
    for (const entry of http.trustProxy as string[]) {
      const [addr, bits] = entry.split('/') as [string, string | undefined];
      const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) trusted.addAddress(addr, type);
      else trusted.addSubnet(addr, Number(bits), type);
    }
  }
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const addr = socket.remoteAddress;
    if (!addr) return;
    const plain = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
    if (trusted.check(plain, isIP(plain) === 6 ? 'ipv6' : 'ipv4')) return;
    const n = (open.get(plain) ?? 0) + 1;
    if (n > http.maxConnectionsPerAddress) {
      socket.destroy();
      return;
    }
    open.set(plain, n);
    socket.once('close', () => {
      const left = (open.get(plain) ?? 1) - 1;
      if (left > 0) open.set(plain, left);
      else open.delete(plain);
    });
  });
}
