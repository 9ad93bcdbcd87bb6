import { randomUUID } from 'node:crypto';
import type { Config } from '../config/config.ts';
import { redirectUri } from '../config/config.ts';
import { explain } from '../diagnose/diagnose.ts';
import { MailroomError, isMailroomError } from '../errors/errors.ts';
import { applicationAccessActions, type ApplicationAccessActions } from './application-access.ts';
import { appFor, registrationOf, secretAad, tokenAad, type TokenManager } from '../oauth/token-manager.ts';
import { oauthProviderOf } from '../oauth/oauth-providers.ts';
import { applicationConsentUrl } from '../oauth/outlook.ts';
import { accessIssues, sourceIssues } from './mail-server-input.ts';
import type { Evidence } from '../diagnose/evidence.ts';
import { certificateView, type CertificateView } from '../oauth/certificate-service.ts';
import { GraphError, graphCall, grantedPermissions, missingPermission, userPath, withGraphToken } from '../graph/graph-client.ts';
import { GraphSender, withGraphMailbox } from '../graph/graph-sender.ts';
import type { Sealer } from '../secrets/sealer.ts';
import { probeSmtp, sendOnce, SmtpError, type SmtpTarget } from '../smtp/smtp-client.ts';
import type { MailLogin } from '../credentials/auth-method.ts';
import { AUTH_METHODS, authMethodOf, isAuthType } from '../credentials/auth-methods.ts';
import { connectLabel } from '../oauth/oauth-provider.ts';
import { passwordAad } from '../credentials/auth-method.ts';
import { validationError } from '../errors/errors.ts';
import type { Db } from '../storage/database.ts';
import {
  deleteMailServer,
  deleteToken,
  forgetAccessToken,
  countServersUsing,
  findMailServer,
  findToken,
  insertMailServer,
  listMailServers,
  listTokens,
  type AuthType,
  type MailServerRecord,
  type SmtpSecurity,
  type StoredError,
  type TokenRecord,
  updateMailServer,
} from '../storage/mail-server-store.ts';
import {
  type CreateMailServerInput,
  createMailServerSchema,
  credentialIssues,
  DEFAULTS,
  plaintextIssue,
  type UpdateMailServerInput,
  updateMailServerSchema,
} from './mail-server-input.ts';
import { parseInput } from '../errors/parse-input.ts';
import { z } from 'zod';
import { checklist, type ChecklistItem } from '../lifecycle/checklist.ts';
import { certificateExpiry, type SecretExpiry } from '../lifecycle/secret-expiry.ts';
import { errorAndNotice, findMailServers, findTokens, tokenRowId, queryMailServers, queryOwners, serverState, setAlertState, setMailServerError, type ServerState } from '../storage/mail-server-store.ts';
import { encodeOwnerCursor, encodeServerCursor, parseOwnerQuery, parseServerListQuery } from './server-list-query.ts';
import type { ConnectionGates } from '../smtp/connection-gate.ts';
import { smtpGateKey } from '../smtp/smtp-pool.ts';
import { defaultLimits, type SendLimits } from './send-limits.ts';
import type { SendStatus } from '../outbox/send-status.ts';
import type { TestEmail } from '../outbox/outbox-service.ts';
import { MAILROOM_ID_HEADER } from '../bounces/match-report.ts';

/** The roles of the last verified application token, as recorded with Token Valid (null: none yet). */
function applicationRoles(s: Pick<MailServerRecord, 'access' | 'tokenSourceId'>, t: TokenRecord | undefined): string[] | null {
  if (!t || (s.access !== 'application' && !s.tokenSourceId) || t.refreshTokenSealed !== null || t.scope === null) return null;
  return t.scope.split(' ').filter(Boolean);
}

