// Typed fetch client for the Mailroom JSON API (same origin, cookie session, CSRF header on writes).

export interface Admin {
  id: string | number;
  email: string;
}

export interface Session {
  admin: Admin;
  csrfToken: string;
}

export type AuthType = 'outlook_oauth' | 'gmail_oauth' | 'password' | 'none';

/** One Authenticate Using option as the API describes it: the form shows what the method needs. */
export interface AuthMethodChoice {
  authType: AuthType;
  label: string;
  mechanism: 'xoauth2' | 'password' | 'none';
  incoming: boolean;
  /** Microsoft Graph can be used with it (Send Using / Server Type). */
  graph: boolean;
  oauth: {
    /** Provider id: the redirect path segment and the guide's name. */
    id: string;
    redirectUri: string;
    /** "Connect your Gmail account" */
    connectLabel: string;
    accountName: string;
    /** Sign-in is per directory tenant (the Tenant field). */
    tenant: boolean;
    help: { redirectUri: string; clientId: string; clientIdPlaceholder: string; clientSecret: string; username: string };
    /** Where the client secret's expiry date is read; null: the provider's secrets do not expire (no date field). */
    secretExpiryHelp: string | null;
    /** Signing in with another account that has Send As rights on Username (a shared mailbox). */
    sharedMailbox: boolean;
    /** Client Credential (secret or certificate) and Access (delegated or application) are offered. */
    applicationAccess: boolean;
    /** The provider's own hosts' sending limits, as hints next to the limit fields. */
    sendingLimitHints: Partial<Record<SendLimitField, string>> | null;
  } | null;
  smtp: { host: string; port: number; security: SmtpSecurity } | null;
  imap: { host: string; port: number; security: ImapSecurity } | null;
}
export type SmtpSecurity = 'starttls' | 'tls' | 'none';

/** Outlook OAuth: how Mailroom proves it is the app — "Client Credential". */
export type ClientCredential = 'secret' | 'certificate';
/** Outlook OAuth: for whom tokens are issued — "Access". */
export type Access = 'delegated' | 'application';

export interface CertificateInfo {
  /** SHA-1, upper-case hex, as Azure shows it. */
  thumbprint: string;
  /** base64url, the x5t#S256 value. */
  thumbprintSha256: string;
  subject: string;
  /** ISO timestamps */
  notBefore: string;
  notAfter: string;
}

/** The public side of the server's certificate credential (never any private key material). */
export interface CertificateView extends CertificateInfo {
  source: 'generated' | 'imported';
  /** A rolled certificate waiting to be proven by a token request (uploaded to Azure). */
  pending: (CertificateInfo & { createdAt: string }) | null;
}

/** The Outlook OAuth connection fields both kinds of server share (defaults where not Outlook OAuth). */
export interface OutlookConnectionView {
  clientCredential: ClientCredential;
  access: Access;
  certificate: CertificateView | null;
  /** Another server whose connection this one uses. */
  tokenSourceId: string | null;
  /** A personal mailbox: the server whose app registration (and secret or certificate) it signs in with. */
  appSourceId?: string | null;
  /** Roles seen in the last verified application token, e.g. ["SMTP.SendAsApp"]. */
  applicationRoles: string[] | null;
}

export type CertificateImport = { certificatePem: string; privateKeyPem: string } | { pfxBase64: string; pfxPassword?: string };

/** POST …/connect: delegated access answers the sign-in URL, application access checks the app token now. */
export type ConnectAnswer = { authorizeUrl: string } | { status: 'valid'; roles: string[] };
/** How an outgoing server sends: SMTP with XOAUTH2, or Microsoft Graph. */
export type SendUsing = 'smtp' | 'graph';
export type TokenStatus = 'not_connected' | 'valid' | 'reconnect_needed';

/** A failure explained by the server: what happened, how to fix it, and the raw evidence. */
export interface Problem {
  code?: string;
  message: string;
  fix?: string;
  evidence?: unknown;
  /** Step of the connection guide (1–7) that sets up or fixes this; also found as evidence.guideStep. */
  guideStep?: number;
}

/** Something to know about a connection that works; `signInBy`: when a person must sign in again. */
export type ServerNotice = Problem & { code: string; at?: string; signInBy?: string };

/** Where a client secret stands against the 30/7/1-day warnings. */
export interface SecretExpiry {
  state: 'unknown' | 'ok' | 'expiring' | 'expired';
  /** Whole days left (negative once expired), null without a date. */
  daysLeft: number | null;
  /** The tightest threshold reached (30, 7, 1, or 0 when expired), null before the first. */
  threshold: number | null;
}

