import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/config.ts';
import { createLogger } from '../../src/logger.ts';
import { createMailroom } from '../../src/mailroom.ts';
import { VALID_SERVER } from '../helpers/test-mailroom.ts';

// The mailroom command as a newcomer meets it: --help on every command prints its usage without
// opening or creating a database, mistakes are said once with the usage, servers list has a header.
const BIN = fileURLToPath(new URL('../../bin/mailroom.js', import.meta.url));
const T = { timeout: 120_000 };

let root: string;
let dataDir: string;
const ids: { outlook: string; relay: string } = { outlook: '', relay: '' };

function cli(args: string[], env: Record<string, string> = {}, input?: string) {
  return spawnSync(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', DATA_DIR: dataDir, ...env }, encoding: 'utf8', input, timeout: 60_000 });
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'mailroom-cli-usage-'));
  dataDir = join(root, 'data');
  // The server's database, made as `serve` makes it, with an OAuth and a relay server.
  const mr = await createMailroom(loadConfig({ DATA_DIR: dataDir }), createLogger('silent'));
  try {
    ids.outlook = (await mr.servers.create({ ...VALID_SERVER, name: 'Outlook sales' })).id;
    ids.relay = (await mr.servers.create({ name: 'Local relay', authType: 'none', username: 'erp@example.test', smtpHost: '127.0.0.1', smtpPort: 2525, smtpSecurity: 'none' })).id;
  } finally {
    await mr.close();
  }
});

after(() => {
  rmSync(root, { recursive: true, force: true });
});

const COMMANDS = [['serve'], ['admin', 'create'], ['servers', 'list'], ['servers', 'test'], ['apikey', 'create'], ['send']];

test('every command prints its own usage for --help and -h, exit 0, without opening or creating a database', T, () => {
  const elsewhere = join(root, 'no-such-data');
  for (const command of COMMANDS) {
    for (const flag of ['--help', '-h']) {
      const r = cli([...command, flag], { DATA_DIR: elsewhere });
      const what = `${command.join(' ')} ${flag}`;
      assert.equal(r.status, 0, `${what}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: mailroom ${command.join(' ')}\\b`), what);
      assert.doesNotMatch(r.stderr, /Using the database|Refusing/, what);
      assert.ok(!existsSync(elsewhere), `${what} created ${elsewhere}`);
    }
  }
  // Help after other options, and for a group.
  const late = cli(['apikey', 'create', '--name', 'x', '--help'], { DATA_DIR: elsewhere });
  assert.equal(late.status, 0);
  assert.match(late.stdout, /^Usage: mailroom apikey create/);
  const group = cli(['servers', '--help'], { DATA_DIR: elsewhere });
  assert.equal(group.status, 0);
  assert.match(group.stdout, /mailroom servers list/);
  assert.match(group.stdout, /mailroom servers test <id>/);
  assert.ok(!existsSync(elsewhere));
});

test('a mistake on the command line is said once with the usage, exit code 2, no stack trace', T, () => {
  for (const [args, said] of [
    [['apikey', 'create', '--bogus'], /Unknown option '--bogus'/],
    [['servers', 'list', 'extra'], /Unexpected argument 'extra'/],
    [['servers', 'test'], /needs <id>/],
    [['servers', 'frobnicate'], /Unknown command: mailroom servers frobnicate/],
    [['frobnicate'], /Unknown command: mailroom frobnicate/],
  ] as const) {
    const r = cli([...args]);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, said);
    assert.match(r.stderr, /Usage: mailroom/);
    assert.doesNotMatch(r.stderr, /\n\s+at |TypeError|ERR_PARSE_ARGS/, r.stderr);
  }
});

test('admin create prints its error once', T, () => {
  const short = cli(['admin', 'create', '--email', 'new@example.test', '--password-stdin'], {}, 'short\n');
  assert.equal(short.status, 1, short.stderr);
  const lines = short.stderr.split('\n').filter((l) => /10 characters/.test(l));
  assert.equal(lines.length, 1, short.stderr);
  const bad = cli(['admin', 'create', '--email', 'not-an-address', '--password-stdin'], {}, 'a long passphrase\n');
  assert.equal(bad.status, 1, bad.stderr);
  assert.equal(bad.stderr.split('\n').filter((l) => /valid email address/.test(l)).length, 1, bad.stderr);
  const ok = cli(['admin', 'create', '--email', 'new@example.test', '--password-stdin'], {}, 'a long passphrase\n');
  assert.equal(ok.status, 0, ok.stderr);
  const again = cli(['admin', 'create', '--email', 'new@example.test', '--password-stdin'], {}, 'a long passphrase\n');
  assert.equal(again.status, 1);
  assert.equal(again.stderr.split('\n').filter((l) => /already exists/.test(l)).length, 1, again.stderr);
});

test('servers list starts with a header row, then one aligned row per server', T, () => {
  const r = cli(['servers', 'list']);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 3, r.stdout);
  assert.match(lines[0]!, /^ID\s+NAME\s+USERNAME\s+AUTHENTICATE USING\s+SENDS VIA\s+TOKEN$/);
  const column = (line: string, title: string) => line.slice(lines[0]!.indexOf(title)).split(/\s{2,}/)[0];
  const outlook = lines.find((l) => l.startsWith(ids.outlook))!;
  const relay = lines.find((l) => l.startsWith(ids.relay))!;
  assert.equal(column(outlook, 'NAME'), 'Outlook sales');
  assert.equal(column(outlook, 'AUTHENTICATE USING'), 'outlook_oauth');
  assert.equal(column(outlook, 'SENDS VIA'), 'smtp.office365.com:587');
  assert.equal(column(outlook, 'TOKEN'), 'not_connected');
  assert.equal(column(relay, 'USERNAME'), 'erp@example.test');
  assert.equal(column(relay, 'SENDS VIA'), '127.0.0.1:2525');
  assert.equal(column(relay, 'TOKEN'), '-');
});
