import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import { createServer, type Server } from 'node:net';
import { after, before, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/config.ts';
import {
  addressKind,
  addressRefusal,
  connectGuarded,
  DEFAULT_OUTBOUND_POLICY,
  guardedLookup,
  hostRefusal,
  literalAddress,
  looseIpv4,
  OutboundRefusedError,
  type OutboundPolicy,
} from '../../src/net/outbound-policy.ts';

const BLOCK: OutboundPolicy = { blockPrivate: true, allow: [] };

test('every numeric form getaddrinfo accepts is read as the address it means', () => {
  for (const [form, ip] of [
    ['2130706433', '127.0.0.1'],
    ['0x7f000001', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['127.1', '127.0.0.1'],
    ['127.0.1', '127.0.0.1'],
    ['0x7f.1', '127.0.0.1'],
    ['2852039166', '169.254.169.254'],
    ['0xa9fea9fe', '169.254.169.254'],
    ['0251.0376.0251.0376', '169.254.169.254'],
    ['169.254.43518', '169.254.169.254'],
    ['0', '0.0.0.0'],
  ] as const) {
    assert.equal(looseIpv4(form), ip, form);
    assert.equal(literalAddress(form), ip, form);
  }
  for (const name of ['smtp.office365.com', '256.1.1.1', '1.2.3.4.5', '0x1g', '08.1.1.1', '4294967296', '1.16777216', 'a1']) assert.equal(looseIpv4(name), null, name);
  assert.equal(literalAddress('[::1]'), '::1');
  assert.equal(literalAddress('mail.example.com'), null);
});

test('addresses are classified, IPv4 inside IPv6 (mapped, compatible, NAT64) as the IPv4 address', () => {
  const cases: Array<[string, ReturnType<typeof addressKind>]> = [
    ['169.254.169.254', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['168.63.129.16', 'metadata'],
    ['fd00:ec2::254', 'metadata'],
    ['FD00:EC2:0:0:0:0:0:254', 'metadata'],
    ['169.254.1.1', 'link_local'],
    ['fe80::1', 'link_local'],
    ['febf::1', 'link_local'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['::1', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'private'],
    ['fd12:3456::1', 'private'],
    ['fc00::1', 'private'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:a9fe:a9fe', 'metadata'],
    ['0:0:0:0:0:ffff:7f00:1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:10.0.0.1', 'private'],
    ['::169.254.169.254', 'metadata'],
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['64:ff9b::8.8.8.8', 'public'],
    ['[::ffff:169.254.169.254]', 'metadata'],
    ['172.32.0.1', 'public'],
    ['100.128.0.1', 'public'],
    ['52.97.146.2', 'public'],
    ['2603:1036::1', 'public'],
    ['fec0::1', 'public'],
  ];
  for (const [ip, kind] of cases) assert.equal(addressKind(ip), kind, ip);
});

test('metadata, link-local, unspecified, multicast and broadcast are refused under every policy; loopback and private only with blockPrivate', () => {
  for (const host of ['169.254.169.254', '2852039166', '0xa9fea9fe', '[fd00:ec2::254]', '[::ffff:169.254.169.254]', '[fe80::1]', '0.0.0.0', '[::]', '224.0.0.1', '255.255.255.255', '100.100.100.200']) {
    assert.ok(hostRefusal(host, DEFAULT_OUTBOUND_POLICY), `${host} refused by default`);
    assert.ok(hostRefusal(host, BLOCK), `${host} refused with blockPrivate`);
  }
  for (const host of ['metadata.google.internal', 'METADATA.GOOGLE.INTERNAL.', 'metadata.goog', 'instance-data']) assert.equal(hostRefusal(host, DEFAULT_OUTBOUND_POLICY)?.kind, 'metadata_name', host);
  for (const host of ['127.0.0.1', '2130706433', '0x7f000001', '0177.0.0.1', '127.1', '[::1]', '[::ffff:127.0.0.1]', '10.0.0.5', '192.168.1.10', 'localhost', 'mail.localhost']) {
    assert.equal(hostRefusal(host, DEFAULT_OUTBOUND_POLICY), null, `${host} allowed by default`);
    assert.ok(hostRefusal(host, BLOCK), `${host} refused with blockPrivate`);
  }
  assert.equal(hostRefusal('smtp.office365.com', BLOCK), null);
  assert.equal(hostRefusal('52.97.146.2', BLOCK), null);
});

test('OUTBOUND_ALLOW lets named hosts, addresses and CIDRs through, mapped forms included', () => {
  const policy: OutboundPolicy = { blockPrivate: true, allow: ['relay.internal', '10.0.5.0/24', '169.254.10.10', 'fd12::/16'] };
  assert.equal(addressRefusal('relay.internal', '10.9.9.9', policy), null);
  assert.equal(addressRefusal('relay.internal', '169.254.169.254', policy)?.kind, 'metadata', 'an allowed name pointed at the metadata service is still refused');
  assert.equal(addressRefusal('erp.internal', '10.0.5.7', policy), null);
  assert.equal(addressRefusal('erp.internal', '::ffff:10.0.5.7', policy), null);
  assert.ok(addressRefusal('erp.internal', '10.0.6.7', policy));
  assert.equal(addressRefusal('x', '169.254.10.10', policy), null);
  assert.ok(addressRefusal('x', '169.254.169.254', policy));
  assert.equal(addressRefusal('x', 'fd12:1::1', policy), null);
  assert.ok(addressRefusal('x', 'fd13::1', policy));
});

test('OUTBOUND_BLOCK_PRIVATE and OUTBOUND_ALLOW are read from the environment and checked', () => {
  assert.deepEqual(loadConfig({}).outbound, { blockPrivate: false, allow: [] });
  assert.deepEqual(loadConfig({ OUTBOUND_BLOCK_PRIVATE: 'true', OUTBOUND_ALLOW: 'Relay.Internal, 10.0.5.0/24,fd00::1' }).outbound, { blockPrivate: true, allow: ['relay.internal', '10.0.5.0/24', 'fd00::1'] });
  assert.throws(() => loadConfig({ OUTBOUND_BLOCK_PRIVATE: 'yes', OUTBOUND_ALLOW: '10.0.0.0/33,http://x,127.1' }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.ok(e.problems.some((p) => /OUTBOUND_BLOCK_PRIVATE must be true or false/.test(p)));
    assert.ok(e.problems.some((p) => /OUTBOUND_ALLOW .*"10\.0\.0\.0\/33", "http:\/\/x", "127\.1"/.test(p)));
    return true;
  });
});

/** A resolver standing in for DNS: the answers a rebinding attacker's name server would give. */
const fakeDns = (answers: Record<string, string[]>) => (hostname: string, _o: unknown, cb: (err: NodeJS.ErrnoException | null, a: LookupAddress[]) => void) =>
  setImmediate(() => cb(null, (answers[hostname] ?? []).map((address) => ({ address, family: address.includes(':') ? 6 : 4 }))));

let listener: Server;
let connections = 0;
before(async () => {
  listener = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
});
after(() => listener.close());

test('a name that resolves to a refused address is refused at connect, with no connection made; one refused address in the answer refuses the name', async () => {
  const lookup = guardedLookup(DEFAULT_OUTBOUND_POLICY, fakeDns({ 'mail.rebind.example': ['52.97.146.2', '169.254.169.254'], 'only.metadata.example': ['::ffff:169.254.169.254'], 'ok.example': ['127.0.0.1'] }));
  const one = (host: string, all: boolean) => new Promise<unknown>((resolve) => lookup(host, { all }, (err, address) => resolve(err ?? address)));
  const refused = await one('mail.rebind.example', false);
  assert.ok(refused instanceof OutboundRefusedError);
  assert.equal(refused.refusal.address, '169.254.169.254');
  assert.match(refused.message, /^mail\.rebind\.example resolves to 169\.254\.169\.254, which is a cloud metadata service address: refused by Mailroom's outbound policy$/);
  assert.ok((await one('only.metadata.example', true)) instanceof OutboundRefusedError);
  assert.equal(await one('ok.example', false), '127.0.0.1');
  assert.ok((await one('metadata.google.internal', false)) instanceof OutboundRefusedError, 'refused by its name before any lookup');

  // The real resolver: localhost is 127.0.0.1, refused with blockPrivate, reached without.
  const port = (listener.address() as { port: number }).port;
  const before = connections;
  await assert.rejects(connectGuarded('localhost', port, 2000, BLOCK), (e: unknown) => e instanceof OutboundRefusedError && e.refusal.kind === 'loopback');
  await assert.rejects(connectGuarded('2130706433', port, 2000, BLOCK), OutboundRefusedError);
  await assert.rejects(connectGuarded('169.254.169.254', port, 2000, DEFAULT_OUTBOUND_POLICY), OutboundRefusedError);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(connections, before, 'no connection reached the listener');
  const socket = await connectGuarded('2130706433', port, 2000, DEFAULT_OUTBOUND_POLICY);
  socket.destroy();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(connections, before + 1, 'allowed by default: the numeric form reaches 127.0.0.1');
});
