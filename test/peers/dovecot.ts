// A private Dovecot 2.3 instance (IMAP + submission) that accepts OAuth2 bearer tokens by RFC 7662 introspection
// and relays submitted mail to a local SMTP server. It shares nothing with a system Dovecot: own base_dir,
// state_dir, log and mail directories, only the listeners configured here, all on 127.0.0.1.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface DovecotOptions {
  tls: { certFile: string; keyFile: string };
  /** Introspection endpoint with client credentials in the userinfo, e.g. AuthServer.httpIntrospectionUrl. */
  introspectionUrl: string;
  /** Port of the SMTP server on 127.0.0.1 that submission relays to. */
  relayPort: number;
  /** Every one of these must be in the token's scope (Dovecot 2.3 checks all, for IMAP and submission alike).
   *  Default: the two Outlook mail scopes Mailroom requests. */
  scopes?: string[];
  /** Username/Password logins (AUTH PLAIN/LOGIN, IMAP LOGIN) from a password database beside the tokens. */
  passwords?: Record<string, string>;
  /**
   * IMAP and submission connections open at once that this Dovecot must carry (default: Dovecot's
   * own limits, about 100): a thousand mailboxes each watched with IDLE need more processes, and
   * more connections per login and imap process.
   */
  connections?: number;
  /**
   * Application (client-credentials) tokens: a Lua passdb asks this URL (AuthServer.httpMailAccessUrl) whether
   * the app may use the mailbox for the service, since the oauth2 passdb only compares the token's user.
   */
  mailAccessUrl?: string;
}

export interface Dovecot {
  imapPort: number;
  imapsPort: number;
  /** Plain submission; clients are expected to STARTTLS. */
  submissionPort: number;
  /** Submission over implicit TLS. */
  submissionsPort: number;
  dir: string;
  logFile: string;
  /** Delivers a message into the user's INBOX with dovecot-lda. */
  deliver(user: string, raw: Buffer | string): Promise<void>;
  stop(): Promise<void>;
}

const LDA = '/usr/lib/dovecot/dovecot-lda';
const MAIL_UID = 'nobody';
const MAIL_GID = 'nogroup';
const DEFAULT_SCOPES = ['https://outlook.office.com/SMTP.Send', 'https://outlook.office.com/IMAP.AccessAsUser.All'];

/** Distinct free ports: all are held open together so the kernel can't hand out one twice. */
async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => net.createServer());
  await Promise.all(servers.map((server) => new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  })));
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** Resolves true once the port accepts a connection and, if `greeting` is given, sends a line starting with it. */
function ready(port: number, greeting?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
    if (greeting === undefined) socket.once('connect', () => done(true));
    else socket.once('data', (chunk: Buffer) => done(chunk.toString('latin1').startsWith(greeting)));
  });
}

function run(cmd: string, args: string[], input: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited with ${code}: ${stderr.trim()}`))));
    child.stdin.end(input);
  });
}

async function ids(user: string, group: string): Promise<[number, number]> {
  const id = async (db: string, name: string) => {
    const { stdout } = await execFileAsync('getent', [db, name]);
    const value = Number(stdout.split(':')[2]);
    if (!Number.isInteger(value)) throw new Error(`getent ${db} ${name}: ${stdout}`);
    return value;
  };
  return [await id('passwd', user), await id('group', group)];
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

function config(dir: string, o: DovecotOptions, ports: Record<'imap' | 'imaps' | 'submission' | 'submissions', number>): string {
  return `# Written by test/peers/dovecot.ts
instance_name = ${dir.split('/').pop()}
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
listen = 127.0.0.1
protocols = imap submission
hostname = localhost
postmaster_address = postmaster@example.test
default_login_user = dovenull
default_internal_user = dovecot

ssl = yes
ssl_cert = <${o.tls.certFile}
ssl_key = <${o.tls.keyFile}
ssl_dh = </usr/share/dovecot/dh.pem
ssl_min_protocol = TLSv1.2

# No auth_debug: it would log tokens and the introspection credentials.
auth_mechanisms = xoauth2 oauthbearer${o.passwords ? ' plain login' : ''}
auth_verbose = yes
# Revocation at the authorization server must bite on the next login.
auth_cache_size = 0
# Failed logins answer at once (default: 2 s delay plus an anvil penalty of up to 15 s per IP).
auth_failure_delay = 0
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}