/** What the API and UI see of a mail server: never the client secret or a token. */
export interface MailServerView {
  id: string;
  name: string;
  authType: AuthType;
  username: string;
  /** Where the OAuth provider returns after sign-in; null for methods without OAuth. */
  redirectUri: string | null;
  clientId: string;
  clientSecretSet: boolean;
  /** Client Credential: the client secret or a certificate (Outlook OAuth). */
  clientCredential: 'secret' | 'certificate';
  /** The certificate and a pending rolled one: thumbprints and dates, never the private key. */
  certificate: CertificateView | null;
  /** Username/Password: whether a password is stored (it is never returned). */
  passwordSet: boolean;
  clientSecretExpiresAt: string | null;
  tenant: string;
  smtpHost: string;
  smtpPort: number;
  smtpSecurity: SmtpSecurity;
  /** SMTP with XOAUTH2, or Microsoft Graph (for tenants with SMTP AUTH switched off). */
  sendUsing: 'smtp' | 'graph';
  priority: number;
  fromFilter: string | null;
  active: boolean;
  tokenStatus: 'not_connected' | 'valid' | 'reconnect_needed';
  tokenStatusReason: string | null;
  connectedAccount: string | null;
  connectedTenantId: string | null;
  tokenExpiresAt: string | null;
  lastError: Omit<StoredError, 'at'> & { at: string } | null;
  /** What the admin should know about a connection that works (e.g. a refresh token that dies in 7 days); never an error. */
  notice: StoredError | null;
  allowAccountMismatch: boolean;
  clientSecretExpiry: SecretExpiry;
  /** The certificate's standing against the 30/7/1-day warnings; null without Client Credential "certificate". */
  certificateExpiry: SecretExpiry | null;
  checklist: ChecklistItem[];
  /** The mailbox's sending limits (null: none), editable. */
  maxConnections: number | null;
  messagesPerMinute: number | null;
  recipientsPerDay: number | null;
  recipientsPerMessage: number | null;
  /** Sending against those limits: sent today / daily limit, the next send time, held mail. */
  sending: SendStatus | null;
  /** Microsoft's admin consent page for this app and tenant; null for providers without one. */
  adminConsentUrl: string | null;
  /** The ERP user whose personal mailbox this is; null: shared. */
  owner: string | null;
  /** connected, needs_attention, not_connected or disabled: what the list's state filter matches. */
  state: ServerState;
  /** Outlook OAuth: a person's sign-in (delegated) or the app itself (application, client credentials). */
  access: 'delegated' | 'application';
  /** Another server whose connection this one uses (an application connection serves any mailbox). */
  tokenSourceId: string | null;
  /** A personal mailbox: the server (its template) whose app registration and credential it signs in with. */
  appSourceId: string | null;
  /** Application access: the roles of the last verified token (e.g. ["SMTP.SendAsApp"]). */
  applicationRoles: string[] | null;
  createdAt: string;
  updatedAt: string;
}

/** What deleting or disconnecting did to the grant at the provider. */
export interface GrantRevocation {
  grantRevoked: boolean;
  /** Why not, and how to end it otherwise (Microsoft has no per-grant revocation). */
  note: string | null;
}

export interface CheckResult {
  ok: boolean;
  message: string;
  fix?: string;
  code?: string;
  guideStep?: number;
  evidence?: unknown;
  messageId?: string;
  /** Send test email: the message's id under Emails (it is listed there as it ended). */
  outboxId?: string;
}

const sendTestSchema = z.strictObject({
  to: z.string({ error: 'Enter the recipient address' }).trim().regex(/^[^\s@<>()",;:\\]+@[^\s@<>()",;:\\]+\.[a-z]{2,63}$/i, { error: 'Enter one valid email address, e.g. you@contoso.com' }),
});

/** The form's Authenticate Using options with what each needs, from the methods themselves. */
export function authMethodChoices(config: Config) {
  return AUTH_METHODS.map((m) => ({
    authType: m.authType,
    label: m.label,
    mechanism: m.mechanism,
    incoming: m.incoming,
    graph: m.graph,
    oauth: m.provider
      ? { id: m.provider.id, redirectUri: redirectUri(config, m.provider.id), connectLabel: connectLabel(m.provider), accountName: m.provider.accountName, tenant: m.provider.tenants, help: m.provider.formHelp, ...m.provider.formOptions }
      : null,
    smtp: m.provider?.hosts.smtp ?? null,
    imap: m.provider?.hosts.imap ?? null,
  }));
}

/**
 * parseInput, and when the body has errors, the rules of its Authenticate Using as well: every
 * problem is listed at once, whichever layer finds it.
 */
