import { setMaxListeners } from 'node:events';
import { applicationAccessActions, type ApplicationAccessActions } from '../servers/application-access.ts';
import { accessIssues } from '../servers/mail-server-input.ts';
import type { ApplicationContext, Evidence } from '../diagnose/evidence.ts';
import { randomUUID } from 'node:crypto';
import type { ImapFlow } from 'imapflow';
import type { Config } from '../config/config.ts';
import { perTurn } from '../storage/per-turn.ts';
import { queryMailServers, serverState, tokenRowId } from '../storage/mail-server-store.ts';
import { encodeServerCursor, parseServerListQuery } from '../servers/server-list-query.ts';
import { redirectUri } from '../config/config.ts';
import { explain } from '../diagnose/diagnose.ts';
import { MailroomError, isMailroomError } from '../errors/errors.ts';
import { ImapError } from '../imap/imap-session.ts';
import type { Logger } from '../logger.ts';
import { secretAad, type TokenManager } from '../oauth/token-manager.ts';
import { passwordAad } from '../credentials/auth-method.ts';
import { authMethodOf } from '../credentials/auth-methods.ts';
import { oauthProviderOf } from '../oauth/oauth-providers.ts';
import { credentialIssues } from '../servers/mail-server-input.ts';
import { certificateView } from '../oauth/certificate-service.ts';
import { certificateExpiry } from '../lifecycle/secret-expiry.ts';
import { authMethodChoices, revokeGrantOf, type GrantRevocation } from '../servers/mail-server-service.ts';
import { validationError } from '../errors/errors.ts';
import type { Sealer } from '../secrets/sealer.ts';
import { parseInput } from '../errors/parse-input.ts';
import type { Db } from '../storage/database.ts';
import { countInbound, countInboundByServer } from '../storage/inbound-store.ts';
import { acquireLease, acquireLeases, findLease, listLeases, releaseLease, releaseLeasesOf } from '../storage/cluster-store.ts';
import { isPostgres, type Wakeups } from '../storage/wakeups.ts';
import { type GraphSubscriptionRecord, listGraphSubscriptions, markNotified, markSilent, subscriptionsById } from '../storage/graph-subscription-store.ts';
import { clientStateMatches, keepSubscription, resourceKey } from './graph-subscriptions.ts';
import type { ConnectionGates } from '../smtp/connection-gate.ts';
import { mailboxShare } from './mailbox-share.ts';
import {
  clearLastFetch,
  deleteMailServer,
  deleteToken,
  forgetAccessToken,
  findMailServer,
  findToken,
  insertMailServer,
  listMailServers,
  listTokens,
  type MailServerRecord,
  setAlertState,
  setLastFetch,
  setMailServerError,
  type StoredError,
  type TokenRecord,
  updateMailServer,
  errorAndNotice,
} from '../storage/mail-server-store.ts';
import { createIncomingSchema, INCOMING_DEFAULTS, updateIncomingSchema } from './incoming-server-input.ts';
import { connectWithToken, fetchNew, imapBounds, probeImap } from './mailbox-fetcher.ts';
import { fetchNewGraph, probeGraph } from './graph-fetcher.ts';
import { GraphError } from '../graph/graph-client.ts';
import { ParsePool } from './parse-pool.ts';
import { checklist } from '../lifecycle/checklist.ts';

export interface FetchState {
  running: boolean;
  fetched: number;
  total: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  imported: number;
  error: { code: string; message: string; fix?: string } | null;
  /** Failed fetches in a row: the next try waits 10 s, 20 s, 40 s… up to the interval. */
  failures: number;
}

/**
 * Fetches ending within this of each other record their stamps (last fetch, login ok) in one commit:
 * at a thousand watched mailboxes a burst of new mail is a fetch per mailbox, and a commit each is
 * an fsync on the event loop.
 */
const STAMP_GATHER_MS = 20;
/** New mail signalled by IDLE is fetched this long after the last EXISTS of a burst. */
const IDLE_FETCH_DELAY_MS = 200;
/**
 * A fetch over an open IDLE connection costs no TLS handshake or login, and is usually one message:
 * this many of them run per INBOUND_MAX_CONCURRENT_FETCHES slot (a new message in each of hundreds
 * of watched mailboxes at once then queues only behind its own kind).
 */
const IDLE_FETCHES_PER_SLOT = 4;
/** Notifications for one mailbox within this quiet time are one delta run (Graph posts a burst as many requests)… */
const PUSH_FETCH_DELAY_MS = 300;
/** …though a steady stream still starts one at least this often. */
const PUSH_FETCH_MAX_DELAY_MS = 2000;
/** What a Graph change or lifecycle notification asks of the mailbox's holder. */
export type PushEvent = 'created' | 'missed' | 'reauthorizationRequired' | 'subscriptionRemoved';
const PUSH_EVENTS: readonly string[] = ['created', 'missed', 'reauthorizationRequired', 'subscriptionRemoved'];
const TICK_MS = 5000;
/** On PostgreSQL the first claims wait this long after the instance said it is there. */
const FIRST_TICK_MS = 1000;
const WATCH_RETRY_MS = 60_000;
/** An IDLE connection is quiet by design; imapflow probes it with NOOP after this much silence. */
const WATCH_SOCKET_TIMEOUT_MS = 10 * 60_000;

export class IncomingServerService {
  private readonly runs = new Map<string, FetchState>();
  private readonly inflight = new Map<string, Promise<FetchState>>();
  private readonly watchers = new Map<string, { client: ImapFlow; signature: string }>();
  private readonly watchBackoff = new Map<string, number>();
  /** Mailboxes whose IDLE connection is being opened: they count against INBOUND_MAX_IDLE_CONNECTIONS. */
  private readonly opening = new Set<string>();
  /** INBOUND_MAX_CONCURRENT_FETCHES: a fetch waits here, first come first served, for a slot. */
  private readonly fetchSlots: FetchSlots;
  /** Fetches over a mailbox's open IDLE connection (no new session): IDLE_FETCHES_PER_SLOT × INBOUND_MAX_CONCURRENT_FETCHES at once. */
  private readonly idleFetchSlots: FetchSlots;
  private timer: NodeJS.Timeout | undefined;
  private firstTick: NodeJS.Timeout | undefined;
  /** Mailboxes to fetch again as soon as their running fetch ends. */
  private readonly again = new Set<string>();
  private stopped = false;
  /** Aborted by stop(): running fetches close their connections and end their requests. */
  private readonly stopping = new AbortController();
  private readonly parser: ParsePool;
  /** Pending notification-started delta runs: the timer and when the first notification of the burst came. */
  private readonly pushTimers = new Map<string, { timer: NodeJS.Timeout; first: number }>();
  /** When the last checked notification for each mailbox reached this instance (the holder). */
  private readonly lastPush = new Map<string, number>();
  /** Subscriptions being made or renewed by this instance. */
  private readonly subscribing = new Set<string>();