/** One line of a server's live checklist. */
export interface ChecklistItem {
  key: 'credentials' | 'consent' | 'token' | 'login';
  label: string;
  state: 'done' | 'failed' | 'todo';
  /** Step of the connection guide where this is set up or fixed; null for servers without OAuth. */
  guideStep: number | null;
  detail: string | null;
}

export interface MailServer extends Partial<OutlookConnectionView> {
  id: string;
  name: string;
  authType: AuthType;
  username: string;
  /** null for methods without OAuth. */
  redirectUri: string | null;
  clientId: string;
  clientSecretSet: boolean;
  /** Username/Password: a password is stored (it is never returned). */
  passwordSet: boolean;
  /** YYYY-MM-DD */
  clientSecretExpiresAt: string | null;
  tenant: string;
  smtpHost: string;
  smtpPort: number;
  smtpSecurity: SmtpSecurity;
  sendUsing: SendUsing;
  priority: number;
  fromFilter: string | null;
  tokenStatus: TokenStatus;
  tokenStatusReason: string | null;
  connectedAccount: string | null;
  /** ISO timestamp */
  tokenExpiresAt: string | null;
  lastError: (Problem & { code: string; at?: string }) | null;
  /** What the admin should know about a connection that works (e.g. a refresh token that dies in 7 days); never an error. */
  notice?: ServerNotice | null;
  /** Shared mailbox: another account with Send As rights on Username may sign in. */
  allowAccountMismatch: boolean;
  clientSecretExpiry: SecretExpiry;
  checklist: ChecklistItem[];
  /** The mailbox's sending limits; null: no limit. */
  maxConnections: number | null;
  messagesPerMinute: number | null;
  recipientsPerDay: number | null;
  recipientsPerMessage: number | null;
  sending: SendStatus | null;
  /** Microsoft's admin consent page for this app and tenant; null for providers without one. */
  adminConsentUrl: string | null;
  /** The ERP user whose mailbox this is; null: a shared mailbox. */
  owner?: string | null;
  createdAt: string;
  updatedAt: string;
}

/** A server's sending against its limits (sliding windows, as Exchange counts). */
export interface SendStatus {
  recipientsToday: number;
  recipientsPerDay: number | null;
  messagesLastMinute: number;
  messagesPerMinute: number | null;
  queued: number;
  /** ISO timestamp; null when nothing waits or the next may go now. */
  nextSendAt: string | null;
  held: number;
  /** ISO timestamp a quota hold ends; null when held until the server is fixed. */
  heldUntil: string | null;
}

export type SendLimitField = 'maxConnections' | 'messagesPerMinute' | 'recipientsPerDay' | 'recipientsPerMessage';

export interface MailServerInput {
  name: string;
  authType: AuthType;
  username: string;
  clientId: string;
  /** Write-only; omitted to keep the stored secret. */
  clientSecret?: string;
  /** Username/Password only; write-only, omitted to keep the stored password. */
  password?: string;
  tenant: string;
  smtpHost: string;
  /** null when the field is left empty, so the server reports it as a field error. */
  smtpPort: number | null;
  smtpSecurity: SmtpSecurity;
  sendUsing: SendUsing;
  priority: number | null;
  fromFilter: string | null;
  clientSecretExpiresAt: string | null;
  allowAccountMismatch: boolean;
  maxConnections: number | null;
  messagesPerMinute: number | null;
  recipientsPerDay: number | null;
  recipientsPerMessage: number | null;
  clientCredential?: ClientCredential;
  access?: Access;
  /** Another mail server whose connection is used; null: this server's own. */
  tokenSourceId?: string | null;
}

export interface MailServerDefaults {
  redirectUri: string;
  authType: AuthType;
  tenant: string;
  smtpHost: string;
  smtpPort: number;
  smtpSecurity: SmtpSecurity;
  sendUsing: SendUsing;
  priority: number;
  maxConnections: number | null;
  messagesPerMinute: number | null;
  recipientsPerDay: number | null;
  recipientsPerMessage: number | null;
  authMethods: AuthMethodChoice[];
  /** MICROSOFT_AUTHORITY_HOST and MICROSOFT_GRAPH_HOST (origins) this installation uses. */
  microsoftAuthorityHost: string;
  microsoftGraphHost: string;
}

export interface TestResult {
  ok: boolean;
  message: string;
  fix?: string;
  code?: string;
  /** Step of the connection guide that fixes a failure. */
  guideStep?: number;
  evidence?: unknown;
}

export interface SendTestResult extends TestResult {
  messageId?: string;
  /** The test email under Emails (listed as it ended, sent or failed). */
  outboxId?: string;
}

export type MessageState = 'queued' | 'sending' | 'sent' | 'failed' | 'held' | 'cancelled';

