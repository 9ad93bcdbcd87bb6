import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { adminPasswordFromEnv, type Config, ConfigError, loadConfig } from '../config/config.ts';
import { normalizeEmail } from '../auth/admin-service.ts';
import { isMailroomError } from '../errors/errors.ts';
import { buildApp } from '../http/app.ts';
import { listenWhileStarting, type StartingServer } from '../http/starting-server.ts';
import pino from 'pino';
import { createLogger, type Logger, logWarnings } from '../logger.ts';
import { createMailroom, type Mailroom } from '../mailroom.ts';
import { buildWebIfNeeded } from './build-web.ts';
import { databaseName } from './database-name.ts';

const USAGE = `Usage: mailroom <command>

Commands:
  serve                                         Start the web UI and API (default)
  admin create --email E --password-stdin [--reset]
                                                Create an admin, the password read from standard input
                                                (or MAILROOM_ADMIN_PASSWORD, or --password P, which ps shows);
                                                --reset sets a new password for an existing one
  servers list                                  List outgoing mail servers and their token status
  servers test <id>                             Run Test Connection for one mail server
  apikey create --name N --scope S [--scope S] [--mail-server ID] [--incoming-server ID]
                                                Create an API key (printed once). Scopes: send,
                                                outbox:read, inbound:read, connect, admin (read =
                                                outbox:read + inbound:read); each flag repeatable or
                                                comma-separated;
                                                the server flags limit the key to those servers
  send --from F --to T --subject S --text X     Queue a message (delivered by the running server)

mailroom <command> --help prints a command's usage and opens nothing.

Configuration comes from the environment: PORT, HOST, BASE_URL, DATA_DIR, DATABASE_URL,
MAILROOM_SECRET_KEY, MICROSOFT_AUTHORITY_HOST, LOG_LEVEL, SMTP_SUBMISSION_PORT, SMTP_SUBMISSIONS_PORT,
SMTP_TLS_CERT, SMTP_TLS_KEY (see README).`;

/** SIGTERM to exit: submission sessions get 10 s to finish their message (CLOSE_TIMEOUT_MS) within it. */
const SHUTDOWN_CAP_MS = 12_000;

/** serve's log once it exists: a failed start is logged there too (every line of serve is JSON). */
let serveLogger: Logger | undefined;
let serving = false;