  constructor(
    private readonly deps: {
      db: Db;
      sealer: Sealer;
      config: Config;
      tokens: TokenManager;
      logger: Logger;
      now?: () => Date;
      /** This instance, as lease holder. */
      instance?: string;
      /** Graph requests per mailbox, shared with the outbox. */
      gates?: ConnectionGates;
      /** Tells the mailbox's holder (another instance on PostgreSQL) that Graph notified a change. */
      wakeups?: Wakeups;
      /** New messages were stored: their webhooks may go now (SQLite has no wake-up across processes to say so). */
      onImported?: () => void;
    },
  ) {
    this.parser = new ParsePool({ threads: deps.config.inboundParseThreads });
    // Every open IMAP connection listens for shutdown (and stops listening when it closes): a
    // thousand watched mailboxes are a thousand listeners, not a leak, so no MaxListeners warning.
    setMaxListeners(0, this.stopping.signal);
    this.fetchSlots = new FetchSlots(deps.config.inboundMaxFetches);
    this.application = applicationAccessActions({ record: (id) => this.record(id), tokens: deps.tokens, config: deps.config });
    this.idleFetchSlots = new FetchSlots(IDLE_FETCHES_PER_SLOT * deps.config.inboundMaxFetches);
  }

  /** Check application access, admin consent URL and the guide's steps (Access: Application). */
  readonly application: ApplicationAccessActions;

