import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { isOutboundAllowEntry, type OutboundPolicy } from '../net/outbound-policy.ts';

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly baseUrl: URL;
  readonly dataDir: string;
  readonly databaseUrl: string;
  /** PostgreSQL: how long to wait for a connection and for one statement before answering 503 instead of hanging. */
  readonly databaseTimeouts: DatabaseTimeouts;
  /** base64 of 32 bytes, or null to use (or create) `${dataDir}/secret.key`. */
  readonly secretKey: Buffer | null;
  readonly microsoftAuthorityHost: string;
  /** MICROSOFT_CLIENT_ASSERTION_ALG: how certificate credentials sign (PS256 + x5t#S256, or RS256 + x5t). */
  readonly microsoftAssertionAlg: 'PS256' | 'RS256';
  /** Google's sign-in host (authorize) and token host; tests point both at a local peer. */
  readonly google: { readonly authorityHost: string; readonly tokenHost: string };
  /** Microsoft Graph's API host (national clouds, tests) and the resource its scopes name. */
  readonly microsoftGraph: { readonly host: string; readonly resource: string };
  /** Hosts SMTP may talk to without TLS besides loopback (an internal relay). */
  readonly plaintextHosts: readonly string[];
  readonly logLevel: string;
  readonly outbox: OutboxConfig;
  readonly webhooks: { readonly retryBaseMs: number; readonly maxAttempts: number; readonly timeoutMs: number };
  /** Start the IMAP fetch scheduler and the webhook sender in this process. */
  readonly inboundEnabled: boolean;
  /** Worker threads that parse fetched mail; 0 parses on the main thread. */
  readonly inboundParseThreads: number;
  /**
   * INBOUND_MAX_MESSAGE_MB (twice MAX_MESSAGE_MB): the largest raw message Mailroom reads from a
   * mail server or Graph. A larger one is not read past this; it is recorded as refused and the
   * fetch goes on past it. Also bounds an IMAP literal.
   */
  readonly inboundMaxMessageBytes: number;
  /**
   * IMAP_TIMEOUT_SECONDS (60): an IMAP server that sends nothing this long while Mailroom waits for
   * its answer, or a FETCH that brings no new message this long, is given up on.
   */
  readonly imapTimeoutMs: number;
  /**
   * How long an instance's claim on a mailbox lasts without renewal (renewed every 5 s while it
   * lives): another instance takes a dead one's mailboxes over within this plus 5 s.
   */
  readonly inboundLeaseMs: number;
  /**
   * INBOUND_MAX_IDLE_CONNECTIONS (1000): IMAP IDLE connections this instance keeps open; the
   * mailboxes beyond it are polled at their interval, the longest-waiting first.
   */
  readonly inboundMaxIdle: number;
  /** INBOUND_MAX_CONCURRENT_FETCHES (16): fetches (each an IMAP session or Graph delta run) at once per instance. */
  readonly inboundMaxFetches: number;
  /** Microsoft Graph change notifications for Graph incoming servers (issue #24). */
  readonly graphPush: GraphPushConfig;
  /**
   * How long the claim on the lifecycle jobs (keep-alive, expiry warnings, reconnect alerts) lasts
   * without renewal (renewed every third of it): another instance takes the jobs over within this.
   */
  readonly lifecycleLeaseMs: number;
  /** CERTIFICATE_PROBE_SECONDS: how often a rolled certificate waiting to be proven is tried with a token request. */
  readonly certificateProbeMs: number;
  readonly http: HttpConfig;
  /** The SMTP submission listener, or null when neither SMTP port is set (the default). */
  readonly submission: SubmissionConfig | null;
  /** OUTBOUND_BLOCK_PRIVATE, OUTBOUND_ALLOW: where webhooks, SMTP and IMAP may connect to. */
  readonly outbound: OutboundPolicy;
  /** Connect links (personal mailboxes): null when CONNECT_RETURN_URLS is not set (links are off). */
  readonly connect: ConnectConfig | null;
}