async function serve(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  serveLogger = logger;
  logWarnings(logger);
  // A bug in a background task must not end the API, the outbox and the SMTP listener with it:
  // logged with its stack (one line the tests look for), and the process carries on.
  process.on('unhandledRejection', (err) => logger.error({ event: 'process.unhandled', kind: 'unhandledRejection', err }, 'unhandled promise rejection'));
  process.on('uncaughtException', (err) => logger.error({ event: 'process.unhandled', kind: 'uncaughtException', err }, 'uncaught exception'));
  await buildWebIfNeeded(logger);
  // Until the database is open a signal ends the wait at once, and while Mailroom waits for an
  // unreachable PostgreSQL a placeholder answers HTTP (/healthz "starting", everything else 503).
  const waiting = new AbortController();
  const stopWaiting = (signal: NodeJS.Signals) => {
    logger.info({ event: 'stopping', signal }, 'shutting down before the database was reached');
    waiting.abort(new Error(`stopped by ${signal}`));
  };
  process.once('SIGINT', stopWaiting);
  process.once('SIGTERM', stopWaiting);
  let starting: StartingServer | undefined;
  let mr: Mailroom;
  try {
    mr = await createMailroom(config, logger, {
      deliveryThread: true,
      waitForDatabase: {
        signal: waiting.signal,
        async onWaiting(w) {
          starting ??= await listenWhileStarting(config.host, config.port, config.http);
          starting.waitingFor(`waiting for PostgreSQL at ${w.target} (${w.cause}, attempt ${w.attempt})`);
        },
      },
    });
  } catch (e) {
    if (!waiting.signal.aborted) throw e;
    await starting?.close();
    process.exit(0);
  } finally {
    process.off('SIGINT', stopWaiting);
    process.off('SIGTERM', stopWaiting);
  }
  if (waiting.signal.aborted) {
    await mr.close();
    process.exit(0);
  }
  const app = await buildApp(mr);
  await starting?.close();
  await app.listen({ port: config.port, host: config.host });
  for (const l of (await mr.submission?.listen()) ?? []) {
    logger.info({ event: 'submission.listening', host: config.host, port: l.port, implicitTls: l.implicitTls }, `SMTP submission on ${config.host}:${l.port} (${l.implicitTls ? 'implicit TLS' : config.submission?.tls ? 'STARTTLS' : 'no TLS, local clients only'})`);
  }
  mr.startWorkers();
  logger.info({ event: 'started', url: config.baseUrl.href, database: mr.database.dialect }, `Mailroom is running at ${config.baseUrl.href}`);
  if (!(await mr.admins.hasAdmin())) {
    const token = await mr.admins.issueSetupToken();
    // A one-time credential, in the log because the log is what whoever runs the process reads
    // (standard output, where it was printed before). At warn: someone must act, whatever LOG_LEVEL.
    const url = `${config.baseUrl.href.replace(/\/$/, '')}/setup?token=${token}`;
    logger.warn(
      { event: 'setup.link', url },
      `No admin exists yet. Open this one-time link within 24 hours to create the first admin: ${url} (or run: npx mailroom admin create --email you@example.com --password-stdin)`,
    );
  }
  const sweep = setInterval(() => void mr.admins.sweep().catch((e) => logger.warn({ err: e }, 'session sweep failed')), 3600_000);
  sweep.unref();
  const stop = async (signal: string) => {
    logger.info({ event: 'stopping', signal }, 'shutting down');
    clearInterval(sweep);
    // Whatever still waits (a peer that never answers, a stuck commit) does not keep this process
    // beside the next instance on the same DATA_DIR: it exits anyway after this long.
    const cap = setTimeout(() => {
      logger.error({ event: 'stopping.timeout', signal, afterMs: SHUTDOWN_CAP_MS }, `shutdown not finished after ${SHUTDOWN_CAP_MS / 1000} s: exiting anyway`);
      process.exit(1);
    }, SHUTDOWN_CAP_MS);
    cap.unref();
    try {
      // SMTP first: its sessions finish their message (and its commit) before anything else stops.
      await mr.submission?.close();
      await app.close();
      await mr.close();
    } catch (e) {
      logger.error({ event: 'stopping.failed', err: e }, 'shutdown failed');
      process.exit(1);
    }
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}

/** The first line of standard input (a password piped in: `printf %s "$PW" | mailroom admin create …`). */
async function readStdinLine(): Promise<string> {
  let data = '';
  for await (const chunk of process.stdin) {
    data += String(chunk);
    if (data.includes('\n')) break;
  }
  return data.split(/\r?\n/)[0] ?? '';
}

/**
 * What a command other than `serve` would create instead of opening the server's: run without the
 * server's DATA_DIR it would make a fresh database and secret key, and print an API key the running
 * server rejects (issue #20).
 */
function wouldCreate(config: Config): string[] {
  const missing: string[] = [];
  const file = config.databaseUrl.startsWith('sqlite:') ? config.databaseUrl.slice('sqlite:'.length) : null;
  if (file !== null && file !== ':memory:' && !existsSync(file)) missing.push(`the database ${file}`);
  if (!config.secretKey && !existsSync(join(config.dataDir, 'secret.key'))) missing.push(`the secret key ${join(config.dataDir, 'secret.key')}`);
  return missing;
}

/** A command that stops before doing anything: its message (cause and fix) is all the user needs, no stack. */
class CommandRefused extends Error {}

/** Who ran a command from the shell, for the Audit Log: the machine user beside "command line". */
export function commandLineActor(): string {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry for the uid (a container started with --user 12345).
    user = process.env.USER ?? `uid ${process.getuid?.() ?? '?'}`;
  }
  return `command line (${user})`;
}

async function withMailroom<T>(run: (mr: Awaited<ReturnType<typeof createMailroom>>) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const missing = wouldCreate(config);
  if (missing.length) {
    throw new CommandRefused(
      `Refusing to create a new, empty Mailroom: ${missing.join(' and ')} do${missing.length === 1 ? 'es' : ''} not exist (DATA_DIR is ${config.dataDir}).\n` +
        `Fix: run the command with the server's environment (its DATA_DIR, or DATABASE_URL and MAILROOM_SECRET_KEY), ` +
        `e.g. from the folder the server runs in or with DATA_DIR=/path/to/the/server/data. Only "mailroom serve" creates a new one.`,
    );
  }
  // stderr: stdout stays the command's answer (an API key, a list) for scripts.
  process.stderr.write(`Using the database ${databaseName(config.databaseUrl)}\n`);
  // The log goes to stderr with the other notes: stdout is the command's answer alone.
  const mr = await createMailroom(config, createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, pino.destination({ dest: 2, sync: true })));
  try {
    return await run(mr);
  } finally {
    await mr.close();
  }
}

