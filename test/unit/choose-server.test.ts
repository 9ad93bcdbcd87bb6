import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseOwnedServer, chooseServer } from '../../src/servers/choose-server.ts';

// Relays (authType none) unless said otherwise: they may send as anyone their FROM Filtering allows.
const s = (id: string, priority: number, fromFilter: string | null, active = true, authType = 'none', username = `${id}@relay.test`) => ({ id, name: id, priority, fromFilter, active, authType, username });

test('an explicit server wins, if it exists, is active and its FROM Filtering accepts the sender', () => {
  const servers = [s('a', 1, null), s('b', 2, 'billing@x.com'), s('c', 3, null, false)];
  const r = chooseServer(servers, 'Billing@X.com', 'b');
  assert.ok(r.ok && r.server.id === 'b');
  const open = chooseServer(servers, 'someone@y.com', 'a');
  assert.ok(open.ok && open.server.id === 'a');
  assert.deepEqual(chooseServer(servers, null, 'c'), { ok: false, reason: 'The mail server "c" is archived (inactive).', field: 'mailServerId' });
  assert.equal(chooseServer(servers, null, 'zzz').ok, false);
});

test('a named server refuses a sender its FROM Filtering would refuse, naming the filter; without a sender it sends as itself', () => {
  const servers = [s('relay', 1, 'example.com'), s('billing', 2, 'billing@x.com')];
  const spoof = chooseServer(servers, 'ceo@victim.test', 'relay');
  assert.deepEqual(spoof, {
    ok: false,
    reason: 'The mail server "relay" has FROM Filtering example.com: it sends only as addresses at example.com, not as ceo@victim.test.',
    field: 'from',
  });
  // A subdomain is another domain, as in the automatic choice.
  assert.equal(chooseServer(servers, 'a@mail.example.com', 'relay').ok, false);
  assert.equal(chooseServer(servers, 'a@example.com', 'relay').ok, true);
  const other = chooseServer(servers, 'sales@x.com', 'billing');
  assert.match(other.ok ? '' : other.reason, /FROM Filtering billing@x\.com: it sends only as billing@x\.com, not as sales@x\.com/);
  assert.equal(chooseServer(servers, null, 'relay').ok, true);
  // Exactly what the automatic choice accepts for the same sender and the same single server.
  for (const from of ['a@example.com', 'A@EXAMPLE.COM', 'a@example.com.evil', 'example.com@evil.test', 'a@sub.example.com']) {
    assert.equal(chooseServer([servers[0]!], from, 'relay').ok, chooseServer([servers[0]!], from, null).ok, from);
  }
});

test('exact address beats domain beats no filter, whatever the priority', () => {
  const servers = [s('open', 1, null), s('domain', 2, 'x.com'), s('exact', 3, 'billing@x.com')];
  const pick = (from: string) => {
    const r = chooseServer(servers, from, null);
    return r.ok ? r.server.id : null;
  };
  assert.equal(pick('billing@x.com'), 'exact');
  assert.equal(pick('Sales@X.com'), 'domain');
  assert.equal(pick('a@other.com'), 'open');
});

test('among equal matches the lower Priority number wins; inactive servers are ignored', () => {
  const servers = [s('late', 20, null), s('early', 5, null), s('off', 1, null, false)];
  const r = chooseServer(servers, 'a@b.com', null);
  assert.ok(r.ok && r.server.id === 'early');
});

test('no server allowed for the sender gives a reason naming the filters', () => {
  const r = chooseServer([s('a', 1, 'x.com')], 'a@other.com', null);
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.reason, /x\.com/);
  assert.equal(chooseServer([], 'a@b.com', null).ok, false);
});

test('a mailbox without FROM Filtering sends only as its Username: refused at once, naming both addresses', () => {
  const sales = s('sales', 1, null, true, 'outlook_oauth', 'sales@contoso.com');
  const refused = chooseServer([sales], 'billing@contoso.com', null);
  assert.deepEqual(refused, {
    ok: false,
    reason: 'The mail server "sales" signs in as the mailbox sales@contoso.com and has no FROM Filtering: it sends only as sales@contoso.com, not as billing@contoso.com.',
    field: 'from',
  });
  assert.equal(chooseServer([sales], 'billing@contoso.com', 'sales').ok, false);
  assert.ok(chooseServer([sales], 'Sales@Contoso.com', null).ok);
  assert.ok(chooseServer([sales], null, null).ok);
  // FROM Filtering set to the address or its domain means "set to send as" (Send As granted in Exchange).
  assert.ok(chooseServer([{ ...sales, fromFilter: 'billing@contoso.com' }], 'billing@contoso.com', null).ok);
  assert.ok(chooseServer([{ ...sales, fromFilter: 'contoso.com' }], 'billing@contoso.com', 'sales').ok);
  // Gmail mailboxes likewise; password and None servers are relays and send as anyone.
  assert.equal(chooseServer([s('g', 1, null, true, 'gmail_oauth', 'ops@gmail.com')], 'billing@contoso.com', null).ok, false);
  for (const authType of ['password', 'none']) assert.ok(chooseServer([s('r', 1, null, true, authType, 'relay@contoso.com')], 'billing@contoso.com', null).ok, authType);
  // The automatic choice skips the mailbox for a relay (or the mailbox whose Username the sender is).
  const r = chooseServer([sales, s('relay', 2, null, true, 'password')], 'billing@contoso.com', null);
  assert.ok(r.ok && r.server.id === 'relay');
  const own = chooseServer([sales, s('billing', 2, null, true, 'outlook_oauth', 'billing@contoso.com')], 'billing@contoso.com', null);
  assert.ok(own.ok && own.server.id === 'billing');
});