  /** IMAP IDLE connections open or being opened, and how many fetches run and wait (Mail Health, tests). */
  watchStats(): { idle: number; opening: number; fetching: number; waiting: number } {
    return { idle: this.watchers.size, opening: this.opening.size, fetching: this.fetchSlots.used + this.idleFetchSlots.used, waiting: this.fetchSlots.waiting + this.idleFetchSlots.waiting };
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  defaults() {
    return { redirectUri: redirectUri(this.deps.config, 'outlook'), ...INCOMING_DEFAULTS, authMethods: authMethodChoices(this.deps.config).filter((m) => m.incoming) };
  }

  private async record(id: string): Promise<MailServerRecord> {
    const s = await findMailServer(this.deps.db, id);
    if (!s || s.direction !== 'incoming') throw new MailroomError('MR_NOT_FOUND', `Incoming mail server ${id} does not exist.`);
    return s;
  }

  private fetchState(id: string): FetchState {
    return this.runs.get(id) ?? { running: false, fetched: 0, total: null, startedAt: null, finishedAt: null, imported: 0, error: null, failures: 0 };
  }

  /** Push: active until …, or why it is off, and the interval the delta safety net runs at. */
  private pushView(s: MailServerRecord, subs: Map<string, GraphSubscriptionRecord>) {
    if (s.transport !== 'graph') return null;
    const normal = s.imap!.intervalMinutes;
    const off = (reason: string, state: 'off' | 'silent' = 'off') => ({ state, until: null, reason, pollEveryMinutes: normal });
    const push = this.deps.config.graphPush;
    if (push.offReason) return off(push.offReason);
    if (!s.active) return off('The server is not active.');
    const row = subs.get(resourceKey(s));
    if (!row) return off('Not subscribed yet: the instance that fetches this mailbox subscribes at its next tick (within seconds once the server is connected).');
    if (row.mailServerId !== s.id) return off('Another incoming server has the subscription for this mailbox and folder; it imports the mail first.');
    if (row.state === 'off' || !row.expiresAt) return off(row.reason ?? 'No subscription.');
    if (Date.parse(row.expiresAt) <= this.now().getTime()) return off(`The subscription expired at ${row.expiresAt}; Mailroom makes a new one at its next tick.`);
    if (row.state === 'silent') return { ...off(row.reason ?? 'Notifications stopped arriving.', 'silent'), until: row.expiresAt };
    return { state: 'active' as const, until: row.expiresAt, reason: null, pollEveryMinutes: Math.max(normal, push.pollMs / 60_000), lastNotificationAt: row.lastNotificationAt };
  }

  private async view(s: MailServerRecord, tokens: Map<string, TokenRecord>, names: Map<string, string>, fetchedBy: string | null, subs: Map<string, GraphSubscriptionRecord> = new Map(), counts?: Map<string, number>) {
    const t = tokens.get(tokenRowId(s));
    const imap = s.imap!;
    return {
      id: s.id,
      /** The instance that holds this mailbox's fetch lease (several instances on PostgreSQL). */
      fetchedBy,
      name: s.name,
      serverType: s.transport === 'graph' ? ('graph' as const) : ('imap' as const),
      authType: s.authType,
      imapHost: imap.host,
      imapPort: imap.port,
      imapSecurity: imap.security,
      username: s.username,
      folder: imap.folder,
      afterFetch: imap.afterFetch,
      moveToFolder: imap.moveToFolder,
      intervalMinutes: imap.intervalMinutes,
      active: s.active,
      redirectUri: oauthProviderOf(s) ? redirectUri(this.deps.config, oauthProviderOf(s)!.id) : null,
      clientId: s.clientId || null,
      clientSecretSet: s.clientSecretSealed !== null,
      clientCredential: s.clientCredential,
      certificate: certificateView(s),
      certificateExpiry: certificateExpiry(s, this.now()),
      passwordSet: s.passwordSealed !== null,
      tenant: s.tenant,
      access: s.access,
      applicationRoles: s.access === 'application' && t && t.refreshTokenSealed === null && t.scope !== null ? t.scope.split(' ').filter(Boolean) : null,
      tokenSourceId: s.tokenSourceId,
      tokenSourceName: s.tokenSourceId ? (names.get(s.tokenSourceId) ?? null) : null,
      tokenStatus: t?.status ?? ('not_connected' as const),
      tokenStatusReason: t?.statusReason ?? null,
      connectedAccount: t?.account ?? null,
      tokenExpiresAt: t?.accessTokenExpiresAt ?? null,
      ...errorAndNotice(s.lastError),
      // Incoming servers sign in with their own registration or an outgoing server's token (tokenSourceId), never a template's (appSourceId).
      checklist: checklist(s, t, this.now()).items,
      lastFetchAt: s.lastFetchAt,
      importedCount: counts ? (counts.get(s.id) ?? 0) : await countInbound(this.deps.db, s.id),
      /** An IMAP IDLE connection is open: new mail is fetched within seconds, not at the interval. */
      idle: this.watchers.get(s.id)?.client.usable === true,
      /** Microsoft Graph change notifications (Graph servers only; null for IMAP). */
      push: this.pushView(s, subs),
      fetch: this.fetchState(s.id),
      owner: s.owner,
      state: serverState(s, t?.status),
      createdAt: s.createdAt,
      updatedAt: s.updatedAt,
    };
  }

  private async context() {
    const [tokens, outgoing, leases, subs] = await Promise.all([listTokens(this.deps.db), listMailServers(this.deps.db, 'outgoing'), this.mailboxLeases(), listGraphSubscriptions(this.deps.db)]);
    return {
      tokens: new Map(tokens.map((t) => [t.mailServerId, t])),
      names: new Map(outgoing.map((s) => [s.id, s.name])),
      leases,
      subs: new Map(subs.map((x) => [x.resourceKey, x])),
    };
  }

  /** Who holds each mailbox (leases not expired), by incoming server id. */
  private async mailboxLeases() {
    const leases = await listLeases(this.deps.db, 'mailbox:');
    return new Map(leases.filter((l) => Date.parse(l.expiresAt) > this.now().getTime()).map((l) => [l.name.slice('mailbox:'.length), l]));
  }

  private get instance(): string {
    return this.deps.instance ?? 'local';
  }

  /**
   * Takes or renews this instance's claim on the mailbox: only the holder opens IMAP (and IDLE) or
   * Graph for it. Renewed every tick, so a dead holder's mailbox is taken over once its lease ends.
   */
  private claim(id: string): Promise<boolean> {
    return acquireLease(this.deps.db, `mailbox:${id}`, this.instance, this.deps.config.inboundLeaseMs, this.now());
  }

  /** One page of the list with its filters (owner, state, q) applied in SQL, and how many match. */
  async page(query: unknown) {
    const q = parseServerListQuery(query, 'incoming');
    const { items, total, last } = await queryMailServers(this.deps.db, q);
    const { tokens, names, leases, subs } = await this.context();
    const end = items.at(-1);
    return {
      items: await Promise.all(items.map((s) => this.view(s, tokens, names, leases.get(s.id)?.holder ?? null, subs))),
      nextCursor: last || !end ? null : encodeServerCursor(end),
      total,
    };
  }

  async list() {
    const servers = await listMailServers(this.deps.db, 'incoming');
    const [{ tokens, names, leases, subs }, counts] = await Promise.all([this.context(), countInboundByServer(this.deps.db)]);
    return Promise.all(servers.map((s) => this.view(s, tokens, names, leases.get(s.id)?.holder ?? null, subs, counts)));
  }

  async get(id: string) {
    const s = await this.record(id);
    const { tokens, names, leases, subs } = await this.context();
    return this.view(s, tokens, names, leases.get(s.id)?.holder ?? null, subs);
  }

  /** Connected outgoing servers for the same mailbox: their consent already covers IMAP. */
  async reusableConnections(username: string) {
    const u = username.trim().toLowerCase();
    if (!u) return [];
    const outgoing = await listMailServers(this.deps.db, 'outgoing');
    const out = [];
    for (const s of outgoing.filter((x) => x.username === u)) {
      const t = await findToken(this.deps.db, s.id);
      // sendUsing tells which incoming Server Type can reuse it: one connection serves one resource.
      if (t?.status === 'valid') out.push({ mailServerId: s.id, name: s.name, username: s.username, connectedAccount: t.account, sendUsing: s.transport === 'graph' ? 'graph' : 'smtp' });
    }
    return out;
  }

  private async checkSource(tokenSourceId: string | null | undefined, username: string, serverType: 'imap' | 'graph'): Promise<void> {
    if (!tokenSourceId) return;
    const src = await findMailServer(this.deps.db, tokenSourceId);
    // An application connection serves any mailbox the tenant allows, with a token per resource.
    if (src?.access === 'application' && !src.tokenSourceId) return;
    if (!src || src.direction !== 'outgoing') {
      throw new MailroomError('MR_VALIDATION', 'Choose an outgoing mail server to reuse the connection of.', { field: 'tokenSourceId', fields: { tokenSourceId: 'No outgoing mail server with this id' } });
    }
    // A Graph connection's token is for Graph, an SMTP one's for Outlook (IMAP): they cannot stand in for each other.
    if ((src.transport === 'graph') !== (serverType === 'graph')) {
      const what = src.transport === 'graph' ? 'Microsoft Graph' : 'SMTP';
      throw new MailroomError('MR_VALIDATION', `The outgoing server "${src.name}" sends with ${what}; its connection can only be reused by a ${src.transport === 'graph' ? 'Microsoft Graph' : 'IMAP'} incoming server.`, {
        field: 'tokenSourceId',
        fields: { tokenSourceId: `Reuse a connection that sends with ${serverType === 'graph' ? 'Microsoft Graph' : 'SMTP'}, or connect this server itself` },
      });
    }
    if (src.username !== username) {
      throw new MailroomError('MR_VALIDATION', `The outgoing server "${src.name}" is connected for ${src.username}, not ${username}.`, {
        field: 'tokenSourceId',
        fields: { tokenSourceId: `Only a connection for ${username} can be reused` },
      });
    }
  }

  async create(body: unknown) {
    const input = parseInput(createIncomingSchema, body);
    await this.checkSource(input.tokenSourceId, input.username, input.serverType);
    const source = input.tokenSourceId ? await findMailServer(this.deps.db, input.tokenSourceId) : undefined;
    const method = authMethodOf(input);
    const issues = {
      ...(input.tokenSourceId ? {} : credentialIssues({ ...input, clientId: input.clientId ?? '', hasClientSecret: false, hasPassword: false, direction: 'incoming' })),
      ...accessIssues({ access: input.access, authType: input.authType, tenant: input.tenant, usesSource: !!input.tokenSourceId }),
    };
    if (Object.keys(issues).length) throw validationError(issues);
    const host = method.provider?.hosts.imap;
    const imapHost = input.imapHost ?? host?.host;
    if (imapHost === undefined) throw validationError({ imapHost: 'Enter the IMAP Server, e.g. imap.example.com' });
    const id = randomUUID();
    await insertMailServer(
      this.deps.db,
      id,
      {
        name: input.name,
        authType: input.authType,
        username: input.username,
        clientId: input.tokenSourceId || !method.provider ? '' : input.clientId!,
        clientSecretSealed: !input.tokenSourceId && method.provider && input.clientSecret ? this.deps.sealer.seal(input.clientSecret, secretAad(id)) : null,
        clientCredential: input.clientCredential,
        passwordSealed: method.mechanism === 'password' && input.password ? this.deps.sealer.seal(input.password, passwordAad(id)) : null,
        clientSecretExpiresAt: null,
        tenant: input.tenant,
        // SMTP columns are not used by incoming servers.
        smtpHost: '',
        smtpPort: 0,
        smtpSecurity: 'tls',
        priority: 0,
        fromFilter: null,
        active: input.active,
        lastError: null,
        direction: 'incoming',
        transport: input.serverType,
        imap: {
          host: imapHost,
          port: input.imapPort ?? host?.port ?? 993,
          security: input.imapSecurity ?? host?.security ?? 'tls',
          folder: input.folder,
          afterFetch: input.afterFetch,
          moveToFolder: input.moveToFolder,
          intervalMinutes: input.intervalMinutes,
        },
        tokenSourceId: input.tokenSourceId,
        owner: input.owner,
        // A reused connection's access (and tenant) are its source's.
        access: source?.access ?? input.access,
        ...(source && { tenant: source.tenant }),
      },
      this.now(),
    );
    return this.get(id);
  }

  async update(id: string, body: unknown) {
    const before = await this.record(id);
    const input = parseInput(updateIncomingSchema, body);
    const imap = { ...before.imap! };
    if (input.imapHost !== undefined) imap.host = input.imapHost;
    if (input.imapPort !== undefined) imap.port = input.imapPort;
    if (input.imapSecurity !== undefined) imap.security = input.imapSecurity;
    if (input.folder !== undefined) imap.folder = input.folder;
    if (input.afterFetch !== undefined) imap.afterFetch = input.afterFetch;
    if (input.moveToFolder !== undefined) imap.moveToFolder = input.moveToFolder;
    if (input.intervalMinutes !== undefined) imap.intervalMinutes = input.intervalMinutes;
    if (imap.afterFetch === 'move' && !imap.moveToFolder) {
      throw new MailroomError('MR_VALIDATION', 'Enter the folder to move fetched mail to', { field: 'moveToFolder', fields: { moveToFolder: 'Enter the folder to move fetched mail to' } });
    }
    const username = input.username ?? before.username;
    const tokenSourceId = input.tokenSourceId !== undefined ? input.tokenSourceId : before.tokenSourceId;
    const serverType = input.serverType ?? (before.transport === 'graph' ? 'graph' : 'imap');
    await this.checkSource(tokenSourceId, username, serverType);
    const authType = input.authType ?? before.authType;
    const methodChanged = authType !== before.authType;
    const source = tokenSourceId ? await findMailServer(this.deps.db, tokenSourceId) : undefined;
    const access = source?.access ?? input.access ?? before.access;
    const accessProblems = accessIssues({ access, authType: input.authType ?? before.authType, tenant: input.tenant ?? before.tenant, usesSource: !!tokenSourceId });
    const issues = tokenSourceId
      ? accessProblems
      : { ...accessProblems, ...credentialIssues({
          authType,
          clientId: input.clientId ?? (methodChanged ? '' : before.clientId),
          clientSecret: input.clientSecret,
          hasClientSecret: !methodChanged && before.clientSecretSealed !== null,
          password: input.password,
          hasPassword: before.passwordSealed !== null,
          direction: 'incoming',
          clientCredential: input.clientCredential ?? before.clientCredential,
        }) };
    if (Object.keys(issues).length) throw validationError(issues);
    const method = authMethodOf({ authType });
    const patch: Parameters<typeof updateMailServer>[2] = { imap, transport: serverType };
    if (input.authType !== undefined) patch.authType = input.authType;
    if (input.password !== undefined && method.mechanism === 'password') patch.passwordSealed = this.deps.sealer.seal(input.password, passwordAad(id));
    if (method.mechanism !== 'password') patch.passwordSealed = null;
    if (input.name !== undefined) patch.name = input.name;
    if (input.username !== undefined) patch.username = input.username;
    if (input.active !== undefined) patch.active = input.active;
    if (input.owner !== undefined) patch.owner = input.owner;
    if (input.tenant !== undefined) patch.tenant = input.tenant;
    if (input.clientId !== undefined) patch.clientId = input.clientId ?? '';
    if (input.clientSecret !== undefined) patch.clientSecretSealed = this.deps.sealer.seal(input.clientSecret, secretAad(id));
    if (input.clientCredential !== undefined) patch.clientCredential = input.clientCredential;
    if (input.tokenSourceId !== undefined) patch.tokenSourceId = input.tokenSourceId;
    patch.access = access;
    if (source) patch.tenant = source.tenant;
    const identityChanged =
      methodChanged ||
      (input.username !== undefined && input.username !== before.username) ||
      (input.clientId !== undefined && (input.clientId ?? '') !== before.clientId) ||
      (input.tenant !== undefined && input.tenant !== before.tenant) ||
      access !== before.access;
    if (identityChanged) await deleteToken(this.deps.db, id);
    // Another Server Type needs a token for another resource: the grant stays, the access token goes.
    else if (serverType !== (before.transport === 'graph' ? 'graph' : 'imap')) await forgetAccessToken(this.deps.db, id, this.now());
    await updateMailServer(this.deps.db, id, patch, this.now());
    this.dropWatcher(id);
    return this.get(id);
  }

  /** Disconnect, answering the server as it is now (Not connected). */
  async disconnect(id: string) {
    await this.disconnectGrant(id);
    return this.get(id);
  }

  /** Disconnect: the grant revoked at the provider where it can be, the tokens forgotten, the mailbox no longer watched. */
  async disconnectGrant(id: string): Promise<GrantRevocation> {
    const s = await this.record(id);
    const revocation = await revokeGrantOf(this.deps, s);
    await deleteToken(this.deps.db, id);
    await updateMailServer(this.deps.db, id, { lastError: null }, this.now());
    this.dropWatcher(id);
    return revocation;
  }

  /** Deletes the server; a connection of its own has its grant revoked at the provider where it can be (Google), as for outgoing servers. */
  async remove(id: string): Promise<GrantRevocation> {
    const s = await this.record(id);
    const revocation = await revokeGrantOf(this.deps, s);
    this.dropWatcher(id);
    await deleteMailServer(this.deps.db, id);
    return revocation;
  }

  private failure(e: unknown, application?: ApplicationContext): { message: string; fix?: string; code: string; guideStep?: number; evidence?: unknown } {
    if (e instanceof GraphError || e instanceof ImapError) return explain(application ? ({ ...e.evidence, application } as Evidence) : e.evidence, e.message);
    if (isMailroomError(e)) return { code: e.code, message: e.message, ...(e.fix !== undefined && { fix: e.fix }), ...(e.evidence !== undefined && { evidence: e.evidence }) };
    // Anything else is Mailroom's own fault, not the admin's: recorded on the server like any
    // failure (and logged with its stack by the caller), never thrown out of a background task.
    return {
      code: 'MR_INTERNAL',
      message: `The fetch stopped on an unexpected error: ${String((e as Error)?.message ?? e).slice(0, 500)}`,
      fix: 'Mailroom tries again at the next fetch. If this repeats, report it with the log line inbound.fetch_failed (it has the stack).',
      evidence: { kind: 'internal', name: (e as Error)?.name ?? typeof e },
    };
  }

  /** Test & Confirm: XOAUTH2 login, open the folder, report its message count or the server's reply. */
  async test(id: string) {
    const s = await this.record(id);
    try {
      const r = s.transport === 'graph' ? await probeGraph({ db: this.deps.db, tokens: this.deps.tokens, graphHost: this.deps.config.microsoftGraph.host, ...(this.deps.gates && { gates: this.deps.gates }) }, s) : await probeImap(this.deps.tokens, s, this.imapBounds());
      await setAlertState(this.deps.db, s.id, { loginOkAt: this.now().toISOString() });
      return { ok: true, message: `Connection Test Successful! ${r.messages} message${r.messages === 1 ? '' : 's'} in ${s.imap!.folder}`, messageCount: r.messages };
    } catch (e) {
      return { ok: false, ...this.failure(e, await this.deps.tokens.applicationContext(s.id)) };
    }
  }

  private imapBounds() {
    return imapBounds({ maxMessageBytes: this.deps.config.inboundMaxMessageBytes, imapTimeoutMs: this.deps.config.imapTimeoutMs, signal: this.stopping.signal });
  }

  /** Runs a background task: whatever it throws is logged with its stack, never left unhandled. */
  private background(event: string, task: () => Promise<unknown>): void {
    void Promise.resolve()
      .then(task)
      .catch((e: unknown) => this.deps.logger.error({ event, err: e }, 'inbound background task failed'));
  }

  /** Fetch Now: starts a fetch and returns at once (progress is on the server); MR_CONFLICT (409) while one is already running, which the page then follows. */
  async fetchNow(id: string): Promise<void> {
    const s = await this.record(id);
    if (this.inflight.has(id)) throw new MailroomError('MR_CONFLICT', 'A fetch is already running for this server.');
    // Another instance holds the mailbox: it fetches at its next tick (within 5 s), not this one.
    if (!(await this.claim(id))) return clearLastFetch(this.deps.db, id);
    this.background('inbound.fetch_failed', () => this.runFetch(s));
  }

  /** The mailbox's IDLE connection, if one is open on the server's current settings: a fetch can go over it. */
  private lendable(server: MailServerRecord): ImapFlow | undefined {
    const w = this.watchers.get(server.id);
    return server.transport !== 'graph' && w && w.signature === watchSignature(server) && w.client.usable ? w.client : undefined;
  }

  /** One fetch at a time per server; records progress, the outcome and any error with its fix. */
  runFetch(server: MailServerRecord): Promise<FetchState> {
    const running = this.inflight.get(server.id);
    if (running) {
      // New mail signalled (IDLE, Fetch Now) while a fetch runs may have come after it listed the
      // folder: fetch once more when it ends, instead of at the next interval.
      this.again.add(server.id);
      return running;
    }
    if (this.stopped) return Promise.resolve(this.fetchState(server.id));
    const failures = this.runs.get(server.id)?.failures ?? 0;
    const state: FetchState = { running: true, fetched: 0, total: null, startedAt: this.now().toISOString(), finishedAt: null, imported: 0, error: null, failures };
    this.runs.set(server.id, state);
    const p = (async () => {
      // A fetch over the mailbox's IDLE connection opens no session: it waits for one of the
      // slots for those, not for INBOUND_MAX_CONCURRENT_FETCHES (the watcher is looked up again
      // once a slot is had: it may have closed meanwhile).
      let over = this.lendable(server);
      let release = await (over ? this.idleFetchSlots : this.fetchSlots).take();
      if (over && !(over = this.lendable(server))) {
        release();
        release = await this.fetchSlots.take();
      }
      try {
        const deps = { db: this.deps.db, dataDir: this.deps.config.dataDir, rawInDatabase: this.deps.config.databaseUrl.startsWith('postgres'), tokens: this.deps.tokens, logger: this.deps.logger, parser: this.parser, now: () => this.now(), graphHost: this.deps.config.microsoftGraph.host, maxMessageBytes: this.deps.config.inboundMaxMessageBytes, imapTimeoutMs: this.deps.config.imapTimeoutMs, signal: this.stopping.signal, ...(this.deps.gates && { gates: this.deps.gates }) };
        const progress = (pr: { fetched: number; total: number }) => {
          state.fetched = pr.fetched;
          state.total = pr.total;
        };
        const r = server.transport === 'graph' ? await fetchNewGraph(deps, server, progress) : await fetchNew(deps, server, progress, { ...(over && { over }) });
        state.imported = r.imported;
        state.failures = 0;
        // The messages are committed: their webhooks go now, not after the fetch's stamp.
        if (r.imported) this.deps.onImported?.();
        await this.stampFetched({ id: server.id, at: this.now().toISOString(), clearError: /^(IMAP_|NET_|GRAPH_)/.test(server.lastError?.code ?? '') ? server.lastError : null });
        if (r.imported) {
          this.deps.logger.info({ event: 'inbound.fetched', mailServerId: server.id, imported: r.imported, skipped: r.skipped }, 'new mail imported');
        }
      } catch (e) {
        if (this.stopping.signal.aborted) {
          // Shutdown closed the connection: not the server's failure, nothing to record.
          this.deps.logger.info({ event: 'inbound.fetch_stopped', mailServerId: server.id }, 'fetch stopped by shutdown; the next start resumes after the last batch stored');
          return state;
        }
        // A failed fetch closes the IDLE connection it used: a new one waits as after a failed
        // open, while the retries (backing off) go over connections of their own.
        if (over && !over.usable) this.watchBackoff.set(server.id, Date.now() + WATCH_RETRY_MS);
        const application = e instanceof ImapError || e instanceof GraphError ? await this.deps.tokens.applicationContext(server.id).catch(() => undefined) : undefined;
        const f = this.failure(e, application);
        state.error = { code: f.code, message: f.message, ...(f.fix !== undefined && { fix: f.fix }) };
        state.failures = failures + 1;
        const stored: StoredError = { ...state.error, ...(f.evidence !== undefined && { evidence: f.evidence as Record<string, unknown> }), at: this.now().toISOString() };
        await setMailServerError(this.deps.db, server.id, stored).catch(() => undefined);
        if (f.code === 'MR_INTERNAL') this.deps.logger.error({ event: 'inbound.fetch_failed', mailServerId: server.id, code: f.code, err: e }, 'fetch failed on an unexpected error');
        else this.deps.logger.warn({ event: 'inbound.fetch_failed', mailServerId: server.id, code: f.code, reason: f.message }, 'fetch failed');
      } finally {
        release();
        state.running = false;
        state.finishedAt = this.now().toISOString();
        this.inflight.delete(server.id);
        if (this.again.delete(server.id) && !state.error && !this.stopped) this.background('inbound.fetch_failed', () => this.record(server.id).then((fresh) => this.runFetch(fresh), () => undefined));
      }
      return state;
    })().catch((e: unknown) => {
      // Only the bookkeeping above can get here (a database gone mid-record): logged, the state kept.
      this.deps.logger.error({ event: 'inbound.fetch_failed', mailServerId: server.id, err: e }, 'fetch bookkeeping failed');
      return state;
    });
    this.inflight.set(server.id, p);
    return p;
  }

  /** Polls each active server at its interval and keeps an IDLE connection for near-real-time fetches. */
  start(): void {
    if (this.timer) return;
    const tick = () => void this.tick().catch((e) => this.deps.logger.error({ err: e, event: 'inbound.tick_failed' }, 'inbound scheduler error'));
    this.timer = setInterval(tick, TICK_MS);
    this.timer.unref();
    if (!isPostgres(this.deps.db)) return tick();
    // Instances started together see each other before their first claims, so they share the
    // mailboxes from the start rather than the first one taking them all.
    void this.sayPresent().catch(() => undefined);
    this.firstTick = setTimeout(tick, FIRST_TICK_MS);
    this.firstTick.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.firstTick);
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    // Running fetches close their connections now: a server that stopped answering must not hold
    // the shutdown (issue #18: SIGTERM during a stalled FETCH left the process up for 6 minutes).
    this.stopping.abort(new Error('Mailroom is shutting down'));
    for (const p of this.pushTimers.values()) clearTimeout(p.timer);
    this.pushTimers.clear();
    for (const id of [...this.watchers.keys()]) this.dropWatcher(id, true);
    await Promise.allSettled([...this.inflight.values()]);
    await this.parser.close();
    // A clean stop hands the mailboxes over at once instead of after the lease.
    await releaseLeasesOf(this.deps.db, this.instance, 'mailbox:').catch(() => undefined);
    await releaseLease(this.deps.db, `fetcher:${this.instance}`, this.instance).catch(() => undefined);
  }