/** SMTP reply that failed a delivery attempt. */
export interface SmtpEvidence {
  kind: 'smtp';
  responseCode?: number;
  enhancedStatus?: string;
  /** The server's reply text, e.g. "550 5.7.708 Service unavailable. Access denied, traffic not accepted…" */
  response?: string;
  command?: string;
}

export interface NetworkEvidence {
  kind: 'network';
  code: string;
  message: string;
}

export interface MessageError extends Problem {
  code: string;
  /** true: Mailroom will try again by itself. */
  temporary?: boolean;
  evidence?: SmtpEvidence | NetworkEvidence | Record<string, unknown>;
}

export interface Attachment {
  filename: string;
  contentType: string;
  size: number;
}

export interface Message {
  id: string;
  state: MessageState;
  from: string;
  to: string[];
  cc: string[];
  bcc: string[];
  replyTo: string | null;
  subject: string;
  mailServerId: string | null;
  mailServerName: string | null;
  messageId: string | null;
  attempts: number;
  maxAttempts: number;
  /** ISO timestamps */
  nextAttemptAt: string | null;
  sentAt: string | null;
  createdAt: string;
  updatedAt: string;
  lastError: MessageError | null;
  attachments: Attachment[];
  /** Set for messages an application handed to the SMTP listener; null for the REST API. */
  receivedVia: { protocol: 'smtp'; clientAddress: string; apiKeyName: string } | null;
  /** The API key that queued it; null when an admin did, from the UI. */
  apiKeyId: string | null;
  /** After the 250, from the reports that came back: the worst recipient's outcome, or null. */
  outcome: MessageOutcome | null;
  /** One message only: each recipient's outcome once sent. */
  recipients?: MessageRecipient[];
  /** One message only: the bounces, delay reports and auto-replies about it. */
  reports?: DeliveryReport[];
  /** Once sent: the mail server's reply to the message (e.g. "250 2.0.0 OK <id> [Hostname=…]"). */
  smtpResponse?: string | null;
  /** One message only: what it says as queued; null for a message received over SMTP (sent as it came). */
  content?: { text: string | null; html: string | null; truncated: boolean; headers: Record<string, string> } | null;
}

export type MessageOutcome = 'bounced' | 'delayed' | 'auto_replied' | 'delivered';

export interface MessageRecipient {
  address: string;
  state: 'sent' | MessageOutcome;
  status: string | null;
  diagnostic: string | null;
  category: string | null;
  reportedAt: string | null;
}

export interface CategoryExplanation {
  code: string;
  cause: string;
  fix: string;
}

export interface DeliveryReport {
  id: string;
  kind: 'delivery_status' | 'auto_reply' | 'read_receipt';
  event: string | null;
  format: string;
  reportingMta: string | null;
  from: string | null;
  subject: string | null;
  recipients: Array<{ address: string; action: string; status: string | null; diagnostic: string | null; category: string; explanation: CategoryExplanation }>;
  reportedAt: string;
  /** The report exactly as it came, for the evidence. */
  rawUrl: string | null;
}

export interface ReportSettings {
  suppressionPolicy: 'warn' | 'refuse';
  deliverReports: boolean;
}

export interface Suppression {
  address: string;
  reason: 'hard' | 'soft';
  outboxMessageId: string | null;
  status: string | null;
  diagnostic: string | null;
  category: string | null;
  bounces: number;
  createdAt: string;
  explanation: CategoryExplanation | null;
}

export interface MessageFilters {
  state?: MessageState | '';
  mailServerId?: string;
  /** Subject or address. */
  q?: string;
}

export interface MessagePage {
  items: Message[];
  nextCursor: string | null;
}

export type ApiKeyScope = 'send' | 'outbox:read' | 'inbound:read' | 'connect' | 'admin';