function parseAll<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  try {
    return parseInput(schema, body);
  } catch (e) {
    if (!isMailroomError(e, 'MR_VALIDATION') || typeof body !== 'object' || body === null) throw e;
    const b = body as Record<string, unknown>;
    const text = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);
    const authType = text(b.authType) ?? 'outlook_oauth';
    if (!isAuthType(authType)) throw e;
    const credential = text(b.clientCredential) === 'certificate' ? 'certificate' : 'secret';
    const more = credentialIssues({ authType, clientId: text(b.clientId) ?? '', clientSecret: text(b.clientSecret), hasClientSecret: false, password: text(b.password), hasPassword: false, transport: text(b.sendUsing), direction: 'outgoing', clientCredential: credential });
    const fields: Record<string, string> = { ...e.fields };
    for (const [k, v] of Object.entries(more)) fields[k] ??= v;
    throw validationError(fields);
  }
}

/**
 * Before a server's tokens are forgotten (delete, disconnect): the grant is revoked at the provider
 * where it has a way to (Google), unless another server still uses this connection. A failed
 * revocation does not stop the disconnect: it is said, with what to do instead.
 */
export async function revokeGrantOf(deps: { db: Db; config: Config; sealer: Sealer }, s: MailServerRecord): Promise<GrantRevocation> {
  const provider = oauthProviderOf(s);
  const t = await findToken(deps.db, s.id);
  if (!provider || !t?.refreshTokenSealed) return { grantRevoked: false, note: null };
  if ((await countServersUsing(deps.db, s.id, 'token')) > 0) {
    return { grantRevoked: false, note: 'Another server reuses this connection, so the grant was kept.' };
  }
  if (!provider.revokeGrant) return { grantRevoked: false, note: provider.revokeHelp ?? null };
  try {
    await provider.revokeGrant(appFor(s, deps.config, deps.sealer, await registrationOf(deps.db, s)), deps.sealer.open(t.refreshTokenSealed, tokenAad(s.id, 'refresh_token')));
    return { grantRevoked: true, note: null };
  } catch (e) {
    return { grantRevoked: false, note: `${(e as Error).message} ${isMailroomError(e) && e.fix ? e.fix : ''}`.trim() };
  }
}

export class MailServerService {
  constructor(
    private readonly deps: {
      db: Db;
      dialect: 'sqlite' | 'postgres';
      sealer: Sealer;
      config: Config;
      tokens: TokenManager;
      gates: ConnectionGates;
      /** The server's sending against its limits (the outbox counts it). */
      sendStatus?: (server: MailServerRecord) => Promise<SendStatus>;
      /** sendStatus of many servers in a few statements (the list at a thousand servers). */
      sendStatuses?: (servers: readonly MailServerRecord[]) => Promise<Map<string, SendStatus>>;
      now?: () => Date;
      onHealthy?: (serverId: string) => Promise<void>;
      /** Send test email's message and outcome, for the outbox to list it under Emails. */
      onTestEmail?: (email: TestEmail, outcome: { state: 'sent'; smtpResponse: string } | { state: 'failed'; error: StoredError }) => Promise<void>;
    },
  ) {
    this.application = applicationAccessActions({ record: (id) => this.record(id), tokens: deps.tokens, config: deps.config });
  }

  /** Check application access, admin consent URL and the guide's steps (Access: Application). */
  readonly application: ApplicationAccessActions;

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  defaults() {
    const { config } = this.deps;
    return {
      redirectUri: redirectUri(config, 'outlook'),
      ...DEFAULTS,
      authMethods: authMethodChoices(config),
      microsoftAuthorityHost: config.microsoftAuthorityHost,
      microsoftGraphHost: config.microsoftGraph.host,
    };
  }