  /** Records a fetch that ended well with the others ending within STAMP_GATHER_MS: one commit (setLastFetch). */
  private readonly stampFetched = perTurn<{ id: string; at: string; clearError: StoredError | null }>((fetches) => setLastFetch(this.deps.db, fetches), { gatherMs: STAMP_GATHER_MS });

  /** This instance fetches mail: the lease `fetcher:<instance>`, renewed every tick, counts it in the mailboxes' share-out. */
  private sayPresent(): Promise<boolean> {
    return acquireLease(this.deps.db, `fetcher:${this.instance}`, this.instance, this.deps.config.inboundLeaseMs, this.now());
  }

  private async tick(): Promise<void> {
    const servers = (await listMailServers(this.deps.db, 'incoming')).filter((s) => s.active);
    const tokens = new Map((await listTokens(this.deps.db)).map((t) => [t.mailServerId, t]));
    // Every server whose login can work is polled: a password (or no login) needs no token; an OAuth
    // one, or one reusing an outgoing server's connection, waits for that token to be valid.
    // Application access needs no sign-in: its fetch asks for the token itself (and records why not).
    const fetchable = servers.filter((s) => s.access === 'application' || (s.tokenSourceId || authMethodOf(s).mechanism === 'xoauth2' ? tokens.get(s.tokenSourceId ?? s.id)?.status === 'valid' : true));
    await this.sayPresent();
    const [fetchers, leases, subList] = await Promise.all([listLeases(this.deps.db, 'fetcher:'), this.mailboxLeases(), listGraphSubscriptions(this.deps.db)]);
    const subs = new Map(subList.map((x) => [x.resourceKey, x]));
    const live = fetchers.filter((l) => Date.parse(l.expiresAt) > this.now().getTime()).map((l) => l.holder);
    const held = new Map<string, number>();
    for (const s of fetchable) {
      const h = leases.get(s.id)?.holder;
      if (h !== undefined) held.set(h, (held.get(h) ?? 0) + 1);
    }
    const share = mailboxShare(fetchable.length, this.instance, live, held, fetchable.filter((s) => !leases.has(s.id)).length);
    let mine = held.get(this.instance) ?? 0;
    let surplus = share.surplus;
    const now = this.now().getTime();
    const toClaim: Array<{ s: MailServerRecord; isMine: boolean }> = [];
    for (const s of fetchable) {
      const holder = leases.get(s.id)?.holder;
      const isMine = holder === this.instance;
      // Over this instance's share: hand a mailbox over, though not in the middle of a fetch; the
      // others take it at their tick. Under it: take a free one.
      if (isMine ? surplus > 0 && !this.inflight.has(s.id) : holder !== undefined || !share.mayTake(mine)) {
        // Another instance fetches this mailbox; if this one held it before, it lets go of IDLE.
        this.dropWatcher(s.id);
        if (isMine) {
          surplus--;
          mine--;
          await releaseLease(this.deps.db, `mailbox:${s.id}`, this.instance);
          this.deps.logger.info({ event: 'inbound.handed_over', mailServerId: s.id }, 'mailbox handed over to even out the instances');
        }
        continue;
      }
      // Counted before the claim: a free mailbox another instance takes in the same moment is
      // counted once too many until the next tick, which errs on the side of taking fewer.
      if (!isMine) mine++;
      toClaim.push({ s, isMine });
    }
    // One transaction renews or takes every claim of the tick (a thousand mailboxes: one commit).
    const claimed = await acquireLeases(this.deps.db, toClaim.map(({ s }) => `mailbox:${s.id}`), this.instance, this.deps.config.inboundLeaseMs, this.now());
    const due: MailServerRecord[] = [];
    const pushingNow = new Set<string>();
    for (const { s, isMine } of toClaim) {
      if (!claimed.has(`mailbox:${s.id}`)) {
        this.dropWatcher(s.id);
        continue;
      }
      if (!isMine) {
        // Just taken (a start, a hand-over, a dead holder's): mail may have come while nobody
        // watched, and an earlier IDLE failure here says nothing about now.
        this.watchBackoff.delete(s.id);
      }
      if (s.transport === 'graph' && this.pushNeedsWork(subs.get(resourceKey(s)), s.id)) this.keepPush(s);
      // Notifications working: delta still runs, at the long interval, to catch what push missed.
      const pushing = this.pushView(s, subs)?.state === 'active';
      if (pushing) pushingNow.add(s.id);
      const interval = pushing ? Math.max(s.imap!.intervalMinutes * 60_000, this.deps.config.graphPush.pollMs) : s.imap!.intervalMinutes * 60_000;
      const run = this.runs.get(s.id);
      // A failed fetch (a dropped connection, a server restart) is tried again soon, backing off.
      const retryDue = run?.error && run.finishedAt && now - Date.parse(run.finishedAt) >= Math.min(interval, 10_000 * 2 ** (run.failures - 1));
      const dueNow = (!isMine || !s.lastFetchAt || now - Date.parse(s.lastFetchAt) >= interval || !!retryDue) && !this.inflight.has(s.id);
      // A mailbox whose IDLE connection opens now is fetched over it once open, not over a session of its own.
      if (!this.watch(s, dueNow) && dueNow) due.push(s);
    }
    // Polls in rotation: the mailbox that waited longest goes first; INBOUND_MAX_CONCURRENT_FETCHES
    // bounds how many run at once, the rest queue for a slot in this order.
    due.sort((a, b) => (a.lastFetchAt ?? '').localeCompare(b.lastFetchAt ?? ''));
    for (const s of due) this.background('inbound.fetch_failed', () => (pushingNow.has(s.id) ? this.safetyNetRun(s) : this.runFetch(s)));
    for (const id of this.watchers.keys()) {
      if (!servers.some((s) => s.id === id)) {
        this.dropWatcher(id);
        await releaseLease(this.deps.db, `mailbox:${id}`, this.instance);
      }
    }
  }

