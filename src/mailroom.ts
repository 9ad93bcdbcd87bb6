import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Config } from './config/config.ts';
import { setOutboundPolicy } from './net/outbound-policy.ts';
import { AdminService } from './auth/admin-service.ts';
import { LoginLimiter } from './auth/login-limiter.ts';
import { destinationOf, type Logger } from './logger.ts';
import { ApiKeyService } from './apikeys/api-key-service.ts';
import { AuditLog } from './audit/audit-log.ts';
import { startWakeups } from './storage/wakeups.ts';
import { LifecycleService } from './lifecycle/lifecycle-service.ts';
import { ConnectFlow } from './oauth/connect-flow.ts';
import { ConnectLinkService } from './connect/connect-link-service.ts';
import { IncomingServerService } from './inbound/incoming-server-service.ts';
import { InboundMessageService } from './inbound/inbound-message-service.ts';
import { BounceService } from './bounces/bounce-service.ts';
import { WebhookService } from './inbound/webhook-service.ts';
import { OutboxService } from './outbox/outbox-service.ts';
import { OutboxWorker } from './outbox/outbox-worker.ts';
import { DeliveryThread, type OutboxDelivery } from './outbox/delivery-thread.ts';
import { releaseHeld } from './storage/outbox-store.ts';
import { CertificateService } from './oauth/certificate-service.ts';
import { TokenManager } from './oauth/token-manager.ts';
import { createSealer, loadOrCreateKey, sealKeyCheck, verifyKeyCheck } from './secrets/sealer.ts';
import { settingOnce } from './storage/cluster-store.ts';
import { MailServerService } from './servers/mail-server-service.ts';
import { SubmissionListener } from './submission/submission-listener.ts';
import { type OpenedDatabase, openDatabase } from './storage/database.ts';
import { type DatabaseWaiting, whenDatabaseReachable } from './storage/wait-for-database.ts';
import { tightenDir } from './storage/private-files.ts';
import { ConnectionGates } from './smtp/connection-gate.ts';
import { sendStatus, sendStatuses } from './outbox/send-status.ts';

/** Everything a running Mailroom needs, wired once; HTTP, CLI and tests build on this. */
export interface Mailroom {
  config: Config;
  /** This instance's name in lease rows (several instances on one PostgreSQL). */
  instance: string;
  logger: Logger;
  database: OpenedDatabase;
  admins: AdminService;
  /** Failed-login limits, counted in the database. */
  logins: LoginLimiter;
  tokens: TokenManager;
  certificates: CertificateService;
  /** Connection slots per mailbox (and who holds them), shared by the outbox and the server tests. */
  connections: ConnectionGates;
  connect: ConnectFlow;
  connectLinks: ConnectLinkService;
  servers: MailServerService;
  apiKeys: ApiKeyService;
  outbox: OutboxService;
  /** The outbox's delivery: on this thread, or (`serve`, OUTBOX_THREAD) on a thread of its own. */
  worker: OutboxDelivery;
  incoming: IncomingServerService;
  inbound: InboundMessageService;
  webhooks: WebhookService;
  /** Delivery reports about outgoing messages, and suppressed addresses. */
  bounces: BounceService;
  audit: AuditLog;
  lifecycle: LifecycleService;
  /** The SMTP submission listener when SMTP_SUBMISSION_PORT or SMTP_SUBMISSIONS_PORT is set; `serve` starts it. */
  submission: SubmissionListener | null;
  /** Starts the background work: outbox delivery, IMAP fetching, webhook sending (as configured). */
  startWorkers(): void;
  close(): Promise<void>;
}

export interface StartOptions {
  now?: () => Date;
  /**
   * PostgreSQL (`serve`): wait for a database that cannot be reached yet, up to
   * DATABASE_STARTUP_TIMEOUT_SECONDS, instead of failing at once. `signal` ends the wait.
   */
  waitForDatabase?: { signal?: AbortSignal; onWaiting?: (w: DatabaseWaiting) => void | Promise<void> };
  /**
   * Deliver on a thread of its own when OUTBOX_THREAD allows (`serve`). Not with `now`: the thread
   * keeps the real clock.
   */
  deliveryThread?: boolean;
}