  /** `registrations`: the templates whose app registration these servers sign in with (appSourceId), by id. */
  view(s: MailServerRecord, t: TokenRecord | undefined, sending: SendStatus | null = null, registrations?: Map<string, MailServerRecord>): MailServerView {
    const check = checklist(s, t, this.now(), s.appSourceId && registrations ? (registrations.get(s.appSourceId) ?? null) : undefined);
    const provider = oauthProviderOf(s);
    const app = provider?.app(s, this.deps.config, { kind: 'secret', secret: '' });
    return {
      id: s.id,
      name: s.name,
      authType: s.authType,
      username: s.username,
      redirectUri: app?.redirectUri ?? null,
      clientId: s.clientId,
      clientSecretSet: s.clientSecretSealed !== null,
      clientCredential: s.clientCredential,
      certificate: certificateView(s),
      passwordSet: s.passwordSealed !== null,
      clientSecretExpiresAt: s.clientSecretExpiresAt,
      tenant: s.tenant,
      smtpHost: s.smtpHost,
      smtpPort: s.smtpPort,
      smtpSecurity: s.smtpSecurity,
      sendUsing: s.transport === 'graph' ? 'graph' : 'smtp',
      priority: s.priority,
      fromFilter: s.fromFilter,
      active: s.active,
      tokenStatus: t?.status ?? 'not_connected',
      tokenStatusReason: t?.statusReason ?? null,
      connectedAccount: t?.account ?? null,
      connectedTenantId: t?.tenantId ?? null,
      tokenExpiresAt: t?.accessTokenExpiresAt ?? null,
      ...errorAndNotice(s.lastError),
      allowAccountMismatch: s.allowAccountMismatch,
      clientSecretExpiry: check.secret,
      certificateExpiry: certificateExpiry(s, this.now()),
      checklist: check.items,
      ...s.limits,
      sending,
      adminConsentUrl: s.access === 'application' && app ? applicationConsentUrl(app, s.id) : ((app && provider?.adminConsentUrl?.(app, s.id)) ?? null),
      access: s.access,
      tokenSourceId: s.tokenSourceId,
      appSourceId: s.appSourceId,
      applicationRoles: s.access === 'application' || t?.refreshTokenSealed === null ? applicationRoles(s, t) : null,
      owner: s.owner,
      state: serverState(s, t?.status),
      createdAt: s.createdAt,
      updatedAt: s.updatedAt,
    };
  }

  /**
   * Every server's view. `sending` (sent today against the limits) costs a few queries per server:
   * callers that only need states (metrics, the CLI) leave it out.
   */
  async list(opts: { sending?: boolean } = {}): Promise<MailServerView[]> {
    const [servers, tokens] = await Promise.all([listMailServers(this.deps.db), listTokens(this.deps.db)]);
    const byServer = new Map(tokens.map((t) => [t.mailServerId, t]));
    const many = opts.sending === false ? undefined : await this.deps.sendStatuses?.(servers);
    const sending = opts.sending === false ? servers.map(() => null) : many ? servers.map((s) => many.get(s.id) ?? null) : await Promise.all(servers.map((s) => this.deps.sendStatus?.(s) ?? null));
    const byId = new Map(servers.map((s) => [s.id, s]));
    return servers.map((s, i) => this.view(s, byServer.get(tokenRowId(s)), sending[i], byId));
  }

  /** One page of the list with its filters (owner, state, q) applied in SQL, and how many match. */
  async page(query: unknown): Promise<{ items: MailServerView[]; nextCursor: string | null; total: number }> {
    const q = parseServerListQuery(query, 'outgoing');
    const { items, total, last } = await queryMailServers(this.deps.db, q);
    const [tokens, registrations] = await Promise.all([findTokens(this.deps.db, items.map(tokenRowId)), this.registrations(items)]);
    const sending = await Promise.all(items.map((s) => this.deps.sendStatus?.(s) ?? null));
    const end = items.at(-1);
    return { items: items.map((s, i) => this.view(s, tokens.get(tokenRowId(s)), sending[i], registrations)), nextCursor: last || !end ? null : encodeServerCursor(end), total };
  }

  /** The owners of servers (both directions unless `direction`), with how many servers each: the Owner filter's choices. */
  async owners(query: unknown): Promise<{ items: { owner: string; servers: number }[]; nextCursor: string | null }> {
    const { items, last } = await queryOwners(this.deps.db, parseOwnerQuery(query));
    const end = items.at(-1);
    return { items, nextCursor: last || !end ? null : encodeOwnerCursor(end.owner) };
  }

  async record(id: string): Promise<MailServerRecord> {
    const s = await findMailServer(this.deps.db, id);
    if (!s || s.direction !== 'outgoing') throw new MailroomError('MR_NOT_FOUND', `Mail server ${id} does not exist.`, { fix: 'Open Settings > Technical > Mail Servers to see the servers that exist.' });
    return s;
  }

  async get(id: string): Promise<MailServerView> {
    const s = await this.record(id);
    return this.view(s, await findToken(this.deps.db, tokenRowId(s)), (await this.deps.sendStatus?.(s)) ?? null, await this.registrations([s]));
  }

  /** The templates these servers sign in with (appSourceId), in one query: a page of personal mailboxes shares one or a few. */
  private registrations(servers: readonly MailServerRecord[]): Promise<Map<string, MailServerRecord>> {
    return findMailServers(this.deps.db, servers.flatMap((s) => (s.appSourceId ? [s.appSourceId] : [])));
  }

