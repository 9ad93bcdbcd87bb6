import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { adminPasswordFromEnv, type Config, ConfigError, loadConfig } from '../config/config.ts';
import { normalizeEmail } from '../auth/admin-service.ts';
import { isMailroomError } from '../errors/errors.ts';
import { buildApp } from '../http/app.ts';
import { listenWhileStarting, type StartingServer } from '../http/starting-server.ts';
import { createLogger } from '../logger.ts';
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

Configuration comes from the environment: PORT, HOST, BASE_URL, DATA_DIR, DATABASE_URL,
MAILROOM_SECRET_KEY, MICROSOFT_AUTHORITY_HOST, LOG_LEVEL, SMTP_SUBMISSION_PORT, SMTP_SUBMISSIONS_PORT,
SMTP_TLS_CERT, SMTP_TLS_KEY (see README).`;

/** SIGTERM to exit: submission sessions get 10 s to finish their message (CLOSE_TIMEOUT_MS) within it. */
const SHUTDOWN_CAP_MS = 12_000;

async function serve(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  // A bug in a background task must not end the API, the outbox and the SMTP listener with it:
  // logged with its stack (one line the tests look for), and the process carries on.
  process.on('unhandledRejection', (err) => logger.error({ event: 'process.unhandled', kind: 'unhandledRejection', err }, 'unhandled promise rejection'));
  process.on('uncaughtException', (err) => logger.error({ event: 'process.unhandled', kind: 'uncaughtException', err }, 'uncaught exception'));
  await buildWebIfNeeded((m) => logger.info(m));
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
    // Printed, not logged: the link is a one-time credential for whoever runs the process.
    process.stdout.write(
      `\nNo admin exists yet. Open this one-time link within 24 hours to create the first admin:\n\n  ${config.baseUrl.href.replace(/\/$/, '')}/setup?token=${token}\n\n` +
        `(or run: npx mailroom admin create --email you@example.com --password-stdin)\n\n`,
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
  const mr = await createMailroom(config, createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel));
  try {
    return await run(mr);
  } finally {
    await mr.close();
  }
}

export async function main(argv: string[]): Promise<number> {
  const [command = 'serve', sub, ...rest] = argv;
  if (command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return 0;
  }
  if (command === 'serve') {
    await serve();
    return -1; // keep running
  }
  if (command === 'admin' && sub === 'create') {
    const { values } = parseArgs({
      args: rest,
      options: { email: { type: 'string' }, password: { type: 'string' }, 'password-stdin': { type: 'boolean' }, reset: { type: 'boolean' } },
    });
    const password = values['password-stdin'] ? await readStdinLine() : (values.password ?? adminPasswordFromEnv());
    if (!values.email || !password) {
      console.error('admin create needs --email and a password: --password-stdin (read from standard input), MAILROOM_ADMIN_PASSWORD, or --password');
      return 2;
    }
    return withMailroom(async (mr) => {
      if (values.reset) {
        await mr.admins.setPassword(values.email!, password);
        await mr.audit.record(commandLineActor(), 'admin.password_reset', { type: 'admin', id: normalizeEmail(values.email!) });
        console.log(`Password changed for ${values.email}`);
      } else {
        const a = await mr.admins.createAdmin(values.email!, password);
        await mr.audit.record(commandLineActor(), 'admin.created', { type: 'admin', id: a.id }, { email: a.email });
        console.log(`Admin created: ${a.email}`);
      }
      return 0;
    });
  }
  if (command === 'servers' && sub === 'list') {
    return withMailroom(async (mr) => {
      const items = await mr.servers.list({ sending: false });
      if (!items.length) console.log('No mail servers yet.');
      for (const s of items) console.log([s.id, s.name, s.username, `${s.smtpHost}:${s.smtpPort}`, s.tokenStatus].join('\t'));
      return 0;
    });
  }
  if (command === 'servers' && sub === 'test' && rest[0]) {
    return withMailroom(async (mr) => {
      const r = await mr.servers.test(rest[0]!);
      await mr.audit.record(commandLineActor(), 'mail_server.tested', { type: 'mail_server', id: rest[0]! }, { ok: r.ok, code: r.code });
      console.log(r.ok ? r.message : `Failed: ${r.message}${r.fix ? `\nFix: ${r.fix}` : ''}`);
      return r.ok ? 0 : 1;
    });
  }
  if (command === 'apikey' && sub === 'create') {
    const { values } = parseArgs({
      args: rest,
      options: {
        name: { type: 'string' },
        scope: { type: 'string', multiple: true },
        'mail-server': { type: 'string', multiple: true },
        'incoming-server': { type: 'string', multiple: true },
      },
    });
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
  if (command === 'send') {
    const { values } = parseArgs({
      args: [sub, ...rest].filter((a): a is string => a !== undefined),
      options: {
        from: { type: 'string' },
        to: { type: 'string', multiple: true },
        cc: { type: 'string', multiple: true },
        subject: { type: 'string' },
        text: { type: 'string' },
        html: { type: 'string' },
        server: { type: 'string' },
      },
    });
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
  console.error(USAGE);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (e: unknown) => {
    if (e instanceof ConfigError || e instanceof CommandRefused) console.error(e.message);
    else if (isMailroomError(e)) console.error(`${e.message}${e.fix ? `\nFix: ${e.fix}` : ''}${e.fields ? `\n${Object.entries(e.fields).map(([k, v]) => `  ${k}: ${v}`).join('\n')}` : ''}`);
    else console.error(e);
    process.exit(1);
  },
);