export async function createMailroom(config: Config, logger: Logger, opts: StartOptions = {}): Promise<Mailroom> {
  setOutboundPolicy(config.outbound);
  const key = loadOrCreateKey(config.secretKey, config.dataDir);
  const sealer = createSealer(key);
  const open = async () => {
    const database = await openDatabase(config.databaseUrl, config.databaseTimeouts);
    try {
      verifyKeyCheck(sealer, await settingOnce(database.db, 'secret_key_check', sealKeyCheck(sealer), new Date()), key);
    } catch (e) {
      await database.close();
      throw e;
    }
    return database;
  };
  const wait = opts.waitForDatabase;
  const database = wait && !config.databaseUrl.startsWith('sqlite:') ? await openWhenReachable(config, logger, wait, open) : await open();
  tightenDir(config.dataDir);
  const { db } = database;
  // Who holds a lease (a mailbox, the lifecycle jobs): host and pid for people, a random part for uniqueness.
  const instance = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  const now = opts.now ?? (() => new Date());
  // Built before the audit log it writes to; promotion is looked up late so the two can refer to each other.
  let certificates: CertificateService | undefined;
  const tokens = new TokenManager({
    db,
    dialect: database.dialect,
    sealer,
    config,
    now,
    onCertificateProven: async (server, thumbprintSha256) => {
      await certificates?.promote(server.id, thumbprintSha256);
    },
    onEvent: (e) => {
      const level = e.type === 'refreshed' ? 'debug' : 'warn';
      logger[level]({ event: `token.${e.type}`, mailServerId: e.serverId, code: e.code }, `access token ${e.type.replace('_', ' ')}`);
    },
  });
  // Wake-ups across instances (PostgreSQL LISTEN/NOTIFY); polling stays the fallback.
  const wakeups = startWakeups(db, config.databaseUrl, logger, { connectionTimeoutMs: config.databaseTimeouts.connectMs });
  // One count of open connections per mailbox: the outbox's pool and the server tests share it; on
  // PostgreSQL every instance does (lease rows that live as long as the outbox's claims).
  // Its pauses (Graph's Retry-After) are lease rows on either database.
  // With a delivery thread, the thread owns these counts and this thread asks it for its slots.
  const thread =
    opts.deliveryThread && config.outbox.thread && config.outbox.workerEnabled && !opts.now
      ? new DeliveryThread({
          data: { databaseUrl: config.databaseUrl, ...(database.turns && { turns: database.turns }), databaseTimeouts: config.databaseTimeouts, outbox: config.outbox, graphHost: config.microsoftGraph.host, outbound: config.outbound, logLevel: logger.level, instance },
          db,
          tokens,
          logger,
          log: destinationOf(logger),
        })
      : undefined;
  const gates = thread?.gates ?? new ConnectionGates(database.dialect === 'postgres' ? { db, instance, wakeups, leaseMs: config.outbox.leaseMs, now, logger } : undefined, db);
  const worker: OutboxDelivery = thread ?? new OutboxWorker({ db, dialect: database.dialect, config: config.outbox, graphHost: config.microsoftGraph.host, tokens, gates, logger, now });
  const inbound = new InboundMessageService({ db, dataDir: config.dataDir, baseUrl: config.baseUrl.href });
  // Webhooks for new mail go at once rather than at the sender's next 1 s look.
  let webhooksStarted = false;
  const incoming = new IncomingServerService({ db, sealer, config, tokens, logger, now, instance, gates, wakeups, onImported: () => webhooksStarted && webhooks.kick() });
  const webhooks = new WebhookService({ db, sealer, messages: inbound, logger, config: config.webhooks, now });
  const audit = new AuditLog(db, now);
  certificates = new CertificateService({ db, sealer, audit, logger, now });
  const outbox = new OutboxService({ db, config: config.outbox, now, onEnqueued: () => {
      worker.kick();
      wakeups.notify('mailroom_outbox');
    },
  });
  const bounces = new BounceService({ db, inbound, outbox, incoming, sealer, now });
  webhooks.bounces = bounces;
  const lifecycle = new LifecycleService({ db, tokens, outbox, audit, logger, baseUrl: config.baseUrl, now, instance, leaseMs: config.lifecycleLeaseMs, certificateProbeMs: config.certificateProbeMs });
  const apiKeys = new ApiKeyService(db, now);
  const servers = new MailServerService({
    db,
    dialect: database.dialect,
    sealer,
    config,
    tokens,
    gates,
    sendStatus: (server) => sendStatus(db, server, now()),
    sendStatuses: (servers) => sendStatuses(db, servers, now()),
    now,
    // A passing Test Connection means the admin fixed the server: held mail may go now.
    onHealthy: async (serverId) => {
      if (await releaseHeld(db, now(), serverId)) worker.kick();
    },
    // Send test email goes out at once; Emails lists it with the other messages.
    onTestEmail: (email, outcome) => outbox.recordTestEmail(email, outcome),
  });
  const submission = config.submission
    ? new SubmissionListener({
        config: config.submission,
        host: config.host,
        hostname: config.baseUrl.hostname,
        maxMessageBytes: config.outbox.maxMessageBytes,
        apiKeys,
        // Same limits as admin logins, counted apart: a misconfigured printer does not lock out the admin.
        limiter: new LoginLimiter(db, undefined, now, 'smtp'),
        outbox,
        logger,
      })
    : null;
  return {
    config,
    instance,
    logger,
    database,
    admins: new AdminService(db, now),
    logins: new LoginLimiter(db, undefined, now),
    tokens,
    certificates,
    connections: gates,
    connect: new ConnectFlow({ db, sealer, config, now }),
    servers,
    connectLinks: new ConnectLinkService({
      db,
      sealer,
      config,
      tokens,
      now,
      removeServer: (s) => (s.direction === 'incoming' ? incoming.remove(s.id) : servers.remove(s.id)),
    }),
    apiKeys,
    outbox,
    worker,
    incoming,
    inbound,
    webhooks,
    bounces,
    audit,
    lifecycle,
    submission,
    startWorkers() {
      if (config.outbox.workerEnabled) {
        worker.start();
        wakeups.on('mailroom_outbox', () => worker.kick());
      }
      lifecycle.start();
      if (config.inboundEnabled) {
        incoming.start();
        webhooks.start();
        webhooksStarted = true;
        wakeups.on('mailroom_webhooks', () => webhooks.kick());
        // A Graph notification received by any instance: the mailbox's holder runs delta.
        wakeups.on('mailroom_inbound', (payload) => incoming.onPush(payload));
      }
    },
    async close() {
      // First: messages in the middle of DATA are committed while the database is still open.
      await submission?.close();
      // Together: a fetch stalled on a silent server is aborted at once, not after the outbox has
      // finished its sends.
      await Promise.all([lifecycle.stop(), worker.stop(), incoming.stop()]);
      await webhooks.stop();
      await gates.close();
      await wakeups.close();
      await database.close();
    },
  };
}