  async create(body: unknown): Promise<MailServerView> {
    const input: CreateMailServerInput = parseAll(createMailServerSchema, body);
    const id = randomUUID();
    const { clientSecret, password, sendUsing, maxConnections, messagesPerMinute, recipientsPerDay, recipientsPerMessage, ...rest } = input;
    const method = authMethodOf(input);
    // The provider's own host by default (smtp.office365.com, smtp.gmail.com); a password or relay server names its own.
    const host = method.provider?.hosts.smtp;
    const smtp = { smtpHost: rest.smtpHost ?? host?.host, smtpPort: rest.smtpPort ?? host?.port ?? 587, smtpSecurity: rest.smtpSecurity ?? host?.security ?? 'starttls' };
    const source = input.tokenSourceId ? await findMailServer(this.deps.db, input.tokenSourceId) : undefined;
    const issues = {
      ...(input.tokenSourceId
        ? sourceIssues(source, { username: input.username, graph: sendUsing === 'graph', direction: 'outgoing' })
        : credentialIssues({ ...input, hasClientSecret: false, hasPassword: false, transport: sendUsing, direction: 'outgoing' })),
      ...accessIssues({ access: input.access, authType: input.authType, tenant: input.tenant, usesSource: !!input.tokenSourceId }),
      ...(smtp.smtpHost === undefined ? { smtpHost: 'Enter the SMTP Server, e.g. mail.example.com' } : plaintextIssue(smtp.smtpHost, smtp.smtpSecurity, this.deps.config.plaintextHosts, 'smtpSecurity')),
    };
    if (Object.keys(issues).length) throw validationError(issues);
    const given: Partial<SendLimits> = { maxConnections, messagesPerMinute, recipientsPerDay, recipientsPerMessage };
    const limits = { ...defaultLimits(smtp.smtpHost!) };
    for (const k of Object.keys(limits) as Array<keyof SendLimits>) if (given[k] !== undefined) limits[k] = given[k];
    await insertMailServer(
      this.deps.db,
      id,
      {
        ...rest,
        ...smtp,
        smtpHost: smtp.smtpHost!,
        clientId: method.provider && !input.tokenSourceId ? rest.clientId : '',
        // A reused connection is the source's: this server keeps no app or credentials of its own.
        ...(source && { tenant: source.tenant, authType: source.authType, access: source.access }),
        transport: sendUsing,
        limits,
        clientSecretSealed: method.provider && clientSecret !== undefined && !input.tokenSourceId ? this.deps.sealer.seal(clientSecret, secretAad(id)) : null,
        passwordSealed: method.mechanism === 'password' && password !== undefined ? this.deps.sealer.seal(password, passwordAad(id)) : null,
        lastError: null,
      },
      this.now(),
    );
    return this.get(id);
  }