  /** Whether the row (as read this tick) calls for a create, a retry or a renewal: the rest of the ticks cost no query. */
  private pushNeedsWork(row: GraphSubscriptionRecord | undefined, serverId: string): boolean {
    // Off: keepSubscription waits GRAPH_PUSH_RETRY_SECONDS between attempts.
    if (!row || row.state === 'off' || !row.expiresAt) return true;
    if (row.mailServerId !== serverId) return false;
    return Date.parse(row.expiresAt) - this.now().getTime() < (this.deps.config.graphPush.subscriptionMinutes * 60_000) / 2;
  }

  /** Makes, renews or remakes the mailbox's Graph subscription in the background, one attempt at a time. */
  private keepPush(s: MailServerRecord, force?: 'renew' | 'recreate'): void {
    if (!this.deps.config.graphPush.notificationBase || this.subscribing.has(s.id) || this.stopped) return;
    this.subscribing.add(s.id);
    const deps = { db: this.deps.db, tokens: this.deps.tokens, graphHost: this.deps.config.microsoftGraph.host, push: this.deps.config.graphPush, logger: this.deps.logger, instance: this.instance, now: () => this.now(), signal: this.stopping.signal, ...(this.deps.gates && { gates: this.deps.gates }) };
    this.background('inbound.subscribe_failed', () => keepSubscription(deps, s, force ? { force } : {}).finally(() => this.subscribing.delete(s.id)));
  }