/** Opens PostgreSQL once it can be reached, with a warning per failed attempt. */
async function openWhenReachable(config: Config, logger: Logger, wait: NonNullable<StartOptions['waitForDatabase']>, open: () => Promise<OpenedDatabase>): Promise<OpenedDatabase> {
  const started = Date.now();
  let attempts = 0;
  const database = await whenDatabaseReachable(
    config.databaseUrl,
    {
      timeoutMs: config.databaseTimeouts.startupMs,
      connectMs: config.databaseTimeouts.connectMs,
      ...(wait.signal && { signal: wait.signal }),
      onWaiting: async (w) => {
        attempts = w.attempt;
        logger.warn({ event: 'database.waiting', target: w.target, attempt: w.attempt, nextMs: w.nextMs, cause: w.cause }, `waiting for PostgreSQL at ${w.target}: ${w.cause} (attempt ${w.attempt}, next in ${Number((w.nextMs / 1000).toFixed(1))} s)`);
        await wait.onWaiting?.(w);
      },
    },
    open,
  );
  if (attempts > 0) logger.info({ event: 'database.reachable', attempts: attempts + 1, waitedMs: Date.now() - started }, `PostgreSQL reached after ${attempts + 1} attempts (${Math.round((Date.now() - started) / 1000)} s)`);
  return database;
}