  async update(id: string, body: unknown): Promise<MailServerView> {
    const before = await this.record(id);
    const input: UpdateMailServerInput = parseInput(updateMailServerSchema, body);
    const { clientSecret, password, sendUsing, maxConnections, messagesPerMinute, recipientsPerDay, recipientsPerMessage, ...rest } = input;
    const authType = rest.authType ?? before.authType;
    const method = authMethodOf({ authType });
    const methodChanged = authType !== before.authType;
    const after = { host: rest.smtpHost ?? before.smtpHost, security: rest.smtpSecurity ?? before.smtpSecurity };
    const tokenSourceId = rest.tokenSourceId !== undefined ? rest.tokenSourceId : before.tokenSourceId;
    const source = tokenSourceId ? await findMailServer(this.deps.db, tokenSourceId) : undefined;
    // A personal mailbox signs in with its template's registration until the admin gives it its own.
    const changed = <K extends 'clientId' | 'tenant' | 'clientCredential'>(k: K) => rest[k] !== undefined && rest[k] !== before[k];
    const ownRegistration = clientSecret !== undefined || changed('clientId') || changed('tenant') || changed('clientCredential') || methodChanged;
    const usesAppSource = before.appSourceId !== null && !ownRegistration;
    const issues = {
      ...accessIssues({ access: rest.access ?? before.access, authType, tenant: rest.tenant ?? before.tenant, usesSource: !!tokenSourceId }),
      ...(tokenSourceId ? sourceIssues(source, { id, username: rest.username ?? before.username, graph: (sendUsing ?? before.transport) === 'graph', direction: 'outgoing' }) : {}),
      ...(tokenSourceId || usesAppSource ? {} : credentialIssues({
        authType,
        clientId: rest.clientId ?? (methodChanged ? '' : before.clientId),
        clientSecret,
        hasClientSecret: !methodChanged && before.clientSecretSealed !== null,
        password,
        hasPassword: before.passwordSealed !== null,
        transport: sendUsing ?? before.transport,
        direction: 'outgoing',
        clientCredential: rest.clientCredential ?? before.clientCredential,
      })),
      ...plaintextIssue(after.host, after.security, this.deps.config.plaintextHosts, 'smtpSecurity'),
    };
    if (Object.keys(issues).length) throw validationError(issues);
    const patch: Parameters<typeof updateMailServer>[2] = {};
    for (const [k, v] of Object.entries(rest)) if (v !== undefined) (patch as Record<string, unknown>)[k] = v;
    patch.limits = { maxConnections, messagesPerMinute, recipientsPerDay, recipientsPerMessage };
    if (clientSecret !== undefined && method.provider) patch.clientSecretSealed = this.deps.sealer.seal(clientSecret, secretAad(id));
    if (password !== undefined && method.mechanism === 'password') patch.passwordSealed = this.deps.sealer.seal(password, passwordAad(id));
    if (!method.provider) {
      patch.clientId = '';
      patch.clientSecretSealed = null;
    }
    if (method.mechanism !== 'password') patch.passwordSealed = null;
    if (sendUsing !== undefined) patch.transport = sendUsing;
    if (before.appSourceId !== null && ownRegistration) patch.appSourceId = null;
    // Tokens belong to one mailbox, method, app and tenant: change any of them and the old grant no longer fits.
    const identityChanged =
      methodChanged ||
      (rest.username !== undefined && rest.username !== before.username) ||
      (rest.clientId !== undefined && rest.clientId !== before.clientId) ||
      (rest.tenant !== undefined && rest.tenant !== before.tenant) ||
      (rest.access !== undefined && rest.access !== before.access) ||
      (rest.tokenSourceId !== undefined && rest.tokenSourceId !== before.tokenSourceId);
    if (source) {
      patch.access = source.access;
      patch.tenant = source.tenant;
    }
    if (identityChanged) {
      await deleteToken(this.deps.db, id);
      patch.lastError = null;
    } else if ((clientSecret !== undefined || password !== undefined || (rest.clientCredential !== undefined && rest.clientCredential !== before.clientCredential)) && before.lastError) {
      // New credentials: the refusal they caused is history until the next test says otherwise.
      patch.lastError = null;
    } else if (rest.allowAccountMismatch === true && before.lastError?.code === 'ACCOUNT_MISMATCH') {
      // The admin said the other account sends for this mailbox on purpose (shared mailbox, Send As).
      patch.lastError = null;
    }
    // Another transport needs a token for another resource (Graph or Outlook): the grant stays, the
    // next access token is refreshed for the new resource.
    if (!identityChanged && sendUsing !== undefined && sendUsing !== before.transport) {
      await forgetAccessToken(this.deps.db, id, this.now());
      if (before.lastError) patch.lastError = null;
    }
    await updateMailServer(this.deps.db, id, patch, this.now());
    // A new expiry date (a new secret) re-arms the 30/7/1-day warnings.
    if (rest.clientSecretExpiresAt !== undefined && rest.clientSecretExpiresAt !== before.clientSecretExpiresAt) await setAlertState(this.deps.db, id, { secretAlertLevel: null });
    return this.get(id);
  }

  /** Disconnect, answering the server as it is now (Not connected). */
  async disconnect(id: string): Promise<MailServerView> {
    await this.disconnectGrant(id);
    return this.get(id);
  }

  /**
   * Disconnect: the grant is revoked at the provider where it has a way to (Google; Microsoft keeps
   * the consent until it is removed in My Apps), and the tokens are forgotten here.
   */
  async disconnectGrant(id: string): Promise<GrantRevocation> {
    const s = await this.record(id);
    const revocation = await revokeGrantOf(this.deps, s);
    await deleteToken(this.deps.db, id);
    await updateMailServer(this.deps.db, id, { lastError: null }, this.now());
    return revocation;
  }