${o.passwords ? `passdb {
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%Lu ${dir}/users
}
` : ''}${o.mailAccessUrl ? `# App tokens (JWTs) first; anything else is no user here and goes on to the oauth2 passdb.
passdb {
  driver = lua
  mechanisms = xoauth2 oauthbearer
  args = file=${dir}/app-access.lua blocking=yes
}
` : ''}passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = ${dir}/oauth2.conf.ext
}
userdb {
  driver = static
  # allow_all_users: the oauth2 passdb can't look users up, which dovecot-lda needs.
  args = uid=${MAIL_UID} gid=${MAIL_GID} home=${dir}/mail/%Lu allow_all_users=yes
}
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  mailbox Sent {
    special_use = \\Sent
    auto = create
  }
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${ports.imap}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = ${ports.imaps}
    ssl = yes
  }
}
service submission-login {
  inet_listener submission {
    address = 127.0.0.1
    port = ${ports.submission}
  }
  inet_listener submissions {
    address = 127.0.0.1
    port = ${ports.submissions}
    ssl = yes
  }
}
${o.connections ? limits(o.connections) : ''}submission_relay_host = 127.0.0.1
submission_relay_port = ${o.relayPort}
submission_relay_trusted = no
submission_relay_ssl = no
`;
}

/**
 * Room for `n` connections: login processes that keep serving after the login (service_count = 0)
 * with many clients each, and one imap process per session (Dovecot gives each IMAP session its own
 * process whatever client_limit says: measured, 196 processes carried 196 sessions and refused the
 * rest); auth and anvil take default_client_limit.
 *
 * Each IDLE session's process watches its Maildir with an inotify instance, and the kernel allows 128
 * per user (fs.inotify.max_user_instances); every mailbox here is the user nobody's, so from the
 * 129th watched mailbox on Dovecot falls back to looking every mailbox_idle_check_interval (30 s by
 * default: measured, 128 of 200 mailboxes signalled new mail within 3 s, the other 72 after 19–22 s).
 * A production server raises that sysctl, as Dovecot's own log asks; a test peer does not change the
 * machine's kernel settings, so past the limit its IDLE sessions look once a second instead.
 */
function limits(n: number): string {
  return `default_client_limit = ${n * 4}
mailbox_idle_check_interval = 1 secs
default_process_limit = ${n + 200}
mail_max_userip_connections = 20
service imap-login {
  service_count = 0
  client_limit = ${n * 2}
  process_min_avail = 2
}
service submission-login {
  service_count = 0
  client_limit = ${n * 2}
}
service imap {
  process_limit = ${n + 100}
}
service submission {
  process_limit = ${n + 100}
}
`;
}

function oauth2Config(o: DovecotOptions): string {
  return `introspection_mode = post
introspection_url = ${o.introspectionUrl}
username_attribute = email
active_attribute = active
active_value = true
scope = ${(o.scopes ?? DEFAULT_SCOPES).join(' ')}
timeout_msecs = 5000
`;
}

/**
 * Exchange's decision for an app token: the peer knows the app's roles and mailbox permissions. Only
 * JWT-shaped tokens and plain mailbox names reach the shell, so nothing in them can be a shell word.
 */
function appAccessLua(url: string): string {
  return `local URL = ${JSON.stringify(url)}
function auth_passdb_lookup(req)
  return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, "no lookup"