// Personal mailboxes: OAuth mailboxes without FROM Filtering, each sending only as itself.
const mailbox = (id: string, username: string, owner: string | null, priority = 10, active = true) => ({ id, name: id, priority, fromFilter: null, active, authType: 'outlook_oauth', username, owner });

test("an owner's message goes only through the owner's mailboxes, never another owner's", () => {
  const servers = [mailbox('ann', 'ann@x.com', 'u-ann'), mailbox('dave', 'dave@x.com', 'u-dave', 1), s('relay', 5, 'x.com')];
  const mine = chooseOwnedServer(servers, null, null, { owner: 'u-ann' });
  assert.ok(mine.ok && mine.server.id === 'ann', 'without a From: the owner\'s own mailbox');
  assert.ok(chooseOwnedServer(servers, 'ANN@x.com', null, { owner: 'u-ann' }).ok);
  const asDave = chooseOwnedServer(servers, 'dave@x.com', null, { owner: 'u-ann' });
  assert.deepEqual(asDave, { ok: false, reason: 'A message for u-ann is sent only from their own mailbox (ann@x.com), not as dave@x.com.', field: 'from' });
  // The shared relay would accept any x.com sender: not without the fallback.
  assert.equal(chooseOwnedServer(servers, 'sales@x.com', null, { owner: 'u-ann' }).ok, false);
  const named = chooseOwnedServer(servers, null, 'dave', { owner: 'u-ann' });
  assert.deepEqual(named, { ok: false, reason: 'The mail server "dave" is another user\'s personal mailbox.', field: 'mailServerId' });
  assert.equal(chooseOwnedServer(servers, null, 'relay', { owner: 'u-ann' }).ok, false);
});

test('a shared mailbox sends for an owner only with allowSharedFallback, and only when none of the owner\'s may', () => {
  const servers = [mailbox('ann', 'ann@x.com', 'u-ann', 50), s('relay', 1, 'x.com')];
  const own = chooseOwnedServer(servers, 'ann@x.com', null, { owner: 'u-ann', allowSharedFallback: true });
  assert.ok(own.ok && own.server.id === 'ann', 'the own mailbox first, whatever the priority');
  const fallback = chooseOwnedServer(servers, 'sales@x.com', null, { owner: 'u-ann', allowSharedFallback: true });
  assert.ok(fallback.ok && fallback.server.id === 'relay');
  assert.match(fallback.reason, /shared \(u-ann has no mailbox that may send as this sender\)/);
  const none = chooseOwnedServer(servers, 'sales@x.com', null, { owner: 'u-zed' });
  assert.deepEqual(none, { ok: false, reason: 'u-zed has no active mailbox of their own, and this message does not allow a shared fallback.', field: 'owner' });
  const archived = chooseOwnedServer([mailbox('old', 'old@x.com', 'u-old', 1, false)], 'old@x.com', null, { owner: 'u-old' });
  assert.equal(archived.ok ? '' : archived.field, 'owner');
  assert.ok(chooseOwnedServer(servers, null, 'relay', { owner: 'u-ann', allowSharedFallback: true }).ok);
});

test('a message without an owner never uses a personal mailbox; the check before the owner is known sees every server', () => {
  const servers = [mailbox('ann', 'ann@x.com', 'u-ann', 1), s('open', 5, null)];
  const shared = chooseOwnedServer(servers, 'ann@x.com', null, { owner: null });
  assert.ok(shared.ok && shared.server.id === 'open', 'the relay sends as anyone, the personal mailbox is not considered');
  assert.equal(chooseOwnedServer([servers[0]!], 'ann@x.com', null, { owner: null }).ok, false);
  const named = chooseOwnedServer(servers, null, 'ann', { owner: null });
  assert.equal(named.ok ? '' : named.field, 'mailServerId');
  const any = chooseOwnedServer([servers[0]!], 'ann@x.com', null, { owner: undefined });
  assert.ok(any.ok && any.server.id === 'ann');
});

test('one server list reused for many messages (as the outbox does) answers each sender and owner as a fresh list would', () => {
  const list = [
    ...Array.from({ length: 300 }, (_, i) => mailbox(`m${i}`, `user${i}@x.com`, `u-${i}`, 10 + (i % 7))),
    s('relay-b', 5, 'x.com'),
    s('relay-a', 5, 'x.com'),
    s('billing', 1, 'billing@x.com', false),
  ];
  for (let round = 0; round < 2; round++) {
    for (const i of [0, 17, 299]) {
      const r = chooseOwnedServer(list, `user${i}@x.com`, null, { owner: `u-${i}` });
      assert.ok(r.ok && r.server.id === `m${i}`, `owner u-${i}`);
      const fresh = chooseOwnedServer([...list], `user${i}@x.com`, null, { owner: `u-${i}` });
      assert.deepEqual(r, fresh);
      assert.equal(chooseOwnedServer(list, `user${i}@x.com`, null, { owner: `u-${(i + 1) % 300}` }).ok, false, 'never another owner\'s mailbox');
    }
    // Shared only: the domain's relays in Priority then name order; the archived exact match is skipped.
    const shared = chooseOwnedServer(list, 'billing@x.com', null, { owner: null });
    assert.ok(shared.ok && shared.server.id === 'relay-a');
    assert.ok(!chooseOwnedServer(list, 'someone@y.com', null, { owner: null }).ok);
    assert.equal(chooseOwnedServer(list, 'x@x.com', null, { owner: 'u-nobody' }).ok, false);
  }
});