  async remove(id: string): Promise<GrantRevocation> {
    const s = await findMailServer(this.deps.db, id);
    const users = s ? await countServersUsing(this.deps.db, id, 'app') : 0;
    if (users > 0) {
      throw new MailroomError('MR_CONFLICT', `${users.toLocaleString('en-US')} personal ${users === 1 ? 'mailbox signs' : 'mailboxes sign'} in with this mail server's app registration, so it cannot be deleted.`, {
        field: 'id',
        fix: 'Delete those mailboxes first (filter the list by owner), or keep this server as their template; disable it instead if it should not send.',
      });
    }
    const revocation = s ? await revokeGrantOf(this.deps, s) : { grantRevoked: false, note: null };
    if (!(await deleteMailServer(this.deps.db, id))) {
      throw new MailroomError('MR_NOT_FOUND', `Mail server ${id} does not exist.`);
    }
    return revocation;
  }

  /**
   * Test Connection with Graph: a Graph token, the mailbox looked up (it exists in the tenant), and the
   * permission to send read from what the sign-in granted — Graph has no way to try a send without
   * sending. Its requests count against the mailbox's Graph concurrency like the outbox's: it waits
   * for a slot of the server's Graph gate rather than make a fifth request at once, and makes none
   * while Graph's Retry-After pauses the mailbox.
   */
  private async testGraph(s: MailServerRecord): Promise<CheckResult> {
    try {
      // The token first, outside the mailbox's slots: sends waiting on a token endpoint that hangs hold
      // every slot until its 20 s deadline, and the test would wait for them before waiting itself.
      await this.deps.tokens.getAccessToken(s.id);
    } catch (e) {
      return this.failure(s, e);
    }
    return withGraphMailbox(this.deps.gates, s.username, () => this.testGraphNow(s)).catch((e: unknown) => this.failure(s, e));
  }

  private async testGraphNow(s: MailServerRecord): Promise<CheckResult> {
    const host = this.deps.config.microsoftGraph.host;
    const token = async (forceRefresh: boolean) => (await this.deps.tokens.getAccessToken(s.id, { forceRefresh })).accessToken;
    const get = <T>(path: string) => withGraphToken(token, (t) => graphCall<T>(host, { method: 'GET', path, token: t }));
    try {
      const user = await get<{ id?: string; mail?: string; userPrincipalName?: string }>(`${userPath(s.username)}?$select=id,mail,userPrincipalName`);
      const granted = grantedPermissions((await findToken(this.deps.db, tokenRowId(s)))?.scope);
      const needed = s.direction === 'incoming' ? 'Mail.ReadWrite' : 'Mail.Send';
      if (!granted.includes(needed) && !granted.includes(`${needed}.Shared`)) throw missingPermission(granted, needed);
      // A user without an Exchange Online mailbox is found all the same; a mail endpoint tells
      // (MailboxNotEnabledForRESTAPI). It needs a read permission, which Send Using Graph asks for.
      if (granted.includes('Mail.ReadWrite')) await get(`${userPath(s.username)}/mailFolders/inbox?$select=id`);
      await setAlertState(this.deps.db, s.id, { loginOkAt: this.now().toISOString() });
      await this.deps.onHealthy?.(s.id);
      const steps = [`token for Microsoft Graph`, `GET /users/${s.username}: ${user.userPrincipalName ?? user.mail ?? user.id}`, `${needed} granted`, ...(granted.includes('Mail.ReadWrite') ? ['Exchange Online mailbox found'] : [])];
      return { ok: true, message: 'Connection Test Successful!', evidence: { kind: 'graph', steps } };
    } catch (e) {
      return this.failure(s, e);
    }
  }

  private target(s: MailServerRecord): SmtpTarget {
    return { host: s.smtpHost, port: s.smtpPort, security: s.smtpSecurity, auth: authMethodOf(s).mechanism };
  }

  /**
   * Runs an SMTP exchange with a fresh token. A 535 with a token we believed valid gets one forced
   * refresh and one retry: the token may have been revoked server-side before its expiry.
   */
  private async withToken<T>(s: MailServerRecord, run: (login: MailLogin) => Promise<T>): Promise<T> {
    // The login first, outside the mailbox's slots (a token endpoint that hangs answers by its own
    // deadline, not after the sends waiting on it); then a test is one of the mailbox's connections:
    // it waits for a slot, and the outbox gives one up.
    const first = await this.deps.tokens.getLogin(s.id);
    return this.deps.gates.with(smtpGateKey(s.smtpHost, s.username), s.limits.maxConnections, () => this.withTokenNow(s, first, run));
  }