/** Each command's own help: `mailroom <command> --help` prints it without opening anything. */
const COMMANDS: Record<string, { usage: string; options?: ParseArgsConfig['options']; positionals?: number }> = {
  serve: {
    usage: `Usage: mailroom serve

Starts the web UI, the API, the outbox and the incoming mail workers (and the SMTP listener when
SMTP_SUBMISSION_PORT or SMTP_SUBMISSIONS_PORT is set). The log is JSON lines on standard output.
Creates DATA_DIR, the SQLite database and the secret key on the first start.`,
  },
  'admin create': {
    usage: `Usage: mailroom admin create --email E --password-stdin [--reset]

Creates an admin. The password (at least 10 characters) is read from standard input with
--password-stdin, else from MAILROOM_ADMIN_PASSWORD, else from --password P (which ps shows).
--reset sets a new password for an existing admin.

  printf '%s' 'a long passphrase' | npx mailroom admin create --email admin@example.com --password-stdin`,
    options: { email: { type: 'string' }, password: { type: 'string' }, 'password-stdin': { type: 'boolean' }, reset: { type: 'boolean' } },
  },
  'servers list': {
    usage: `Usage: mailroom servers list

Lists the outgoing mail servers, a header row first: ID, NAME, USERNAME, AUTHENTICATE USING,
SENDS VIA (host:port, or Microsoft Graph) and TOKEN (valid, not_connected, reconnect_needed;
- for Username/Password and None).`,
  },
  'servers test': {
    usage: `Usage: mailroom servers test <id>

Runs Test Connection for one outgoing mail server (ids: mailroom servers list). Exit code 0 when it
passes, 1 with the server's answer and the fix when it fails. Recorded in the Audit Log.`,
    positionals: 1,
  },
  'apikey create': {
    usage: `Usage: mailroom apikey create --name N --scope S [--scope S] [--mail-server ID] [--incoming-server ID]

Creates an API key and prints it once. Scopes: send, outbox:read, inbound:read, admin (read =
outbox:read + inbound:read); each flag may be repeated or comma-separated. --mail-server and
--incoming-server limit the key to those servers. Recorded in the Audit Log.`,
    options: {
      name: { type: 'string' },
      scope: { type: 'string', multiple: true },
      'mail-server': { type: 'string', multiple: true },
      'incoming-server': { type: 'string', multiple: true },
    },
  },
  send: {
    usage: `Usage: mailroom send --from F --to T [--to T] [--cc C] --subject S (--text X | --html H) [--server ID]

Queues a message; the running server delivers it. Without --server the server is chosen as for the
API (Priority, then FROM Filtering).`,
    options: {
      from: { type: 'string' },
      to: { type: 'string', multiple: true },
      cc: { type: 'string', multiple: true },
      subject: { type: 'string' },
      text: { type: 'string' },
      html: { type: 'string' },
      server: { type: 'string' },
    },
  },
};

const GROUPS = new Set(Object.keys(COMMANDS).filter((k) => k.includes(' ')).map((k) => k.split(' ')[0]!));
const isHelp = (a: string | undefined) => a === '--help' || a === '-h';

/** A mistake on the command line: said once on stderr with the command's usage, exit code 2. */
class UsageError extends Error {
  constructor(message: string, readonly usage: string) {
    super(message);
  }
}

function groupUsage(group: string): string {
  return `Usage: mailroom ${group} <command>\n\n${Object.entries(COMMANDS)
    .filter(([k]) => k.startsWith(`${group} `))
    .map(([, c]) => `  ${c.usage.split('\n')[0]!.replace('Usage: ', '')}`)
    .join('\n')}\n\nmailroom ${group} <command> --help says more.`;
}