export interface ApiKey {
  id: string;
  name: string;
  scopes: ApiKeyScope[];
  /** The outgoing servers the key may send through and read; null: every one. */
  mailServerIds: string[] | null;
  /** The incoming servers whose mail the key may read; null: every one. */
  incomingServerIds: string[] | null;
  /** The first characters of the key, enough to recognise it. */
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

/** Returned once, by the create call: the only time the full key is available. */
export interface CreatedApiKey extends ApiKey {
  key: string;
}

/** How an incoming server reads mail: IMAP with XOAUTH2, or Microsoft Graph. */
export type ServerType = 'imap' | 'graph';
export type ImapSecurity = 'tls' | 'starttls';
export type AfterFetch = 'mark_read' | 'move' | 'leave';

/** The last (or current) fetch of an incoming mail server. */
export interface FetchStatus {
  running: boolean;
  fetched: number;
  /** Messages new to Mailroom in this fetch (fetched also counts ones already imported). */
  imported: number;
  /** null while the number of messages to fetch is not known yet. */
  total: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  error: (Problem & { code: string }) | null;
}

export interface IncomingServer extends Partial<Omit<OutlookConnectionView, 'tokenSourceId'>> {
  id: string;
  name: string;
  serverType: ServerType;
  authType: AuthType;
  imapHost: string;
  imapPort: number;
  imapSecurity: ImapSecurity;
  username: string;
  folder: string;
  afterFetch: AfterFetch;
  moveToFolder: string | null;
  intervalMinutes: number;
  /** The ERP user whose mailbox this is; null: a shared mailbox. */
  owner?: string | null;
  active: boolean;
  /** null for methods without OAuth. */
  redirectUri: string | null;
  clientId: string | null;
  clientSecretSet: boolean;
  /** Username/Password: a password is stored (it is never returned). */
  passwordSet: boolean;
  tenant: string;
  /** The outgoing mail server whose OAuth connection this server reuses. */
  tokenSourceId: string | null;
  tokenSourceName: string | null;
  tokenStatus: TokenStatus;
  tokenStatusReason: string | null;
  connectedAccount: string | null;
  tokenExpiresAt: string | null;
  lastError: (Problem & { code: string; at?: string }) | null;
  notice?: ServerNotice | null;
  checklist: ChecklistItem[];
  lastFetchAt: string | null;
  importedCount: number;
  fetch: FetchStatus;
  /** Microsoft Graph change notifications; null for IMAP servers. */
  push: PushStatus | null;
  createdAt: string;
  updatedAt: string;
}

export interface IncomingServerInput {
  name: string;
  serverType: ServerType;
  authType: AuthType;
  imapHost: string;
  /** null when the field is left empty, so the server reports it as a field error. */
  imapPort: number | null;
  imapSecurity: ImapSecurity;
  username: string;
  folder: string;
  afterFetch: AfterFetch;
  moveToFolder: string | null;
  intervalMinutes: number | null;
  active: boolean;
  tokenSourceId: string | null;
  clientId: string | null;
  /** Write-only; omitted to keep the stored secret. */
  clientSecret?: string;
  /** Username/Password only; write-only, omitted to keep the stored password. */
  password?: string;
  tenant: string | null;
  clientCredential?: ClientCredential;
  access?: Access;
}

export interface IncomingServerDefaults {
  redirectUri: string;
  serverType: ServerType;
  authType: AuthType;
  imapHost: string;
  imapPort: number;
  imapSecurity: ImapSecurity;
  folder: string;
  afterFetch: AfterFetch;
  intervalMinutes: number;
  tenant: string;
  authMethods: AuthMethodChoice[];
}

/** A connected outgoing mail server for the same mailbox: its OAuth consent also covers IMAP. */
export interface ReusableConnection {
  mailServerId: string;
  name: string;
  username: string;
  connectedAccount: string | null;
  /** An SMTP connection serves IMAP, a Graph one serves Graph. */
  sendUsing: SendUsing;
}

export interface IncomingTestResult extends TestResult {
  messageCount?: number;
}

export type WebhookDeliveryState = 'pending' | 'delivered' | 'failed';
/** 'none': no webhook was active when the message arrived. */
export type InboundDeliveryState = WebhookDeliveryState | 'none';

/** An attachment of a received message: `filename` is safe to save under; the sender's own name only as data. */
export interface InboundAttachment extends Attachment {
  originalFilename?: string;
}

export type MessageProblemCode = 'too_large' | 'too_many_parts' | 'too_deep' | 'malformed';

/** Why a received message could not be read whole (it was imported all the same). */
export interface MessageProblem {
  code: MessageProblemCode;
  message: string;
}

export interface InboundMessage {
  id: string;
  serverId: string;
  serverName: string;
  folder: string;
  messageId: string | null;
  from: string;
  to: string[];
  cc: string[];
  subject: string;
  /** The Date header, ISO */
  date: string | null;
  inReplyTo: string | null;
  references: string[];
  attachments: InboundAttachment[];
  size: number;
  /** Set when the message answers an email sent through Mailroom. */
  inReplyToOutboxId: string | null;
  receivedAt: string;
  delivery: { state: InboundDeliveryState };
  problem: MessageProblem | null;
  /** The text or HTML is only the beginning; the whole message is at rawUrl. */
  truncated: boolean;
  textTruncated: boolean;
  htmlTruncated: boolean;
  /** Null when the raw message was not kept (larger than INBOUND_MAX_MESSAGE_MB). */
  rawUrl: string | null;
}

export interface WebhookDelivery {
  id: string;
  webhookId: string;
  webhookUrl: string;
  inboundMessageId: string;
  subject: string;
  state: WebhookDeliveryState;
  attempts: number;
  /** HTTP status of the last attempt */
  lastStatus: number | null;
  lastError: string | null;
  nextAttemptAt: string | null;
  deliveredAt: string | null;
  createdAt: string;
  /** Every attempt, oldest first; a redelivery appends one. */
  attemptLog: WebhookDeliveryAttempt[];
}

export interface WebhookDeliveryAttempt {
  attempt: number;
  redelivery: boolean;
  outcome: 'delivered' | 'retry' | 'failed';
  status: number | null;
  error: string | null;
  at: string;
}

export interface InboundMessageDetail extends InboundMessage {
  text: string | null;
  html: string | null;
  deliveries: WebhookDelivery[];
}

export interface InboundMessageFilters {
  serverId?: string;
  /** Subject or address. */
  q?: string;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface Webhook {
  id: string;
  url: string;
  description: string | null;
  active: boolean;
  createdAt: string;
}

/** Returned once, by the create call: the only time the signing secret is available. */
export interface CreatedWebhook extends Webhook {
  secret: string;
}

export type ServerDirection = 'outgoing' | 'incoming';

/** One row of GET /api/v1/health/servers: every outgoing and incoming server. */
/** A Graph incoming server's change notifications: active until the subscription's expiry, or why not. */
export interface PushStatus {
  /** silent: subscribed, but a poll found mail no notification announced. */
  state: 'active' | 'silent' | 'off';
  until: string | null;
  reason: string | null;
  /** The interval delta runs at now: the long one while push works, the server's own otherwise. */
  pollEveryMinutes: number;
}

export interface ServerHealth {
  id: string;
  direction: ServerDirection;
  name: string;
  username: string;
  tokenStatus: TokenStatus;
  tokenStatusReason: string | null;
  /** null for incoming servers (their secret is not tracked). */
  clientSecretExpiry: SecretExpiry | null;
  checklist: ChecklistItem[];
  lastError: (Problem & { code: string; at?: string }) | null;
  /** Outgoing servers: sending against the mailbox's limits. */
  sending: SendStatus | null;
  /** Incoming Graph servers: change notifications. */
  push?: PushStatus | null;
}

export interface AuditEvent {
  id: string;
  /** ISO timestamp */
  at: string;
  /** admin:<id>, apikey:<id> or system */
  actor: string;
  /** The actor in words: the admin's email, API key <name>, command line (<user>), System. */
  actorDisplay?: string;
  /** e.g. mail_server.updated */
  action: string;
  targetType: string | null;
  targetId: string | null;
  details: Record<string, unknown> | null;
}

export class ApiError extends Error implements Problem {
  readonly status: number;
  readonly code: string;
  readonly fix?: string;
  readonly evidence?: unknown;
  /** Field the error is about (validation errors). */
  readonly field?: string;
  /** Message per field (validation errors). */
  readonly fields: Record<string, string>;