export interface ConnectConfig {
  /** CONNECT_RETURN_URLS: a return URL must have one's origin and start with its path. */
  readonly returnUrls: readonly URL[];
  /** CONNECT_RESULT_SECRET: the HMAC-SHA256 key of the result the return URL receives. */
  readonly resultSecret: Buffer;
  /** CONNECT_APP_NAME: the application the connect page names ("… asks to send and receive mail as you"). */
  readonly appName: string | null;
}

export interface DatabaseTimeouts {
  /** DATABASE_CONNECT_TIMEOUT_SECONDS (5): a connection not made by then fails. */
  readonly connectMs: number;
  /** DATABASE_STATEMENT_TIMEOUT_SECONDS (30): PostgreSQL cancels a statement running longer. */
  readonly statementMs: number;
  /**
   * DATABASE_STARTUP_TIMEOUT_SECONDS (300): how long `serve` waits at start for a PostgreSQL it
   * cannot reach before it gives up; 0 waits as long as it takes.
   */
  readonly startupMs: number;
}

export interface SubmissionConfig {
  /** 587-style: plain connect, STARTTLS before AUTH. */
  readonly starttlsPort: number | null;
  /** 465-style: TLS from the first byte. */
  readonly tlsPort: number | null;
  /** Certificate chain and key (PEM), read from SMTP_TLS_CERT / SMTP_TLS_KEY at start. */
  readonly tls: { readonly cert: Buffer; readonly key: Buffer } | null;
  /** AUTH without TLS, only for clients connecting from a loopback address. */
  readonly allowInsecureAuthOnLoopback: boolean;
  /** SMTP_MAX_CLIENTS (1000): connections over both ports; more are answered 421 and closed. */
  readonly maxClients: number;
  /** SMTP_MAX_CONNECTIONS_PER_ADDRESS (50): connections from one client address; more get 421. */
  readonly maxConnectionsPerAddress: number;
  /** SMTP_REVERSE_LOOKUP (false): look up each client's host name (PTR) for the logs; off, no DNS query per connection. */
  readonly reverseLookup: boolean;
  /** SMTP_IDLE_TIMEOUT_SECONDS (60): a connection silent this long is closed (also bounds a TLS handshake). */
  readonly idleTimeoutMs: number;
}

export interface HttpConfig {
  /**
   * Whose X-Forwarded-For / -Proto / -Host to believe: nobody (false), the last N hops, or the proxies
   * at these addresses/CIDRs. Anything else would let any client choose its own address.
   */
  readonly trustProxy: false | number | readonly string[];
  /** /metrics without a key. */
  readonly metricsPublic: boolean;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  /** Open connections one client address may hold (trusted proxies are not capped). */
  readonly maxConnectionsPerAddress: number;
}

export interface OutboxConfig {
  /** Messages in flight at once, over all servers. */
  readonly concurrency: number;
  /** OUTBOX_INFLIGHT_MB: stored bytes of the messages in flight at once (a larger one goes alone). */
  readonly inflightBytes: number;
  /** SMTP connections kept open per mail server. */
  readonly poolSize: number;
  readonly maxAttempts: number;
  readonly maxAgeMs: number;
  /** First retry delay; doubles per attempt, capped at an hour, with jitter. */
  readonly retryBaseMs: number;
  /**
   * How long a claim lasts without renewal; the worker renews its claims every third of it while it
   * sends, so this is how fast a dead instance's messages move to another one.
   */
  readonly leaseMs: number;
  /** How long an idle worker waits before looking again when no wake-up comes (OUTBOX_POLL_SECONDS). */
  readonly pollMs: number;
  readonly maxMessageBytes: number;
  /** Start the delivery worker in this process. */
  readonly workerEnabled: boolean;
  /** OUTBOX_THREAD (on): `serve` runs the delivery worker on a thread of its own, beside the API's event loop. */
  readonly thread: boolean;
  /**
   * Postfix's in_flow_delay: while a mailbox (one without a messages-per-minute limit) has more than
   * OUTBOX_IN_FLOW_BACKLOG (200) messages due and not yet being sent, a new one for it waits up to
   * OUTBOX_IN_FLOW_DELAY_SECONDS (1; 0: never) before it is accepted, so accepting does not starve
   * delivering. Only where this process delivers (OUTBOX_WORKER).
   */
  readonly inFlowBacklog: number;
  readonly inFlowDelayMs: number;
  /** SMTP_MAX_OPEN_CONNECTIONS (500): outgoing SMTP connections open at once in this instance, over all mailboxes. */
  readonly maxOpenConnections: number;
  /** SMTP_IDLE_CLOSE_SECONDS (30): an outgoing SMTP connection with nothing to send is closed after this. */
  readonly idleCloseMs: number;
}

