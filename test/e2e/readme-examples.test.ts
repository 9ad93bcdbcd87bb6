import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { signature } from '../../src/inbound/webhook-service.ts';
import { freePort, type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';

// The README's examples run as written, on a real Mailroom: the admin from the quick start, the send
// request with its attachment, the error example, the SMTP listener's certificate recipe checked
// with openssl and swaks, the webhook receiver. Only what a reader replaces is replaced: the address
// (localhost:8080, mailroom.example.com, ports 587/465), /etc/mailroom and `npx mailroom` (the
// checkout's bin/mailroom.js: npx would install the package first).
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'mailroom.js');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const T = { timeout: 180_000 };

const blocks = [...README.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1]!, code: m[2]! }));

/** The one code block of the README that contains `marker`. */
function block(marker: string): string {
  const found = blocks.filter((b) => b.code.includes(marker));
  assert.equal(found.length, 1, `README code blocks containing ${JSON.stringify(marker)}: ${found.length}`);
  return found[0]!.code;
}

let dir: string;
let certDir: string;
let mailroom: MailroomProcess;
let smtpPort: number;
let sendKey: string;
let adminKey: string;

function bash(script: string, env: Record<string, string> = {}, cwd = dir) {
  const r = spawnSync('bash', ['-eo', 'pipefail', '-c', script], { cwd, env: { ...mailroom?.env, PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env }, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, all: `${r.stdout}${r.stderr}` };
}

const local = (code: string) => code.replaceAll('npx mailroom', `node ${BIN}`).replaceAll('http://localhost:8080', mailroom.baseUrl).replaceAll('/etc/mailroom', certDir);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailroom-readme-'));
  certDir = join(dir, 'etc-mailroom');
  // The certificate recipe, as written (into a folder of our own instead of /etc/mailroom).
  const recipe = block('openssl req -x509').replaceAll('/etc/mailroom', certDir);
  const made = spawnSync('bash', ['-e', '-c', recipe], { cwd: dir, encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  assert.ok(existsSync(join(certDir, 'smtp.pem')) && existsSync(join(certDir, 'smtp.key')));
  assert.equal(statSync(join(certDir, 'smtp.key')).mode & 0o777, 0o600);

  // The listener's start line: every variable it sets, with ports and the bind address of our own.
  const start = block('SMTP_SUBMISSION_PORT=587');
  const env = Object.fromEntries([...start.matchAll(/\b([A-Z_]+)=(\S+)/g)].map((m) => [m[1]!, m[2]!.replaceAll('/etc/mailroom', certDir)]));
  assert.deepEqual(Object.keys(env).sort(), ['HOST', 'SMTP_SUBMISSIONS_PORT', 'SMTP_SUBMISSION_PORT', 'SMTP_TLS_CERT', 'SMTP_TLS_KEY']);
  smtpPort = await freePort();
  mailroom = await startMailroomProcess({ ...env, HOST: '127.0.0.1', SMTP_SUBMISSION_PORT: String(smtpPort), SMTP_SUBMISSIONS_PORT: String(await freePort()), OUTBOX_WORKER: 'off', INBOUND_WORKER: 'off' });
});

after(async () => {
  await mailroom?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('quick start and Command line: the admin and the API keys are made as the README says', T, async () => {
  const admin = bash(local(block("npx mailroom admin create --email admin@example.com --password-stdin")));
  assert.equal(admin.status, 0, admin.all);
  assert.match(admin.stdout, /Admin created: admin@example.com/);
  const login = await fetch(`${mailroom.baseUrl}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'admin@example.com', password: 'a long passphrase' }) });
  assert.equal(login.status, 200);

  const line = block('npx mailroom apikey create --name ERP --scope send').split('\n').find((l) => l.startsWith('npx mailroom apikey create --name ERP --scope send'))!;
  const send = bash(local(line.replace(/#.*$/, '')));
  assert.equal(send.status, 0, send.all);
  sendKey = /^(mr_\S+)$/m.exec(send.stdout)![1]!;
  const ops = bash(local(/`(npx mailroom apikey\s+create --name Ops --scope admin)`/.exec(README)![1]!.replace(/\s+/g, ' ')));
  assert.equal(ops.status, 0, ops.all);
  adminKey = /^(mr_\S+)$/m.exec(ops.stdout)![1]!;

  // Somewhere the examples' sender (billing@contoso.com) may send from: a relay filtered to contoso.com.
  const relay = await fetch(`${mailroom.baseUrl}/api/v1/mail-servers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'Contoso relay', authType: 'none', username: 'billing@contoso.com', smtpHost: '127.0.0.1', smtpPort: 2525, smtpSecurity: 'none', fromFilter: 'contoso.com' }),
  });
  assert.equal(relay.status, 201, await relay.text());
});