  constructor(status: number, body: Partial<Problem> & { field?: string; fields?: Record<string, string> }) {
    super(body.message || `Request failed (HTTP ${status}).`);
    this.name = 'ApiError';
    this.status = status;
    this.code = body.code ?? `HTTP_${status}`;
    if (body.fix !== undefined) this.fix = body.fix;
    if (body.evidence !== undefined) this.evidence = body.evidence;
    if (body.field !== undefined) this.field = body.field;
    this.fields = { ...(body.fields ?? {}) };
    // A validation error naming one field without a `fields` map: show its message next to that field.
    // (Other errors may name a field too, e.g. wrong credentials → password; those stay general alerts.)
    if (status === 400 && body.field && body.message && Object.keys(this.fields).length === 0) {
      this.fields[body.field] = body.message;
    }
  }

  get hasFieldErrors(): boolean {
    return Object.keys(this.fields).length > 0;
  }
}

/** Any thrown value as an ApiError (a network failure or a bug becomes status 0 with its message). */
export function asApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError(0, { message: String(e) });
}

let csrfToken: string | null = null;
let unauthorizedHandler: (() => void) | null = null;

/** Called when an authenticated request gets 401; returns an unsubscribe function. */
export function onUnauthorized(handler: () => void): () => void {
  unauthorizedHandler = handler;
  return () => {
    if (unauthorizedHandler === handler) unauthorizedHandler = null;
  };
}

interface RequestOptions {
  /** Redirect to the login page on 401 (default true). */
  authRedirect?: boolean;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

async function request<T>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;

  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? null : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, {
      code: 'NETWORK',
      message: 'Could not reach the Mailroom server.',
      fix: 'Check that the server is running and your network connection, then try again.',
    });
  }

  if (res.status === 204) return undefined as T;

  let data: unknown = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }

  if (!res.ok) {
    const err = isRecord(data) && isRecord(data.error) ? data.error : {};
    const error = new ApiError(res.status, {
      code: typeof err.code === 'string' ? err.code : undefined,
      message: typeof err.message === 'string' ? err.message : defaultMessage(res.status),
      fix: typeof err.fix === 'string' ? err.fix : undefined,
      evidence: err.evidence,
      field: typeof err.field === 'string' ? err.field : undefined,
      fields: isRecord(err.fields) ? stringValues(err.fields) : undefined,
    });
    if (res.status === 401 && opts.authRedirect !== false) unauthorizedHandler?.();
    throw error;
  }
  return data as T;
}