end
function auth_password_verify(req, pass)
  if not pass:match("^[%w_-]+%.[%w_-]+%.[%w_-]+$") then
    return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, "not an app token"
  end
  local user = req.user or ""
  if not user:match("^[%w._+@-]+$") then
    return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, "unusable user name"
  end
  local service = req.service == "imap" and "imap" or "submission"
  local h = io.popen("curl -s -m 5 --data-urlencode token=" .. pass .. " --data-urlencode user=" .. user ..
    " --data-urlencode service=" .. service .. " " .. URL)
  local answer = h:read("*a") or ""
  h:close()
  if answer == "ok" then
    return dovecot.auth.PASSDB_RESULT_OK, ""
  end
  if answer:sub(1, 7) == "denied:" then
    req:log_info("app token refused: " .. answer)
    return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, answer
  end
  return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "mail access check failed"
end
`;
}

async function launch(dir: string, o: DovecotOptions) {
  const [imap = 0, imaps = 0, submission = 0, submissions = 0] = await freePorts(4);
  const ports = { imap, imaps, submission, submissions };
  const confFile = join(dir, 'dovecot.conf');
  await writeFile(confFile, config(dir, o, ports), { mode: 0o644 });

  const child = spawn('dovecot', ['-F', '-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));

  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && !spawnError && child.exitCode === null && child.signalCode === null) {
    // Login processes greet only once they are connected to auth; the TLS ports just have to accept.
    const up = await Promise.all([
      ready(ports.imap, '* OK'), ready(ports.submission, '220 '), ready(ports.imaps), ready(ports.submissions),
    ]);
    if (up.every(Boolean)) return { child, ports, confFile };
    await sleep(50);
  }
  if (!spawnError && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    await exited(child);
  }
  const log = await readFile(join(dir, 'dovecot.log'), 'utf8').catch(() => '');
  const reason = spawnError?.message ?? `exit ${child.exitCode ?? child.signalCode}`;
  const failure = new Error(`dovecot did not start (${reason}): ${stderr.trim()}\n${log.trim()}`);
  return { failure, addressInUse: /Address already in use/.test(stderr + log) };
}

export async function startDovecot(o: DovecotOptions): Promise<Dovecot> {
  const dir = await mkdtemp(join(tmpdir(), 'mailroom-peers-dovecot-'));
  try {
    // Login processes run as dovenull, auth as dovecot and mail as nobody: all must reach into the directory.
    await chmod(dir, 0o755);
    const mailDir = join(dir, 'mail');
    await mkdir(mailDir);
    await chown(mailDir, ...(await ids(MAIL_UID, MAIL_GID)));
    await writeFile(join(dir, 'oauth2.conf.ext'), oauth2Config(o), { mode: 0o644 });
    if (o.mailAccessUrl) await writeFile(join(dir, 'app-access.lua'), appAccessLua(o.mailAccessUrl), { mode: 0o644 });
    if (o.passwords) {
      await writeFile(join(dir, 'users'), Object.entries(o.passwords).map(([u, p]) => `${u.toLowerCase()}:{PLAIN}${p}\n`).join(''), { mode: 0o644 });
    }

    // The ports are probed free and then handed to Dovecot, so another process can take one in between.
    let started: Awaited<ReturnType<typeof launch>> | undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      started = await launch(dir, o);
      if (!('failure' in started) || !started.addressInUse) break;
    }
    if (!started || 'failure' in started) throw started?.failure ?? new Error('dovecot did not start');
    const { child, ports, confFile } = started;
    // A test process that dies without stop() must not leave a Dovecot or its files behind.
    const killOnExit = () => {
      child.kill('SIGTERM');
      try {
        // Dovecot is still shutting down and may write into its state dir meanwhile.
        rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
      } catch {
        // Best effort on the way out; stop() is the real cleanup.
      }
    };
    process.once('exit', killOnExit);

    return {
      imapPort: ports.imap,
      imapsPort: ports.imaps,
      submissionPort: ports.submission,
      submissionsPort: ports.submissions,
      dir,
      logFile: join(dir, 'dovecot.log'),
      deliver: (user, raw) => run(LDA, ['-c', confFile, '-d', user], raw),
      async stop() {
        process.off('exit', killOnExit);
        // The master terminates its login, auth and mail processes before it exits.
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited(child);
        clearTimeout(timer);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