test('Sending mail from the ERP: the curl request is accepted (202) with its attachment', T, async () => {
  const code = block('curl -s http://localhost:8080/api/v1/messages');
  const body = JSON.parse(/-d '([\s\S]*?)'/.exec(code)![1]!) as { attachments: Array<{ content: string; filename: string }> };
  for (const a of body.attachments) assert.equal(Buffer.from(a.content, 'base64').toString('base64'), a.content, `${a.filename}: base64`);
  const r = bash(local(code), { MAILROOM_KEY: sendKey });
  assert.equal(r.status, 0, r.all);
  const answer = JSON.parse(r.stdout);
  assert.equal(answer.state, 'queued', r.stdout);
  const message = await (await fetch(`${mailroom.baseUrl}/api/v1/messages/${answer.id}`, { headers: { authorization: `Bearer ${sendKey}` } })).json();
  assert.equal(message.subject, 'Invoice 2026-0042');
  assert.deepEqual(message.attachments.map((a: { filename: string }) => a.filename), body.attachments.map((a) => a.filename));
  // The same request again is the same message (Idempotency-Key).
  assert.equal(JSON.parse(bash(local(code), { MAILROOM_KEY: sendKey }).stdout).id, answer.id);
});

test('API: the error example answers what the README shows', T, () => {
  const code = block('"username":"not-an-address"');
  const r = bash(local(code), { MAILROOM_ADMIN_KEY: adminKey });
  assert.equal(r.status, 0, r.all);
  const got = JSON.parse(r.stdout).error;
  const shown = code.split('\n').filter((l) => l.startsWith('#')).map((l) => l.replace(/^#\s*/, '')).join('');
  assert.equal(got.code, /"code":"(\w+)"/.exec(shown)![1]);
  assert.equal(got.message, /"message":"([^"]+)"/.exec(shown)![1]);
  assert.equal(got.field, /"field":"(\w+)"/.exec(shown)![1]);
  assert.deepEqual(Object.keys(got.fields).sort(), [...shown.matchAll(/"(\w+)":"…"/g)].map((m) => m[1]).sort());
});

test('SMTP listener: the self-signed certificate verifies with openssl s_client, and swaks sends through it', T, () => {
  const check = local(block('openssl s_client -starttls smtp')).replace('mailroom.example.com:587', `127.0.0.1:${smtpPort}`);
  const verified = bash(check);
  assert.equal(verified.status, 0, verified.all);
  assert.match(verified.all, /Verify return code: 0 \(ok\)/);

  writeFileSync(join(dir, 'invoice.pdf'), '%PDF-1.4\n% a stand-in\n');
  const swaks = local(block('swaks --server mailroom.example.com')).replace('--server mailroom.example.com --port 587', `--server 127.0.0.1 --port ${smtpPort}`);
  const sent = bash(swaks, { MAILROOM_KEY: sendKey });
  assert.equal(sent.status, 0, sent.all);
  assert.match(sent.all, /<~ +250 2\.6\.0 Queued as \S+ for delivery through "Contoso relay"/);
});

test('Receiving mail: the webhook receiver accepts a signed delivery once and refuses a forged one', T, async () => {
  const port = await freePort();
  const code = block("createHmac('sha256', SECRET)");
  assert.match(code, /\.listen\(3000\)/);
  const file = join(dir, 'receiver.mjs');
  writeFileSync(file, code.replace('.listen(3000)', `.listen(${port}, '127.0.0.1')`));
  const secret = 'whsec_readme-example-secret';
  const receiver: ChildProcess = spawn(process.execPath, [file], { env: { PATH: process.env.PATH ?? '', MAILROOM_WEBHOOK_SECRET: secret }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  receiver.stdout!.on('data', (c) => (out += c));
  receiver.stderr!.on('data', (c) => (out += c));
  try {
    const body = JSON.stringify({ id: 'd-1', event: 'message.received', createdAt: new Date().toISOString(), message: { from: 'Customer <customer@example.org>', subject: 'Re: Invoice 2026-0042' } });
    const post = async (sig: string) => {
      for (let i = 0; ; i++) {
        try {
          return (await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-mailroom-signature': sig }, body })).status;
        } catch (e) {
          if (i > 50) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    const t = Math.floor(Date.now() / 1000);
    assert.equal(await post(signature(secret, t, body)), 204);
    assert.equal(await post(signature(secret, t, body)), 204);
    assert.equal(await post(signature('whsec_another', t, body)), 401);
    assert.equal(await post(signature(secret, t - 3600, body)), 401);
    assert.equal(out.match(/new mail: Customer <customer@example.org> Re: Invoice 2026-0042/g)?.length, 1, out);
  } finally {
    receiver.kill();
    await once(receiver, 'exit').catch(() => undefined);
  }
});

test('every JSON block of the README parses', () => {
  const json = blocks.filter((b) => b.lang === 'json');
  assert.ok(json.length > 0);
  for (const b of json) assert.doesNotThrow(() => JSON.parse(b.code), b.code);
});