/** Which command argv names and its arguments; help asked for anywhere in it is answered instead. */
function resolveCommand(argv: string[]): { name: string; args: string[] } | { help: string } {
  const [first = 'serve', second] = argv;
  if (first === 'help' || isHelp(first)) {
    const about = argv.slice(1).join(' ');
    return { help: COMMANDS[about]?.usage ?? (GROUPS.has(about) ? groupUsage(about) : USAGE) };
  }
  if (GROUPS.has(first)) {
    const name = `${first} ${second ?? ''}`;
    if (!COMMANDS[name]) {
      if (second === undefined || isHelp(second)) return isHelp(second) ? { help: groupUsage(first) } : fail(`mailroom ${first} needs a command.`, groupUsage(first));
      return fail(`Unknown command: mailroom ${first} ${second}`, groupUsage(first));
    }
    return argv.slice(2).some(isHelp) ? { help: COMMANDS[name].usage } : { name, args: argv.slice(2) };
  }
  if (!COMMANDS[first]) return fail(`Unknown command: mailroom ${first}`, USAGE);
  return argv.slice(1).some(isHelp) ? { help: COMMANDS[first].usage } : { name: first, args: argv.slice(1) };
}

function fail(message: string, usage: string): never {
  throw new UsageError(message, usage);
}