export class ConfigError extends Error {
  readonly code = 'MR_CONFIG_INVALID';
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * Reads the environment once. Every problem is collected so the operator fixes them in one go.
 * Nothing else in the code base reads process.env.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const problems: string[] = [];
  const get = (k: string) => {
    const v = env[k];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };

  let port = 8080;
  const rawPort = get('PORT');
  if (rawPort !== undefined) {
    port = Number(rawPort);
    if (!/^\d+$/.test(rawPort) || port < 1 || port > 65535) {
      problems.push(`PORT must be a whole number from 1 to 65535 (got "${rawPort}")`);
      port = 8080;
    }
  }

  const host = get('HOST') ?? '127.0.0.1';

  let baseUrl = new URL(`http://localhost:${port}`);
  const rawBase = get('BASE_URL');
  if (rawBase !== undefined) {
    try {
      baseUrl = new URL(rawBase);
      if (baseUrl.protocol !== 'http:' && baseUrl.protocol !== 'https:') {
        problems.push(`BASE_URL must start with http:// or https:// (got "${rawBase}")`);
      } else if (baseUrl.search || baseUrl.hash) {
        problems.push(`BASE_URL must not have a query or fragment (got "${rawBase}")`);
      }
    } catch {
      problems.push(`BASE_URL must be an absolute URL such as https://mail.example.com (got "${rawBase}")`);
    }
  }
  // Redirect URIs are built by appending paths; a trailing slash would make them differ from Azure's.
  baseUrl = new URL(baseUrl.href.replace(/\/+$/, ''));

  const dataDir = resolve(get('DATA_DIR') ?? './data');
  const databaseUrl = get('DATABASE_URL') ?? `sqlite:${resolve(dataDir, 'mailroom.sqlite')}`;
  if (!/^(sqlite:|postgres:\/\/|postgresql:\/\/)/.test(databaseUrl)) {
    problems.push(`DATABASE_URL must start with sqlite: or postgres:// (got "${databaseUrl}")`);
  }

  let secretKey: Buffer | null = null;
  const rawKey = get('MAILROOM_SECRET_KEY');
  if (rawKey !== undefined) {
    const buf = Buffer.from(rawKey, 'base64');
    if (buf.length !== 32 || buf.toString('base64').replace(/=+$/, '') !== rawKey.replace(/=+$/, '')) {
      problems.push('MAILROOM_SECRET_KEY must be the base64 encoding of exactly 32 random bytes (try: openssl rand -base64 32)');
    } else {
      secretKey = buf;
    }
  }

  // Instances sharing one PostgreSQL must open each other's sealed secrets: a key file made by each
  // instance in its own DATA_DIR would differ on every machine.
  if (rawKey === undefined && /^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push('MAILROOM_SECRET_KEY is required with a PostgreSQL DATABASE_URL: give every instance the same key (generate one with: openssl rand -base64 32)');
  }

  const httpsOrigin = (name: string, def: string, example: string): string => {
    const raw = get(name);
    if (raw === undefined) return def;
    try {
      const u = new URL(raw);
      if (u.protocol !== 'https:') problems.push(`${name} must use https:// (got "${raw}")`);
      return u.origin;
    } catch {
      problems.push(`${name} must be a URL such as ${example} (got "${raw}")`);
      return def;
    }
  };
  const microsoftAuthorityHost = httpsOrigin('MICROSOFT_AUTHORITY_HOST', 'https://login.microsoftonline.com', 'https://login.microsoftonline.us');
  const assertionAlg = (get('MICROSOFT_CLIENT_ASSERTION_ALG') ?? 'PS256').toUpperCase();
  if (assertionAlg !== 'PS256' && assertionAlg !== 'RS256') problems.push(`MICROSOFT_CLIENT_ASSERTION_ALG must be PS256 or RS256 (got "${get('MICROSOFT_CLIENT_ASSERTION_ALG')}")`);
  const microsoftAssertionAlg: 'PS256' | 'RS256' = assertionAlg === 'RS256' ? 'RS256' : 'PS256';
  const google = Object.freeze({
    authorityHost: httpsOrigin('GOOGLE_AUTHORITY_HOST', 'https://accounts.google.com', 'https://accounts.google.com'),
    tokenHost: httpsOrigin('GOOGLE_TOKEN_HOST', 'https://oauth2.googleapis.com', 'https://oauth2.googleapis.com'),
  });
  // Plain-text SMTP (Connection Security: None) beyond loopback: hosts the operator names here.
  const plaintextHosts = Object.freeze((get('MAIL_PLAINTEXT_HOSTS') ?? '').split(',').map((h) => h.trim().toLowerCase()).filter(Boolean));