function stringValues(o: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(o)) if (typeof v === 'string') out[k] = v;
  return out;
}

function defaultMessage(status: number): string {
  if (status === 401) return 'You are not logged in.';
  if (status === 403) return 'This action is not allowed.';
  if (status === 404) return 'Not found.';
  if (status === 429) return 'Too many attempts. Wait a moment and try again.';
  return `Request failed (HTTP ${status}).`;
}

function remember(session: Session): Session {
  csrfToken = session.csrfToken;
  return session;
}

const ms = (id: string) => `/api/v1/mail-servers/${encodeURIComponent(id)}`;
const msg = (id: string) => `/api/v1/messages/${encodeURIComponent(id)}`;
const inc = (id: string) => `/api/v1/incoming-servers/${encodeURIComponent(id)}`;
const inbound = (id: string) => `/api/v1/inbound-messages/${encodeURIComponent(id)}`;
const hook = (id: string) => `/api/v1/webhooks/${encodeURIComponent(id)}`;

/** The two kinds of server share their connection routes under their own base. */
export type ServerBase = 'mail-servers' | 'incoming-servers';

/** One step of the guide's Application access variant, filled in by the server; `command` is Exchange Online PowerShell. */
export interface ApplicationGuideStep {
  title: string;
  text: string;
  command?: string;
}
const serverPath = (base: ServerBase, id: string) => (base === 'mail-servers' ? ms(id) : inc(id));

/** The public certificate for download: .pem or .cer (DER); `pending` for a rolled one not yet in use. */
export function certificateUrl(base: ServerBase, id: string, format: 'pem' | 'cer', pending = false): string {
  return `${serverPath(base, id)}/certificate.${format}${pending ? '?which=pending' : ''}`;
}

/** Where the original of an incoming message can be downloaded (message/rfc822). */
/** One attachment of an incoming message, always as a download. */
/** What a server list is filtered by: the owner's id, the connection state, a name or username. */
/** One server's outcome of a bulk action (code null when it worked). */
export interface BulkResult {
  id: string;
  ok: boolean;
  code: string | null;
  message: string;
  fix?: string;
  grantRevoked?: boolean;
  note?: string | null;
}

/** Ids one bulk request may name (the API's cap): a larger selection goes in pieces of this size. */
export const BULK_MAX_IDS = 200;

const serverBase = (d: ServerDirection) => (d === 'outgoing' ? '/api/v1/mail-servers' : '/api/v1/incoming-servers');

export interface ServerListFilters {
  owner?: string;
  state?: string;
  q?: string;
}

/** A page of a server list: `total` servers match the filters. */
export interface ServerPage<T> extends Page<T> {
  total: number;
}

