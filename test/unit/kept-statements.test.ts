import assert from 'node:assert/strict';
import { test } from 'node:test';
import SQLite from 'better-sqlite3';
import { keepingStatements } from '../../src/storage/database.ts';

// kysely asks for a compiled statement per query; the connection keeps them by SQL text.
test('a kept statement is reused for the same SQL, answers as a new one would, and sees a changed schema', () => {
  const sqlite = new SQLite(':memory:');
  const db = keepingStatements(sqlite);
  db.prepare('create table t (a integer)').run([]);
  const insert = db.prepare('insert into t (a) values (?)');
  assert.equal(db.prepare('insert into t (a) values (?)'), insert, 'the same statement object');
  for (let i = 0; i < 3; i++) insert.run([i]);
  const select = 'select * from t order by a';
  assert.deepEqual(db.prepare(select).all([]), [{ a: 0 }, { a: 1 }, { a: 2 }]);
  // A column added after the statement was compiled is in its next answer (SQLite recompiles it).
  db.prepare('alter table t add column b text').run([]);
  assert.deepEqual(db.prepare(select).all([]), [{ a: 0, b: null }, { a: 1, b: null }, { a: 2, b: null }]);
  sqlite.close();
});

test('past 500 statements the least recently used is dropped, not the ones in use', () => {
  const sqlite = new SQLite(':memory:');
  const db = keepingStatements(sqlite);
  const hot = db.prepare('select 1 as one');
  const early = db.prepare('select -1 as early');
  for (let i = 0; i < 1000; i++) {
    db.prepare(`select ${i + 2} as n`);
    if (i % 100 === 0) assert.equal(db.prepare('select 1 as one'), hot, 'used again: kept');
  }
  assert.equal(db.prepare('select 1 as one'), hot);
  const again = db.prepare('select -1 as early');
  assert.notEqual(again, early, 'not used since: dropped, and compiled again');
  assert.deepEqual(again.all([]), [{ early: -1 }]);
  sqlite.close();
});