  const graphHost = httpsOrigin('MICROSOFT_GRAPH_HOST', 'https://graph.microsoft.com', 'https://graph.microsoft.us');
  // National clouds name their own Graph resource in the scopes; any other host (a test stand-in)
  // serves the global one.
  const graphHostname = new URL(graphHost).hostname;
  const microsoftGraph = Object.freeze({
    host: graphHost,
    resource: ['graph.microsoft.us', 'dod-graph.microsoft.us', 'microsoftgraph.chinacloudapi.cn'].includes(graphHostname) ? `https://${graphHostname}` : 'https://graph.microsoft.com',
  });

  const logLevel = get('LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got "${logLevel}")`);
  }

  const num = (name: string, def: number, min: number, max: number): number => {
    const raw = get(name);
    if (raw === undefined) return def;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max) {
      problems.push(`${name} must be a number from ${min} to ${max} (got "${raw}")`);
      return def;
    }
    return n;
  };
  const outbox: OutboxConfig = Object.freeze({
    concurrency: Math.floor(num('OUTBOX_CONCURRENCY', 16, 1, 1000)),
    inflightBytes: Math.floor(num('OUTBOX_INFLIGHT_MB', 64, 1, 100_000) * 1024 * 1024),
    poolSize: Math.floor(num('OUTBOX_POOL_SIZE', 4, 1, 100)),
    maxAttempts: Math.floor(num('OUTBOX_MAX_ATTEMPTS', 10, 1, 1000)),
    maxAgeMs: num('OUTBOX_MAX_AGE_HOURS', 72, 0.001, 24 * 365) * 3600_000,
    retryBaseMs: num('OUTBOX_RETRY_BASE_SECONDS', 30, 0.01, 86400) * 1000,
    leaseMs: num('OUTBOX_LEASE_SECONDS', 15, 1, 86400) * 1000,
    pollMs: num('OUTBOX_POLL_SECONDS', 0.5, 0.05, 3600) * 1000,
    maxMessageBytes: Math.floor(num('MAX_MESSAGE_MB', 25, 0.001, 150) * 1024 * 1024),
    workerEnabled: (get('OUTBOX_WORKER') ?? 'on') !== 'off',
    thread: (get('OUTBOX_THREAD') ?? 'on') !== 'off',
    maxOpenConnections: Math.floor(num('SMTP_MAX_OPEN_CONNECTIONS', 500, 1, 100_000)),
    idleCloseMs: num('SMTP_IDLE_CLOSE_SECONDS', 30, 0.1, 3600) * 1000,
    inFlowBacklog: Math.floor(num('OUTBOX_IN_FLOW_BACKLOG', 200, 1, 1_000_000)),
    inFlowDelayMs: num('OUTBOX_IN_FLOW_DELAY_SECONDS', 1, 0, 60) * 1000,
  });

  const webhooks = Object.freeze({
    retryBaseMs: num('WEBHOOK_RETRY_BASE_SECONDS', 10, 0.01, 86400) * 1000,
    maxAttempts: Math.floor(num('WEBHOOK_MAX_ATTEMPTS', 12, 1, 100)),
    timeoutMs: num('WEBHOOK_TIMEOUT_SECONDS', 10, 1, 300) * 1000,
  });
  const inboundEnabled = (get('INBOUND_WORKER') ?? 'on') !== 'off';
  const inboundLeaseMs = num('INBOUND_LEASE_SECONDS', 25, 6, 3600) * 1000;
  const inboundMaxIdle = Math.floor(num('INBOUND_MAX_IDLE_CONNECTIONS', 1000, 0, 100_000));
  const inboundMaxFetches = Math.floor(num('INBOUND_MAX_CONCURRENT_FETCHES', 16, 1, 1000));
  const databaseTimeouts: DatabaseTimeouts = Object.freeze({
    connectMs: num('DATABASE_CONNECT_TIMEOUT_SECONDS', 5, 0.5, 600) * 1000,
    statementMs: num('DATABASE_STATEMENT_TIMEOUT_SECONDS', 30, 1, 3600) * 1000,
    startupMs: num('DATABASE_STARTUP_TIMEOUT_SECONDS', 300, 0, 86400) * 1000,
  });
  // Graph posts change notifications only to a public https URL. Plain http is accepted only in an
  // explicit NOTIFICATION_BASE_URL on a loopback host, for the test stand-in: Microsoft never reaches
  // it, and a BASE_URL of http://localhost behind a proxy must not cost a refused subscription a mailbox.
  let notificationBase = baseUrl;
  const rawNotify = get('NOTIFICATION_BASE_URL');
  if (rawNotify !== undefined) {
    try {
      notificationBase = new URL(rawNotify.replace(/\/+$/, ''));
      if (notificationBase.protocol !== 'http:' && notificationBase.protocol !== 'https:') problems.push(`NOTIFICATION_BASE_URL must start with https:// (got "${rawNotify}")`);
      else if (notificationBase.search || notificationBase.hash) problems.push(`NOTIFICATION_BASE_URL must not have a query or fragment (got "${rawNotify}")`);
    } catch {
      problems.push(`NOTIFICATION_BASE_URL must be an absolute URL such as https://hooks.example.com (got "${rawNotify}")`);
    }
  }
  const loopbackHost = rawNotify !== undefined && ['127.0.0.1', 'localhost', '[::1]'].includes(notificationBase.hostname);
  const pushOff = get('GRAPH_PUSH') === 'off'
    ? 'GRAPH_PUSH is off: Graph mailboxes are polled at their interval.'
    : notificationBase.protocol === 'https:' || loopbackHost
      ? null
      : `${rawNotify !== undefined ? 'NOTIFICATION_BASE_URL' : 'BASE_URL'} (${notificationBase.origin}) is not https: Microsoft Graph sends change notifications only to a public https URL. Set BASE_URL, or NOTIFICATION_BASE_URL when notifications must arrive elsewhere, to the https address Microsoft can reach.`;
  const graphPush: GraphPushConfig = Object.freeze({
    notificationBase: pushOff ? null : notificationBase.href.replace(/\/+$/, ''),
    offReason: pushOff,
    pollMs: num('GRAPH_PUSH_POLL_MINUTES', 15, 1, 1440) * 60_000,
    retryMs: num('GRAPH_PUSH_RETRY_SECONDS', 300, 1, 86400) * 1000,
    subscriptionMinutes: num('GRAPH_SUBSCRIPTION_MINUTES', GRAPH_MESSAGE_SUBSCRIPTION_MAX_MINUTES, 1, GRAPH_MESSAGE_SUBSCRIPTION_MAX_MINUTES),
  });
  const lifecycleLeaseMs = num('LIFECYCLE_LEASE_SECONDS', 25, 3, 3600) * 1000;
  const certificateProbeMs = num('CERTIFICATE_PROBE_SECONDS', 300, 1, 86400) * 1000;
  const inboundParseThreads = Math.floor(num('INBOUND_PARSE_THREADS', Math.max(1, availableParallelism() - 1), 0, 64));
  // Twice the largest outgoing message: a message of MAX_MESSAGE_MB of attachments is about 1.37
  // times that once base64-encoded, plus its headers and text.
  const inboundMaxMessageBytes = Math.floor(num('INBOUND_MAX_MESSAGE_MB', (outbox.maxMessageBytes * 2) / 1024 / 1024, 0.001, 1024) * 1024 * 1024);

  const imapTimeoutMs = num('IMAP_TIMEOUT_SECONDS', 60, 1, 3600) * 1000;

  let trustProxy: HttpConfig['trustProxy'] = false;
  const rawTrust = get('TRUST_PROXY');
  if (rawTrust !== undefined && !['off', 'false', 'no', '0'].includes(rawTrust.toLowerCase())) {
    if (/^\d{1,2}$/.test(rawTrust)) {
      trustProxy = Number(rawTrust);
    } else {
      const list = rawTrust.split(',').map((x) => x.trim()).filter(Boolean);
      const bad = list.filter((x) => !isAddressOrCidr(x));
      if (bad.length || list.length === 0) {
        problems.push(`TRUST_PROXY must be off, a hop count (1, 2…) or a comma-separated list of proxy addresses or CIDRs such as 10.0.0.5,10.1.0.0/16 (not understood: "${bad.join('", "') || rawTrust}")`);
      } else {
        trustProxy = Object.freeze(list);
      }
    }
  }
  const rawMetrics = (get('METRICS_PUBLIC') ?? 'false').toLowerCase();
  if (!['true', 'false'].includes(rawMetrics)) problems.push(`METRICS_PUBLIC must be true or false (got "${rawMetrics}")`);
  const http: HttpConfig = Object.freeze({
    trustProxy,
    metricsPublic: rawMetrics === 'true',
    headersTimeoutMs: num('HTTP_HEADERS_TIMEOUT_SECONDS', 10, 1, 600) * 1000,
    requestTimeoutMs: num('HTTP_REQUEST_TIMEOUT_SECONDS', 300, 1, 3600) * 1000,
    keepAliveTimeoutMs: num('HTTP_KEEP_ALIVE_TIMEOUT_SECONDS', 65, 1, 3600) * 1000,
    maxConnectionsPerAddress: Math.floor(num('HTTP_MAX_CONNECTIONS_PER_ADDRESS', 256, 1, 100_000)),
  });

  const submission = submissionConfig(get, port, problems);

  // Outbound policy: metadata and link-local are always refused; loopback and private ranges only
  // with OUTBOUND_BLOCK_PRIVATE=true. OUTBOUND_ALLOW names the exceptions.
  const rawBlockPrivate = (get('OUTBOUND_BLOCK_PRIVATE') ?? 'false').toLowerCase();
  if (!['true', 'false'].includes(rawBlockPrivate)) problems.push(`OUTBOUND_BLOCK_PRIVATE must be true or false (got "${rawBlockPrivate}")`);
  const allow = (get('OUTBOUND_ALLOW') ?? '').split(',').map((x) => x.trim().toLowerCase()).filter(Boolean);
  const badAllow = allow.filter((x) => !isOutboundAllowEntry(x));
  if (badAllow.length) problems.push(`OUTBOUND_ALLOW must be a comma-separated list of host names, addresses or CIDRs such as erp.internal,10.0.0.0/8 (not understood: "${badAllow.join('", "')}")`);
  const outbound: OutboundPolicy = Object.freeze({ blockPrivate: rawBlockPrivate === 'true', allow: Object.freeze(allow) });

  const connect = connectConfig(get, problems);

  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({ port, host, baseUrl, dataDir, databaseUrl, databaseTimeouts, secretKey, microsoftAuthorityHost, microsoftAssertionAlg, google, microsoftGraph, plaintextHosts, logLevel, outbox, webhooks, inboundEnabled, inboundParseThreads, inboundMaxMessageBytes, imapTimeoutMs, inboundLeaseMs, inboundMaxIdle, inboundMaxFetches, graphPush, lifecycleLeaseMs, certificateProbeMs, http, submission, outbound, connect });
}