/** The command's options and positionals, strictly: an unknown option or a stray word is a usage error. */
function parseCommand(name: string, args: string[]) {
  const c = COMMANDS[name]!;
  try {
    const r = parseArgs({ args, options: c.options ?? {}, allowPositionals: (c.positionals ?? 0) > 0, strict: true });
    if (r.positionals.length > (c.positionals ?? 0)) fail(`Unexpected argument: ${r.positionals[c.positionals ?? 0]}`, c.usage);
    if (r.positionals.length < (c.positionals ?? 0)) fail(`mailroom ${name} needs ${c.usage.split('\n')[0]!.split(' ').filter((w) => w.startsWith('<')).join(' ')}.`, c.usage);
    return r;
  } catch (e) {
    if ((e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) fail((e as Error).message, c.usage);
    throw e;
  }
}

/** Left-aligned columns under a header row, two spaces apart. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const resolved = resolveCommand(argv);
  if ('help' in resolved) {
    console.log(resolved.help);
    return 0;
  }
  const { name, args } = resolved;
  if (name === 'serve') {
    parseCommand(name, args);
    serving = true;
    await serve();
    return -1; // keep running
  }
  if (name === 'admin create') {
    const { values } = parseCommand(name, args) as { values: { email?: string; password?: string; 'password-stdin'?: boolean; reset?: boolean } };
    const password = values['password-stdin'] ? await readStdinLine() : (values.password ?? adminPasswordFromEnv());
    if (!values.email || !password) fail('admin create needs --email and a password: --password-stdin (read from standard input), MAILROOM_ADMIN_PASSWORD, or --password', COMMANDS[name]!.usage);
    const email = values.email;
    return withMailroom(async (mr) => {
      if (values.reset) {
        await mr.admins.setPassword(email, password);
        await mr.audit.record(commandLineActor(), 'admin.password_reset', { type: 'admin', id: normalizeEmail(email) });
        console.log(`Password changed for ${email}`);
      } else {
        const a = await mr.admins.createAdmin(email, password);
        await mr.audit.record(commandLineActor(), 'admin.created', { type: 'admin', id: a.id }, { email: a.email });
        console.log(`Admin created: ${a.email}`);
      }
      return 0;
    });
  }
  if (name === 'servers list') {
    parseCommand(name, args);
    return withMailroom(async (mr) => {
      const items = await mr.servers.list({ sending: false });
      if (!items.length) {
        console.log('No mail servers yet.');
        return 0;
      }
      console.log(
        table(
          ['ID', 'NAME', 'USERNAME', 'AUTHENTICATE USING', 'SENDS VIA', 'TOKEN'],
          items.map((s) => [
            s.id,
            s.name,
            s.username,
            s.authType,
            s.sendUsing === 'graph' ? 'Microsoft Graph' : `${s.smtpHost}:${s.smtpPort}`,
            // Methods without OAuth (Username/Password, None) have no token to show.
            `${s.redirectUri === null ? '-' : s.tokenStatus}${s.active ? '' : ' (inactive)'}`,
          ]),
        ),
      );
      return 0;
    });
  }
  if (name === 'servers test') {
    const id = parseCommand(name, args).positionals[0]!;
    return withMailroom(async (mr) => {
      const r = await mr.servers.test(id);
      await mr.audit.record(commandLineActor(), 'mail_server.tested', { type: 'mail_server', id }, { ok: r.ok, code: r.code });
      console.log(r.ok ? r.message : `Failed: ${r.message}${r.fix ? `\nFix: ${r.fix}` : ''}`);
      return r.ok ? 0 : 1;
    });
  }
  if (name === 'apikey create') {
    const { values } = parseCommand(name, args) as { values: { name?: string; scope?: string[]; 'mail-server'?: string[]; 'incoming-server'?: string[] } };
    const list = (v: string[] | undefined) => v?.flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean);
    const scopes = list(values.scope) ?? [];
    const mailServerIds = list(values['mail-server']);
    const incomingServerIds = list(values['incoming-server']);
    return withMailroom(async (mr) => {
      const k = await mr.apiKeys.create(
        {
          name: values.name,
          // One name goes as the shorthand `scope`, which also takes the old `read`.
          ...(scopes.length === 1 ? { scope: scopes[0] } : { scopes: scopes.flatMap((s) => (s === 'read' ? ['outbox:read', 'inbound:read'] : [s])) }),
          ...(mailServerIds && { mailServerIds }),
          ...(incomingServerIds && { incomingServerIds }),
        },
        null,
      );
      await mr.audit.record(commandLineActor(), 'apikey.created', { type: 'api_key', id: k.id }, { name: k.name, scopes: k.scopes, mailServerIds: k.mailServerIds, incomingServerIds: k.incomingServerIds });
      const limits = [k.mailServerIds && `outgoing servers ${k.mailServerIds.join(', ')}`, k.incomingServerIds && `incoming servers ${k.incomingServerIds.join(', ')}`].filter(Boolean);
      console.log(`API key "${k.name}" (${k.scopes.join(', ')}${limits.length ? `; only ${limits.join('; ')}` : ''}) created. Copy it now, it is not shown again:\n${k.key}`);
      return 0;
    });
  }
  // send
  const { values } = parseCommand(name, args) as { values: { from?: string; to?: string[]; cc?: string[]; subject?: string; text?: string; html?: string; server?: string } };
  return withMailroom(async (mr) => {
    const { message } = await mr.outbox.enqueue({
      ...(values.from !== undefined && { from: values.from }),
      ...(values.to !== undefined && { to: values.to }),
      ...(values.cc !== undefined && { cc: values.cc }),
      subject: values.subject ?? '',
      ...(values.text !== undefined && { text: values.text }),
      ...(values.html !== undefined && { html: values.html }),
      ...(values.server !== undefined && { mailServerId: values.server }),
    });
    console.log(`Queued ${message.id} via "${message.mailServerName}" (Message-ID ${message.messageId})`);
    return 0;
  });
}

/** A field error that only repeats the message (one field wrong) is not printed a second time. */
function explainError(e: { message: string; fix?: string | undefined; fields?: Record<string, string> | undefined }): string {
  const fields = Object.entries(e.fields ?? {}).filter(([, v]) => v !== e.message);
  return [e.message, ...(e.fix ? [`Fix: ${e.fix}`] : []), ...fields.map(([k, v]) => `  ${k}: ${v}`)].join('\n');
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (e: unknown) => {
    if (serving) {
      // A start that fails (configuration, database, port in use) is one JSON line like the rest.
      const logger = serveLogger ?? createLogger('info');
      if (e instanceof ConfigError) logger.fatal({ event: 'start.failed', code: 'MR_CONFIG' }, e.message);
      else if (isMailroomError(e)) logger.fatal({ event: 'start.failed', code: e.code, ...(e.fix && { fix: e.fix }) }, e.message);
      else logger.fatal({ event: 'start.failed', err: e }, `Mailroom could not start: ${(e as Error).message ?? String(e)}`);
      process.exit(1);
    }
    if (e instanceof UsageError) {
      console.error(`${e.message}\n\n${e.usage}`);
      process.exit(2);
    }
    if (e instanceof ConfigError || e instanceof CommandRefused) console.error(e.message);
    else if (isMailroomError(e)) console.error(explainError(e));
    else console.error(e);
    process.exit(1);
  },
);