function serverListQuery(f: ServerListFilters, cursor?: string): string {
  const q = new URLSearchParams();
  if (cursor) q.set('cursor', cursor);
  for (const [k, v] of Object.entries(f)) {
    // "Shared mailboxes" (no owner) is the API's shared=true; owner=shared would be an owner named so.
    if (k === 'owner' && v === 'shared') q.set('shared', 'true');
    else if (v) q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export function inboundAttachmentUrl(id: string, index: number): string {
  return `/api/v1/inbound-messages/${encodeURIComponent(id)}/attachments/${index}`;
}

export function inboundMessageRawUrl(id: string): string {
  return `${inbound(id)}/raw`;
}

function inboundQuery(filters: InboundMessageFilters, cursor: string | null, limit: number): string {
  const q = new URLSearchParams({ order: 'desc', limit: String(limit) });
  if (cursor) q.set('cursor', cursor);
  if (filters.serverId) q.set('serverId', filters.serverId);
  if (filters.q?.trim()) q.set('q', filters.q.trim());
  return q.toString();
}

function pageQuery(cursor: string | null, limit: number): string {
  const q = new URLSearchParams({ limit: String(limit) });
  if (cursor) q.set('cursor', cursor);
  return q.toString();
}

function messagesQuery(filters: MessageFilters, cursor: string | null, limit: number): string {
  const q = new URLSearchParams();
  if (filters.state) q.set('state', filters.state);
  if (filters.mailServerId) q.set('mailServerId', filters.mailServerId);
  if (filters.q?.trim()) q.set('q', filters.q.trim());
  q.set('limit', String(limit));
  if (cursor) q.set('cursor', cursor);
  return q.toString();
}

export const api = {
  getSession: async () => remember(await request<Session>('GET', '/api/v1/session', undefined, { authRedirect: false })),
  login: async (email: string, password: string) =>
    remember(await request<Session>('POST', '/api/v1/session', { email, password }, { authRedirect: false })),
  logout: async () => {
    try {
      await request<void>('DELETE', '/api/v1/session', undefined, { authRedirect: false });
    } finally {
      csrfToken = null;
    }
  },
  setup: async (token: string, email: string, password: string) =>
    remember(await request<Session>('POST', '/api/v1/setup', { token, email, password }, { authRedirect: false })),

  mailServerDefaults: () => request<MailServerDefaults>('GET', '/api/v1/mail-servers/defaults'),
  listMailServers: () => request<{ items: MailServer[] }>('GET', '/api/v1/mail-servers'),
  /** The lists' filters (owner, state, search) go to the server; older servers ignore them and answer every item. */
  listMailServersFiltered: (f: ServerListFilters, cursor?: string) =>
    request<ServerPage<MailServer>>('GET', `/api/v1/mail-servers${serverListQuery(f, cursor)}`),
  bulkServers: async (direction: ServerDirection, action: 'test' | 'disconnect', ids: string[]) => {
    const results: BulkResult[] = [];
    for (let i = 0; i < ids.length; i += BULK_MAX_IDS) {
      const r = await request<{ results: BulkResult[] }>('POST', `${serverBase(direction)}/bulk`, { action, ids: ids.slice(i, i + BULK_MAX_IDS) });
      results.push(...r.results);
    }
    return results;
  },
  listOwners: (direction: ServerDirection, opts: { cursor?: string; q?: string; limit?: number } = {}) =>
    request<Page<{ owner: string; servers: number }>>(
      'GET',
      `/api/v1/owners?${new URLSearchParams({ direction, limit: String(opts.limit ?? 200), ...(opts.cursor && { cursor: opts.cursor }), ...(opts.q && { q: opts.q }) })}`,
    ),
  getMailServer: (id: string) => request<MailServer>('GET', ms(id)),
  createMailServer: (input: MailServerInput) => request<MailServer>('POST', '/api/v1/mail-servers', input),
  updateMailServer: (id: string, patch: Partial<MailServerInput>) => request<MailServer>('PATCH', ms(id), patch),
  deleteMailServer: (id: string) => request<void>('DELETE', ms(id)),
  connectMailServer: (id: string) => request<ConnectAnswer>('POST', `${ms(id)}/connect`),
  testMailServer: (id: string) => request<TestResult>('POST', `${ms(id)}/test`),
  sendTestEmail: (id: string, to: string) => request<SendTestResult>('POST', `${ms(id)}/send-test`, { to }),
  /** Forget the mailbox's tokens; returns the updated server. */
  disconnectMailServer: (id: string) => request<MailServer>('POST', `${ms(id)}/disconnect`),

  /** Newest first; pass the previous page's nextCursor for the next page. */
  listMessages: (filters: MessageFilters = {}, cursor: string | null = null, limit = 50) =>
    request<MessagePage>('GET', `/api/v1/messages?${messagesQuery(filters, cursor, limit)}`),
  getMessage: (id: string) => request<Message>('GET', msg(id)),
  retryMessage: (id: string) => request<Message>('POST', `${msg(id)}/retry`),
  cancelMessage: (id: string) => request<Message>('POST', `${msg(id)}/cancel`),

  listApiKeys: () => request<{ items: ApiKey[] }>('GET', '/api/v1/api-keys'),
  createApiKey: (input: { name: string; scopes: ApiKeyScope[]; mailServerIds?: string[]; incomingServerIds?: string[] }) =>
    request<CreatedApiKey>('POST', '/api/v1/api-keys', input),
  revokeApiKey: (id: string) => request<void>('DELETE', `/api/v1/api-keys/${encodeURIComponent(id)}`),

  incomingServerDefaults: () => request<IncomingServerDefaults>('GET', '/api/v1/incoming-servers/defaults'),
  listIncomingServers: () => request<{ items: IncomingServer[] }>('GET', '/api/v1/incoming-servers'),
  listIncomingServersFiltered: (f: ServerListFilters, cursor?: string) =>
    request<ServerPage<IncomingServer>>('GET', `/api/v1/incoming-servers${serverListQuery(f, cursor)}`),
  getIncomingServer: (id: string) => request<IncomingServer>('GET', inc(id)),
  createIncomingServer: (input: IncomingServerInput) =>
    request<IncomingServer>('POST', '/api/v1/incoming-servers', input),
  updateIncomingServer: (id: string, patch: Partial<IncomingServerInput>) =>
    request<IncomingServer>('PATCH', inc(id), patch),
  deleteIncomingServer: (id: string) => request<void>('DELETE', inc(id)),
  /** Connected outgoing mail servers for this mailbox, whose consent the incoming server can reuse. */
  reusableConnections: (username: string) =>
    request<{ items: ReusableConnection[] }>(
      'GET',
      `/api/v1/incoming-servers/reusable-connections?${new URLSearchParams({ username }).toString()}`,
    ),
  connectIncomingServer: (id: string) => request<ConnectAnswer>('POST', `${inc(id)}/connect`),
  testIncomingServer: (id: string) => request<IncomingTestResult>('POST', `${inc(id)}/test`),
  /** Forget the mailbox's tokens; returns the updated server. */
  disconnectIncomingServer: (id: string) => request<IncomingServer>('POST', `${inc(id)}/disconnect`),
  /** Starts a fetch in the background (202); follow it with getIncomingServer(id).fetch. 409 while one runs. */
  fetchIncomingServer: (id: string) => request<{ started: boolean }>('POST', `${inc(id)}/fetch`),

  /** Newest first; pass the previous page's nextCursor for the next page. */
  listInboundMessages: (filters: InboundMessageFilters = {}, cursor: string | null = null, limit = 50) =>
    request<Page<InboundMessage>>('GET', `/api/v1/inbound-messages?${inboundQuery(filters, cursor, limit)}`),
  getInboundMessage: (id: string) => request<InboundMessageDetail>('GET', inbound(id)),

  listWebhooks: () => request<{ items: Webhook[] }>('GET', '/api/v1/webhooks'),
  createWebhook: (input: { url: string; description?: string }) =>
    request<CreatedWebhook>('POST', '/api/v1/webhooks', input),
  updateWebhook: (id: string, patch: { active?: boolean; description?: string | null; url?: string }) =>
    request<Webhook>('PATCH', hook(id), patch),
  deleteWebhook: (id: string) => request<void>('DELETE', hook(id)),
  listWebhookDeliveries: (id: string, cursor: string | null = null, limit = 50) =>
    request<Page<WebhookDelivery>>('GET', `${hook(id)}/deliveries?${pageQuery(cursor, limit)}`),
  redeliverWebhookDelivery: (id: string) =>
    request<WebhookDelivery>('POST', `/api/v1/webhook-deliveries/${encodeURIComponent(id)}/redeliver`),

  /** Every outgoing and incoming server with its token, secret expiry, checklist and last error. */
  serverHealth: () => request<{ items: ServerHealth[] }>('GET', '/api/v1/health/servers'),
  /** Newest first; pass the previous page's nextCursor for the next page. */
  listAuditEvents: (cursor: string | null = null, limit = 50) =>
    request<Page<AuditEvent>>('GET', `/api/v1/audit-events?${pageQuery(cursor, limit)}`),
  listSuppressions: (cursor: string | null = null, limit = 50) =>
    request<Page<Suppression>>('GET', `/api/v1/suppressions?${pageQuery(cursor, limit)}`),
  watchMailbox: (id: string) => request<IncomingServer>('POST', `${ms(id)}/watch`, {}),
  getReportSettings: (id: string) => request<ReportSettings>('GET', `${ms(id)}/report-settings`),
  setReportSettings: (id: string, settings: Partial<ReportSettings>) => request<ReportSettings>('PATCH', `${ms(id)}/report-settings`, settings),
  /** Certificate credential and application access of an Outlook OAuth server (either base). */
  generateCertificate: <S>(base: ServerBase, id: string) => request<S>('POST', `${serverPath(base, id)}/certificate`, {}),
  importCertificate: <S>(base: ServerBase, id: string, body: CertificateImport) => request<S>('POST', `${serverPath(base, id)}/certificate/import`, body),
  rollCertificate: <S>(base: ServerBase, id: string) => request<S>('POST', `${serverPath(base, id)}/certificate/roll`, {}),
  dismissRolledCertificate: <S>(base: ServerBase, id: string) => request<S>('POST', `${serverPath(base, id)}/certificate/dismiss-rolled`, {}),
  adminConsentUrl: (base: ServerBase, id: string) => request<{ url: string }>('GET', `${serverPath(base, id)}/admin-consent-url`),
  applicationGuide: (base: ServerBase, id: string) => request<{ steps: ApplicationGuideStep[] }>('GET', `${serverPath(base, id)}/application-guide`),
  liftSuppression: (address: string) => request<void>('DELETE', `/api/v1/suppressions/${encodeURIComponent(address)}`),
};
