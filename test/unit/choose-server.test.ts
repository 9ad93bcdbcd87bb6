import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseServer } from '../../src/servers/choose-server.ts';

const s = (id: string, priority: number, fromFilter: string | null, active = true) => ({ id, name: id, priority, fromFilter, active });

test('an explicit server wins, if it exists and is active', () => {
  const servers = [s('a', 1, null), s('b', 2, 'billing@x.com'), s('c', 3, null, false)];
  const r = chooseServer(servers, 'someone@y.com', 'b');
  assert.ok(r.ok && r.server.id === 'b');
  assert.equal(chooseServer(servers, null, 'c').ok, false);
  assert.equal(chooseServer(servers, null, 'zzz').ok, false);
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