const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '[::1]'];

function connectConfig(get: (k: string) => string | undefined, problems: string[]): ConnectConfig | null {
  const raw = get('CONNECT_RETURN_URLS');
  // CONNECT_SIGNING_SECRET: the name the design first gave it; kept as an alias.
  const secretName = get('CONNECT_RESULT_SECRET') !== undefined ? 'CONNECT_RESULT_SECRET' : 'CONNECT_SIGNING_SECRET';
  const secret = get(secretName);
  if (raw === undefined) {
    if (secret !== undefined) problems.push(`${secretName} is set but CONNECT_RETURN_URLS is not: connect links need the return URLs they may send people back to`);
    return null;
  }
  const returnUrls: URL[] = [];
  for (const entry of raw.split(',').map((x) => x.trim()).filter(Boolean)) {
    let u: URL;
    try {
      u = new URL(entry);
    } catch {
      problems.push(`CONNECT_RETURN_URLS: "${entry}" is not an absolute URL such as https://erp.example.com/mail/connected`);
      continue;
    }
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && LOOPBACK_HOSTS.includes(u.hostname))) problems.push(`CONNECT_RETURN_URLS: "${entry}" must use https:// (http:// only for localhost): the signed result travels in it`);
    else if (u.search || u.hash || u.username || u.password) problems.push(`CONNECT_RETURN_URLS: "${entry}" must be an origin and path, without query, fragment or credentials`);
    else returnUrls.push(u);
  }
  if (!returnUrls.length && !problems.some((p) => p.startsWith('CONNECT_RETURN_URLS'))) problems.push('CONNECT_RETURN_URLS must list at least one URL');
  if (secret === undefined) problems.push('CONNECT_RESULT_SECRET is required with CONNECT_RETURN_URLS: the ERP checks the result it receives with it (generate one with: openssl rand -hex 32)');
  else if (Buffer.byteLength(secret) < 32) problems.push(`${secretName} must be at least 32 characters (generate one with: openssl rand -hex 32)`);
  return Object.freeze({ returnUrls: Object.freeze(returnUrls), resultSecret: Buffer.from(secret ?? ''), appName: get('CONNECT_APP_NAME') ?? null });
}