  /**
   * A scheduled delta while push works: mail it imports that no notification announced (none came
   * since it started) means notifications stopped; the mailbox goes back to its normal interval,
   * and Mail Health says why, until a notification arrives again.
   */
  private async safetyNetRun(s: MailServerRecord): Promise<FetchState> {
    const started = Date.now();
    const r = await this.runFetch(s);
    if (r.imported > 0 && !r.error && (this.lastPush.get(s.id) ?? 0) < started) {
      const reason = `A scheduled delta query found ${r.imported} new message${r.imported === 1 ? '' : 's'} no change notification announced: notifications are not arriving. Mailroom polls at the normal interval until one arrives; check that NOTIFICATION_BASE_URL (or BASE_URL) is reachable from Microsoft Graph.`;
      await markSilent(this.deps.db, resourceKey(s), reason, this.now());
      this.deps.logger.warn({ event: 'inbound.push_silent', mailServerId: s.id, imported: r.imported }, 'change notifications are not arriving; back to the normal interval');
    }
    return r;
  }

  /**
   * Change or lifecycle notifications posted to the public endpoint (any instance): only those whose
   * subscription id is known and whose clientState matches count; each asks the mailbox's holder for
   * a delta run (or a renewal). Nothing of the payload is used beyond those two fields and the event.
   * Read only for unknown subscriptions: a forged flood writes nothing.
   */
  async notified(items: Array<{ subscriptionId?: unknown; clientState?: unknown; lifecycleEvent?: unknown }>): Promise<number> {
    const ids = [...new Set(items.map((i) => i.subscriptionId).filter((x): x is string => typeof x === 'string' && x.length > 0 && x.length <= 200))];
    const rows = new Map((await subscriptionsById(this.deps.db, ids)).map((r) => [r.subscriptionId!, r]));
    const wake = new Set<string>();
    for (const item of items) {
      const row = typeof item.subscriptionId === 'string' ? rows.get(item.subscriptionId) : undefined;
      if (!row || !clientStateMatches(item.clientState, row.clientStateHash)) continue;
      const event = item.lifecycleEvent === undefined ? 'created' : String(item.lifecycleEvent);
      if (!PUSH_EVENTS.includes(event)) continue;
      wake.add(`${row.mailServerId}|${event}|${row.subscriptionId}`);
    }
    for (const w of wake) {
      if (this.deps.wakeups && isPostgres(this.deps.db)) this.deps.wakeups.notify('mailroom_inbound', w);
      else this.onPush(w);
    }
    return wake.size;
  }

