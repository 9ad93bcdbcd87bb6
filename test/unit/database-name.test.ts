import assert from 'node:assert/strict';
import { test } from 'node:test';
import { databaseName } from '../../src/cli/database-name.ts';

test('the database a CLI command names: the SQLite file, or PostgreSQL without its password', () => {
  assert.equal(databaseName('sqlite:/srv/mailroom/data/mailroom.sqlite'), 'SQLite /srv/mailroom/data/mailroom.sqlite');
  const pg = databaseName('postgres://mailroom:s3cr%40t@db.internal:5433/mail?sslmode=require');
  assert.equal(pg, 'PostgreSQL mailroom@db.internal:5433/mail');
  assert.doesNotMatch(pg, /s3cr|sslmode/);
  assert.equal(databaseName('postgresql://db.internal/mail'), 'PostgreSQL db.internal/mail');
});