/** Whether `url` is one of the configured return URLs: same origin, and its path under one's path. */
export function returnUrlAllowed(connect: ConnectConfig, url: URL): boolean {
  return connect.returnUrls.some((r) => {
    if (r.origin !== url.origin) return false;
    const prefix = r.pathname;
    return url.pathname === prefix || url.pathname.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`);
  });
}

function submissionConfig(get: (k: string) => string | undefined, httpPort: number, problems: string[]): SubmissionConfig | null {
  const portOf = (name: string): number | null => {
    const raw = get(name);
    if (raw === undefined) return null;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < 1 || n > 65535) {
      problems.push(`${name} must be a whole number from 1 to 65535 (got "${raw}")`);
      return null;
    }
    if (n === httpPort) problems.push(`${name} must differ from PORT (both are ${n})`);
    return n;
  };
  const starttlsPort = portOf('SMTP_SUBMISSION_PORT');
  const tlsPort = portOf('SMTP_SUBMISSIONS_PORT');
  if (starttlsPort !== null && starttlsPort === tlsPort) problems.push(`SMTP_SUBMISSION_PORT and SMTP_SUBMISSIONS_PORT must differ (both are ${tlsPort})`);
  const rawInsecure = (get('SMTP_ALLOW_INSECURE_AUTH_ON_LOOPBACK') ?? 'false').toLowerCase();
  if (!['true', 'false'].includes(rawInsecure)) problems.push(`SMTP_ALLOW_INSECURE_AUTH_ON_LOOPBACK must be true or false (got "${rawInsecure}")`);
  const allowInsecureAuthOnLoopback = rawInsecure === 'true';
  const whole = (name: string, def: number, min: number, max: number): number => {
    const raw = get(name);
    if (raw === undefined) return def;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name} must be a whole number from ${min} to ${max} (got "${raw}")`);
      return def;
    }
    return Number(raw);
  };
  const maxClients = whole('SMTP_MAX_CLIENTS', 1000, 1, 100_000);
  const maxConnectionsPerAddress = whole('SMTP_MAX_CONNECTIONS_PER_ADDRESS', 50, 1, 100_000);
  const idleTimeoutMs = whole('SMTP_IDLE_TIMEOUT_SECONDS', 60, 5, 3600) * 1000;
  const rawReverse = (get('SMTP_REVERSE_LOOKUP') ?? 'false').toLowerCase();
  if (!['true', 'false'].includes(rawReverse)) problems.push(`SMTP_REVERSE_LOOKUP must be true or false (got "${rawReverse}")`);
  const reverseLookup = rawReverse === 'true';

  const certFile = get('SMTP_TLS_CERT');
  const keyFile = get('SMTP_TLS_KEY');
  const read = (name: string, file: string): Buffer | null => {
    try {
      return readFileSync(resolve(file));
    } catch (e) {
      problems.push(`${name} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (${resolve(file)})`);
      return null;
    }
  };
  let tls: SubmissionConfig['tls'] = null;
  if (certFile !== undefined || keyFile !== undefined) {
    if (certFile === undefined) problems.push('SMTP_TLS_KEY is set but SMTP_TLS_CERT is not: give both files (PEM certificate chain and its private key)');
    if (keyFile === undefined) problems.push('SMTP_TLS_CERT is set but SMTP_TLS_KEY is not: give both files (PEM certificate chain and its private key)');
    const cert = certFile !== undefined ? read('SMTP_TLS_CERT', certFile) : null;
    const key = keyFile !== undefined ? read('SMTP_TLS_KEY', keyFile) : null;
    if (cert && key) {
      // Caught here rather than at the first client's handshake: a key that does not belong to the
      // certificate, or a file that is not PEM.
      try {
        createSecureContext({ cert, key });
        tls = Object.freeze({ cert, key });
      } catch (e) {
        problems.push(`SMTP_TLS_CERT and SMTP_TLS_KEY are not a usable certificate and key: ${(e as Error).message}`);
      }
    }
  }
  if (starttlsPort === null && tlsPort === null) return null;
  if (!certFile && !keyFile) {
    if (tlsPort !== null) problems.push('SMTP_SUBMISSIONS_PORT (implicit TLS) needs SMTP_TLS_CERT and SMTP_TLS_KEY');
    if (starttlsPort !== null && !allowInsecureAuthOnLoopback) {
      problems.push('SMTP_SUBMISSION_PORT needs SMTP_TLS_CERT and SMTP_TLS_KEY for STARTTLS (API keys must not cross the network in clear); for clients on this machine only, set SMTP_ALLOW_INSECURE_AUTH_ON_LOOPBACK=true instead');
    }
  }
  return Object.freeze({ starttlsPort, tlsPort, tls, allowInsecureAuthOnLoopback, maxClients, maxConnectionsPerAddress, reverseLookup, idleTimeoutMs });
}