  /** On every instance: the holder of the mailbox acts on a checked notification; the others ignore it. */
  onPush(payload: string): void {
    const [id, event, subscriptionId] = payload.split('|') as [string, PushEvent, string];
    if (!id || !event || this.stopped) return;
    if (event === 'created' || event === 'missed') {
      this.lastPush.set(id, Date.now());
      // Coalesced: a burst of notifications is one delta run (and a run going on gets one more after it).
      const pending = this.pushTimers.get(id);
      const first = pending?.first ?? Date.now();
      if (pending) clearTimeout(pending.timer);
      const delay = Math.max(0, Math.min(PUSH_FETCH_DELAY_MS, first + PUSH_FETCH_MAX_DELAY_MS - Date.now()));
      const timer = setTimeout(() => {
        this.pushTimers.delete(id);
        this.background('inbound.fetch_failed', async () => {
          if (!(await this.stillMine(id))) return;
          const s = await this.record(id);
          // A subscription outliving its server's switch to inactive or to IMAP starts nothing.
          if (!s.active || s.transport !== 'graph') return;
          await markNotified(this.deps.db, subscriptionId, this.now());
          await this.runFetch(s);
        });
      }, delay);
      timer.unref();
      this.pushTimers.set(id, { timer, first });
      return;
    }
    // reauthorizationRequired: renewing reauthorizes (Microsoft: PATCH or /reauthorize); subscriptionRemoved: a new one, and a delta run for what came meanwhile.
    this.background('inbound.subscribe_failed', async () => {
      if (!(await this.stillMine(id))) return;
      const s = await this.record(id);
      if (!s.active || s.transport !== 'graph') return;
      this.keepPush(s, event === 'reauthorizationRequired' ? 'renew' : 'recreate');
      if (event === 'subscriptionRemoved') await this.runFetch(s);
    });
  }