  private async withTokenNow<T>(s: MailServerRecord, first: MailLogin, run: (login: MailLogin) => Promise<T>): Promise<T> {
    try {
      return await run(first);
    } catch (e) {
      // Only a token can be refreshed: a refused password stays refused.
      if (!(e instanceof SmtpError && e.isAuthFailure) || first.kind !== 'xoauth2') throw e;
      return run(await this.deps.tokens.getLogin(s.id, { forceRefresh: true }));
    }
  }

  async test(id: string): Promise<CheckResult> {
    const s = await this.record(id);
    if (s.transport === 'graph') return this.testGraph(s);
    try {
      const r = await this.withToken(s, (creds) => probeSmtp(this.target(s), creds, s.username));
      await setAlertState(this.deps.db, s.id, { loginOkAt: this.now().toISOString() });
      await this.deps.onHealthy?.(s.id);
      return { ok: true, message: 'Connection Test Successful!', evidence: { kind: 'smtp', steps: r.steps } };
    } catch (e) {
      return this.failure(s, e);
    }
  }

  async sendTest(id: string, body: unknown): Promise<CheckResult> {
    const { to } = parseInput(sendTestSchema, body);
    const s = await this.record(id);
    const via = s.transport === 'graph' ? 'Microsoft Graph' : `${s.smtpHost}:${s.smtpPort}`;
    // Identified as the outbox identifies its messages, so that a bounce of it is matched to its row.
    const emailId = randomUUID();
    const email: TestEmail = {
      id: emailId,
      mailServerId: s.id,
      from: s.username,
      to,
      subject: 'Mailroom test email',
      text: `This is a test email sent by Mailroom through the mail server "${s.name}" (${via}) as ${s.username}.\n\nIf you can read this, sending works.`,
      messageId: `<${emailId}@${s.username.slice(s.username.lastIndexOf('@') + 1)}>`,
      headers: { [MAILROOM_ID_HEADER]: emailId },
    };
    const message = { from: email.from, to: [email.to], subject: email.subject, text: email.text, messageId: email.messageId, headers: email.headers };
    let result: CheckResult;
    try {
      const r =
        s.transport === 'graph'
          ? await new GraphSender(this.deps.config.microsoftGraph.host, s.username, (forceRefresh) => this.deps.tokens.getAccessToken(s.id, { forceRefresh }), this.deps.gates).send(message)
          : await this.withToken(s, (creds) => sendOnce(this.target(s), creds, s.username, message));
      await setAlertState(this.deps.db, s.id, { loginOkAt: this.now().toISOString() });
      result = { ok: true, message: `Test email sent to ${to}`, messageId: r.messageId, outboxId: emailId, evidence: { kind: s.transport === 'graph' ? 'graph' : 'smtp', response: r.response } };
      await this.deps.onTestEmail?.(email, { state: 'sent', smtpResponse: r.response });
    } catch (e) {
      result = await this.failure(s, e);
      const error: StoredError = {
        code: result.code ?? 'MR_INTERNAL',
        message: result.message,
        ...(result.fix !== undefined && { fix: result.fix }),
        ...(isRecord(result.evidence) && { evidence: result.evidence }),
        at: this.now().toISOString(),
      };
      await this.deps.onTestEmail?.(email, { state: 'failed', error });
    }
    // The panel links to the message under Emails.
    return { ...result, outboxId: emailId };
  }


  private async failure(s: MailServerRecord, e: unknown): Promise<CheckResult> {
    if (e instanceof GraphError || e instanceof SmtpError) {
      const application = await this.deps.tokens.applicationContext(s.id);
      const x = explain(application ? ({ ...e.evidence, application } as Evidence) : e.evidence, e.message);
      // Kept on the server so the checklist and health page show the refusal until a later success.
      await setMailServerError(this.deps.db, s.id, { code: x.code, message: x.message, fix: x.fix, evidence: x.evidence, at: this.now().toISOString() });
      return { ok: false, message: x.message, fix: x.fix, code: x.code, guideStep: x.guideStep, evidence: e.evidence };
    }
    if (isMailroomError(e)) {
      return {
        ok: false,
        message: e.message,
        code: e.code,
        ...(e.fix !== undefined && { fix: e.fix }),
        ...(e.evidence !== undefined && { evidence: e.evidence }),
      };
    }
    throw e;
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
