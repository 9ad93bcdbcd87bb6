import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';

// `mailroom serve` as an operator reads it: every line it writes, on stdout and stderr, is one JSON
// object (the setup link, Node's warnings and a failed start included), and what the UI polls every
// few seconds stays out of the info log while changes are in it.
const BIN = fileURLToPath(new URL('../../bin/mailroom.js', import.meta.url));
const T = { timeout: 180_000 };

// Node warnings the way a dependency raises them, from inside the serve process once it runs.
const WARN_LATER = `data:text/javascript,${encodeURIComponent("setTimeout(() => process.emitWarning('a warning for the log test', 'TestWarning', 'TEST001'), 1500).unref()")}`;

interface Line {
  level: number;
  msg: string;
  event?: string;
  req?: { method: string; path: string };
  url?: string;
  warning?: { name: string; code?: string };
}

function jsonLines(output: string): Line[] {
  return output
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as Line;
      } catch {
        throw new Error(`a line of mailroom serve is not JSON: ${JSON.stringify(l)}`);
      }
    });
}

test('every line serve writes is JSON, and the UI\'s polls are not logged at info', T, async (t) => {
  let mailroom: MailroomProcess | undefined;
  t.after(async () => mailroom?.stop());
  mailroom = await startMailroomProcess({ LOG_LEVEL: 'info', NODE_OPTIONS: `--import=${WARN_LATER}` });
  const { NODE_OPTIONS: _none, ...cliEnv } = mailroom.env;
  const created = spawnSync(process.execPath, [BIN, 'apikey', 'create', '--name', 'log test', '--scope', 'admin'], { env: cliEnv, encoding: 'utf8' });
  assert.equal(created.status, 0, created.stderr);
  // The CLI's answer alone on stdout; its notes on stderr.
  const key = /^(mr_\S+)$/m.exec(created.stdout)?.[1];
  assert.ok(key, created.stdout);
  assert.doesNotMatch(created.stdout, /Using the database|"level"/);

  const get = (path: string) => fetch(`${mailroom!.baseUrl}${path}`, { headers: { authorization: `Bearer ${key}` } });
  for (let i = 0; i < 5; i++) {
    // What the UI polls: Mail Health, the email list and an email, incoming mail, a webhook's log.
    for (const path of ['/api/v1/health/servers', '/api/v1/messages', '/api/v1/inbound-messages', '/api/v1/mail-servers', '/api/v1/incoming-servers', '/healthz', '/readyz']) {
      assert.equal((await get(path)).status, 200, path);
    }
  }
  // A change is logged.
  const hook = await fetch(`${mailroom.baseUrl}/api/v1/webhooks`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ url: 'https://erp.example.test/hook' }) });
  assert.equal(hook.status, 201, await hook.text());
  await waitFor(() => mailroom!.output().includes('a warning for the log test'), 20_000);
  await mailroom.stop();

  const lines = jsonLines(mailroom.output());
  const setup = lines.find((l) => l.event === 'setup.link');
  assert.ok(setup, 'the setup link is logged');
  assert.match(setup.url!, new RegExp(`^${mailroom.baseUrl.replace(/[.]/g, '\\.')}/setup\\?token=[\\w-]{20,}$`));
  assert.ok(setup.msg.includes(setup.url!));
  assert.ok(setup.level >= 40, 'at warn: shown whatever LOG_LEVEL short of error');
  const warning = lines.find((l) => l.event === 'process.warning');
  assert.deepEqual(warning?.warning, { name: 'TestWarning', code: 'TEST001' });
  assert.equal(warning?.msg, 'a warning for the log test');

  const requests = lines.filter((l) => l.msg === 'incoming request').map((l) => `${l.req!.method} ${l.req!.path}`);
  assert.ok(requests.includes('POST /api/v1/webhooks'), `changes are logged at info: ${requests.join(', ')}`);
  const polls = requests.filter((r) => r.startsWith('GET '));
  assert.deepEqual(polls, [], 'reads are logged at debug only');
  assert.ok(lines.some((l) => l.event === 'started'));
});

test('the polls are in the log at LOG_LEVEL=debug', T, async (t) => {
  let mailroom: MailroomProcess | undefined;
  t.after(async () => mailroom?.stop());
  mailroom = await startMailroomProcess({ LOG_LEVEL: 'debug' });
  assert.equal((await fetch(`${mailroom.baseUrl}/healthz`)).status, 200);
  assert.equal((await fetch(`${mailroom.baseUrl}/api/v1/health/servers`)).status, 401);
  await mailroom.stop();
  const requests = jsonLines(mailroom.output()).filter((l) => l.msg === 'incoming request').map((l) => l.req!.path);
  assert.ok(requests.includes('/healthz') && requests.includes('/api/v1/health/servers'), requests.join(', '));
});

test('a start that fails is one JSON line too', T, () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-log-'));
  try {
    const r = spawnSync(process.execPath, [BIN, 'serve'], { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', DATA_DIR: dir, PORT: 'eighty', MAX_MESSAGE_MB: '-1' }, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    const lines = jsonLines(r.stdout + r.stderr);
    const failed = lines.find((l) => l.event === 'start.failed');
    assert.ok(failed, r.stdout + r.stderr);
    assert.equal(failed.level, 60);
    assert.match(failed.msg, /PORT/);
    assert.match(failed.msg, /MAX_MESSAGE_MB/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

async function waitFor(ok: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}