  /**
   * Starts opening the mailbox's IDLE connection when it should have one and has none
   * (INBOUND_MAX_IDLE_CONNECTIONS, the backoff after a failure). True when it does: the connection
   * fetches once it is open, so a fetch due now (`due`) goes over it instead of over a session of its
   * own, a TLS handshake and a login fewer per mailbox at start and at each hand-over; if it does
   * not open, the due fetch runs on its own session as before.
   */
  private watch(s: MailServerRecord, due: boolean): boolean {
    // Graph has no IDLE: its mailboxes get change notifications instead (keepPush).
    if (s.transport === 'graph') return false;
    const signature = watchSignature(s);
    const existing = this.watchers.get(s.id);
    if (existing?.signature === signature && existing.client.usable) return false;
    // The server was edited: its connection is replaced, though not under a fetch that may be using it.
    if (existing?.client.usable && this.inflight.has(s.id)) return false;
    if (existing) this.dropWatcher(s.id);
    if ((this.watchBackoff.get(s.id) ?? 0) > Date.now() || this.opening.has(s.id)) return false;
    // INBOUND_MAX_IDLE_CONNECTIONS: beyond it a mailbox is polled at its interval instead.
    if (this.watchers.size + this.opening.size >= this.deps.config.inboundMaxIdle) return false;
    this.watchBackoff.set(s.id, Date.now() + WATCH_RETRY_MS);
    this.opening.add(s.id);
    this.background('inbound.watch_failed', () => this.openWatcher(s, signature, due));
    return true;
  }

  private async openWatcher(s: MailServerRecord, signature: string, due: boolean): Promise<void> {
    /** The fetch that was due runs on its own session when no IDLE connection takes it. */
    const fetchInstead = () => {
      if (due && !this.stopped) this.fetchLatest(s.id);
    };
    try {
      // The watcher's connection is quiet by design (IDLE): bounded in size, not by IMAP_TIMEOUT_SECONDS.
      const client = await connectWithToken(this.deps.tokens, s, { ...this.imapBounds(), timeoutMs: WATCH_SOCKET_TIMEOUT_MS });
      if (this.stopped || !(await this.stillMine(s.id))) {
        // Handed over while this connection was being opened: the new holder watches.
        await client.logout().catch(() => client.close());
        return;
      }
      if (!client.capabilities.has('IDLE')) {
        this.deps.logger.info({ event: 'inbound.no_idle', mailServerId: s.id }, 'the server does not offer IDLE: polling only');
        await client.logout().catch(() => client.close());
        fetchInstead();
        return; // polling only
      }
      // Opened as a fetch opens it (read-write), so a fetch over this connection needs no new SELECT.
      // A folder that cannot be opened ends the connection: the fetch instead says why.
      await client.mailboxOpen(s.imap!.folder).catch(async (e: unknown) => {
        await client.logout().catch(() => client.close());
        throw e;
      });
      let timer: NodeJS.Timeout | undefined;
      client.on('exists', () => {
        this.deps.logger.debug({ event: 'inbound.idle_exists', mailServerId: s.id }, 'new mail signalled by IDLE');
        clearTimeout(timer);
        timer = setTimeout(() => this.fetchLatest(s.id), IDLE_FETCH_DELAY_MS);
      });
      client.on('close', () => {
        clearTimeout(timer);
        if (this.watchers.get(s.id)?.client === client) this.watchers.delete(s.id);
      });
      this.watchers.set(s.id, { client, signature });
      this.watchBackoff.delete(s.id);
      // IDLE now (imapflow's own auto-IDLE waits 15 s of quiet); it re-enters IDLE by itself later.
      void client.idle().catch(() => undefined);
      this.deps.logger.debug({ event: 'inbound.watching', mailServerId: s.id }, 'waiting for new mail with IMAP IDLE');
      // Whatever arrived between the last fetch and this IDLE would not be signalled (and a fetch
      // due now was left to this connection): fetch it now.
      this.fetchLatest(s.id);
    } catch (e) {
      this.deps.logger.debug({ event: 'inbound.watch_failed', mailServerId: s.id, err: (e as Error).message }, 'IDLE watcher not started; polling continues');
      // The fetch records why the mailbox cannot be reached (its error and the fix).
      fetchInstead();
    } finally {
      this.opening.delete(s.id);
    }
  }

  /** Fetches the mailbox in the background, on its settings as saved now. */
  private fetchLatest(id: string): void {
    this.background('inbound.fetch_failed', () => this.record(id).then((fresh) => this.runFetch(fresh)));
  }

  private async stillMine(id: string): Promise<boolean> {
    const lease = await findLease(this.deps.db, `mailbox:${id}`);
    return lease !== undefined && lease.holder === this.instance && Date.parse(lease.expiresAt) > this.now().getTime();
  }

  /** Ends a mailbox's IDLE connection: with LOGOUT, or at once (shutdown: the server may not answer). */
  private dropWatcher(id: string, now = false): void {
    const w = this.watchers.get(id);
    if (!w) return;
    this.watchers.delete(id);
    if (now) w.client.close();
    else void w.client.logout().catch(() => w.client.close());
  }
}

/** What an IDLE connection was opened for: a change to any of it (or any edit of the server) replaces it. */
const watchSignature = (s: MailServerRecord) => [s.imap!.host, s.imap!.port, s.imap!.security, s.imap!.folder, s.username, s.updatedAt].join('|');

/** A counting semaphore, first come first served: fetches beyond the limit wait in arrival order. */
class FetchSlots {
  used = 0;
  private readonly queue: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  get waiting(): number {
    return this.queue.length;
  }

  take(): Promise<() => void> {
    return new Promise((resolve) => {
      const grant = () => {
        this.used++;
        let done = false;
        resolve(() => {
          if (done) return;
          done = true;
          this.used--;
          this.queue.shift()?.();
        });
      };
      if (this.used < this.limit) grant();
      else this.queue.push(grant);
    });
  }
}
