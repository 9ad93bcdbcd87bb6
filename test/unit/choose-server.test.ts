import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseServer } from '../../src/servers/choose-server.ts';

const s = (id: string, priority: number, fromFilter: string | null, active = true) => ({ id, name: id, priority, fromFilter, active });

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