function isAddressOrCidr(v: string): boolean {
  const [addr, bits, ...rest] = v.split('/');
  const family = isIP(addr ?? '');
  if (!family || rest.length) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

/**
 * The password for `admin create` from MAILROOM_ADMIN_PASSWORD, so it need not be on the command
 * line (where `ps` shows it to every user of the machine).
 */
export function adminPasswordFromEnv(env: Record<string, string | undefined> = process.env): string | undefined {
  return env.MAILROOM_ADMIN_PASSWORD || undefined;
}

export function redirectUri(config: Pick<Config, 'baseUrl'>, provider: 'outlook' | 'gmail'): string {
  return `${config.baseUrl.href.replace(/\/+$/, '')}/oauth2/${provider}/callback`;
}

/**
 * Microsoft Graph's longest subscription to Outlook messages: 10,080 minutes (under 7 days), per
 * "subscription resource type › Maximum length of subscription per resource type".
 */
export const GRAPH_MESSAGE_SUBSCRIPTION_MAX_MINUTES = 10_080;

export interface GraphPushConfig {
  /** Where Graph posts notifications (NOTIFICATION_BASE_URL or BASE_URL), or null when push is off. */
  readonly notificationBase: string | null;
  /** Why push is off (not https, GRAPH_PUSH=off), in plain words with the fix. */
  readonly offReason: string | null;
  /** The delta safety net's interval while notifications work (GRAPH_PUSH_POLL_MINUTES, default 15). */
  readonly pollMs: number;
  /** A subscription that could not be made is tried again after this long (GRAPH_PUSH_RETRY_SECONDS). */
  readonly retryMs: number;
  /** Lifetime asked for (GRAPH_SUBSCRIPTION_MINUTES, at most Microsoft's 10,080). */
  readonly subscriptionMinutes: number;
}
