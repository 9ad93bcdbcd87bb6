import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseServer } from '../../src/servers/choose-server.ts';

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
