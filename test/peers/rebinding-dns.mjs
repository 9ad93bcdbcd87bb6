// Preloaded into a Mailroom process (NODE_OPTIONS=--import) to play a rebinding attacker's name
// server: the names in REBIND_HOSTS ("name=address,…") resolve, through Node's own dns.lookup (what
// net.connect and getaddrinfo-based clients use), to the address given. Every other name resolves
// as usual. dns.lookup reads the system resolver, which a test cannot point elsewhere without
// editing system files, hence the stand-in at the same seam.
import dns from 'node:dns';
import { syncBuiltinESMExports } from 'node:module';

const answers = new Map(
  (process.env.REBIND_HOSTS ?? '')
    .split(',')
    .filter(Boolean)
    .map((pair) => pair.split('=').map((s) => s.trim().toLowerCase())),
);
const real = dns.lookup;
dns.lookup = function lookup(host, ...rest) {
  const address = answers.get(String(host).toLowerCase());
  if (!address) return real.call(dns, host, ...rest);
  const callback = rest[rest.length - 1];
  const options = typeof rest[0] === 'object' && rest[0] !== null ? rest[0] : {};
  const family = address.includes(':') ? 6 : 4;
  process.nextTick(() => (options.all ? callback(null, [{ address, family }]) : callback(null, address, family)));
};
syncBuiltinESMExports();
