// A Microsoft Graph stand-in for the mail endpoints Mailroom uses, over HTTPS with the test CA. Access
// tokens are checked by RFC 7662 introspection at the test authorization server, as Graph checks its own:
// the token must be active, issued for the Graph audience, and carry the permission the endpoint needs
// (Mail.Send, Mail.ReadWrite, User.Read). Shapes, limits and error codes follow Microsoft's documentation:
// sendMail with a base64 MIME body (4 MB request limit), drafts, attachments under 3 MB, upload sessions
// (chunks in multiples of 320 KiB, at most 60 MiB), delta queries with @odata.nextLink/@odata.deltaLink,
// 429 with Retry-After, and errors as {"error":{"code","message"}}. Like Exchange Online, it serves at most
// 4 requests at once per mailbox (MailboxConcurrency, counted over the /v1.0/users/{id}/... routes) and
// answers one more with 429 ApplicationThrottled.
// Change notifications as Microsoft documents them (subscription resource type; "Set up notifications for
// changes in resource data"; "Reduce missing subscriptions and change notifications"): POST /subscriptions
// validates notificationUrl and lifecycleNotificationUrl by posting ?validationToken=… and wants the token
// back as text/plain with 200 within 10 s, else 400 and no subscription; expirationDateTime at most 10,080
// minutes ahead for Outlook messages; clientState at most 128 characters; PATCH renews, DELETE removes; an
// expired subscription is gone (404) without a word. Each new message in a subscribed folder is posted as a
// change notification carrying the subscription's clientState; lifecycle events are posted on demand.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';

export const GRAPH_AUDIENCE = 'https://graph.microsoft.com';
const MB = 1024 * 1024;
/** Graph's limit on one request body (sendMail with MIME, a draft, an attachment). */
export const GRAPH_REQUEST_LIMIT = 4 * MB;
const UPLOAD_CHUNK_UNIT = 320 * 1024;
/**
 * Exchange Online's Graph limit: 4 concurrent requests per app per mailbox ("MailboxConcurrency",
 * Microsoft Graph throttling limits, Outlook service limits). The stand-in has one app.
 */
export const MAILBOX_CONCURRENCY = 4;

/** Microsoft's maximum lifetime of a subscription to Outlook messages. */
export const MESSAGE_SUBSCRIPTION_MAX_MINUTES = 10_080;
/** Microsoft gives the validation handshake this long. */
const VALIDATION_TIMEOUT_MS = 10_000;
/** Microsoft expects a notification to be answered within 3 s (slower endpoints are throttled, then dropped). */
const NOTIFICATION_TIMEOUT_MS = 3_000;

export interface GraphSubscription {
  id: string;
  mailbox: string;
  folder: string;
  resource: string;
  changeType: string;
  notificationUrl: string;
  lifecycleNotificationUrl: string | null;
  clientState: string | null;
  expirationDateTime: string;
}

export interface GraphSentMessage {
  mailbox: string;
  /** Raw MIME as sent (sendMail with a MIME body). */
  mime?: Buffer;
  /** A draft sent after its attachments were uploaded. */
  draft?: GraphDraft;
  at: Date;
}

export interface GraphDraft {
  id: string;
  json: Record<string, unknown>;
  attachments: Array<{ name: string; contentType: string; bytes: Buffer; via: 'inline' | 'upload-session' }>;
}

interface StoredMessage {
  immutableId: string;
  folder: string;
  mime: Buffer;
  endless?: boolean;
  isRead: boolean;
  subject: string;
  /** Change counter at the last change: delta returns what changed after a token's counter. */
  changed: number;
  removed: boolean;
}

interface Mailbox {
  id: string;
  address: string;
  /** No Exchange Online mailbox: mail endpoints answer MailboxNotEnabledForRESTAPI. */
  unlicensed: boolean;
  /** Addresses this mailbox may send as besides its own (Send As rights). */
  sendAs: Set<string>;
  folders: Map<string, { id: string; displayName: string }>;
  messages: Map<string, StoredMessage>;
  drafts: Map<string, GraphDraft>;
}

export interface GraphServerOptions {
  tls: { cert: string; key: string };
  /** The authorization server's introspection URL with its client credentials (the Dovecot one). */
  introspectionUrl: string;
  /** Where app-only tokens (client credentials, JWTs with `roles`) are checked: AuthServer.httpAppTokenUrl. */
  appTokenUrl?: string;
  mailboxes: string[];
  unlicensed?: string[];
  /** Messages per delta page when the client does not ask (Prefer: odata.maxpagesize). */
  defaultPageSize?: number;
  /**
   * Requests served at once per mailbox before one more is answered 429 ApplicationThrottled
   * (default MAILBOX_CONCURRENCY, as Exchange Online; null: no limit, only the peak is recorded).
   */
  mailboxConcurrency?: number | null;
}

export interface GraphServer {
  url: string;
  sent: GraphSentMessage[];
  /** Every request (method and path, when it arrived, whether it carried a token), for counting requests per message. */
  requests: Array<{ method: string; path: string; query: string; status: number; at: number; token: boolean }>;
  /**
   * The most requests at once per mailbox (its address, lowercased; a segment that names no mailbox,
   * `me` included, counts under itself), a request refused for being over the limit included: above
   * the limit means the client tried more than Exchange serves. Upload URLs do not count.
   */
  peakConcurrent: Map<string, number>;
  /** How many requests were answered 429 ApplicationThrottled for being over the MailboxConcurrency limit. */
  concurrencyRefusals: number;
  /** The next `count` requests (any endpoint but upload URLs) answer 429 with Retry-After. */
  throttle(count: number, retryAfterSeconds: number): void;
  /** After `okRequests` more requests, one answers 503 ServiceUnavailable (an outage mid-fetch). */
  failAfter(okRequests: number): void;
  /**
   * Adds a message to a folder (default inbox) of a mailbox; returns its immutable id. `endless`: its
   * $value never ends (64 KB chunks until the client hangs up).
   */
  deliver(mailbox: string, mime: Buffer | string, opts?: { folder?: string; isRead?: boolean; endless?: boolean }): string;
  /**
   * Hostile answers, each for the next delta request only: `rewrite` passes the real page through a
   * function (a link to another origin, a wrong type); `endless` streams a JSON body that never ends;
   * `declared` announces a body of that many bytes and sends it slowly.
   */
  nextDelta(answer: { rewrite: (page: Record<string, unknown>) => unknown } | { endless: true } | { declared: number }): void;
  /** Bytes written in hostile bodies (endless delta, endless $value) so far: what a client read before it hung up. */
  readonly hostileBytes: number;
  message(mailbox: string, immutableId: string): { folder: string; isRead: boolean } | undefined;
  grantSendAs(mailbox: string, address: string): void;
  /** Live subscriptions (expired ones are dropped, as Microsoft deletes them). */
  subscriptions(): GraphSubscription[];
  /** Every notification posted: which subscription, what (a change or a lifecycle event), the answer's status (0: no answer). */
  posted: Array<{ subscriptionId: string; kind: string; status: number; at: number }>;
  /** Posts `count` change notifications for the subscription at once (as separate requests), as for new mail. */
  notify(subscriptionId: string, count?: number): Promise<void>;
  /** Posts a lifecycle event; subscriptionRemoved also deletes the subscription, as Microsoft does. */
  lifecycle(subscriptionId: string, event: 'reauthorizationRequired' | 'subscriptionRemoved' | 'missed'): Promise<void>;
  /** Drops the subscription silently, as when it expires. */
  expire(subscriptionId: string): void;
  /** Whether new mail posts change notifications (default true): off, delivery is as if Graph dropped them. */
  notifications: boolean;
  close(): Promise<void>;
}

class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const guid = (seed: string) => {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
};

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    req.on('end', () => (size > limit ? reject(new GraphError(413, 'RequestEntityTooLarge', `The request body is larger than ${limit / MB} MB.`)) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}

const headerOf = (mime: Buffer, name: string) => new RegExp(`^${name}:[ \\t]*(.*(?:\\r?\\n[ \\t].*)*)`, 'im').exec(mime.toString('latin1').split(/\r?\n\r?\n/)[0] ?? '')?.[1]?.replace(/\r?\n[ \t]/g, ' ').trim();

export async function startGraphServer(opts: GraphServerOptions): Promise<GraphServer> {
  const mailboxes = new Map<string, Mailbox>();
  for (const address of opts.mailboxes) {
    const a = address.toLowerCase();
    const folders = new Map<string, { id: string; displayName: string }>();
    for (const [wellKnown, displayName] of [['inbox', 'Inbox'], ['archive', 'Archive'], ['deleteditems', 'Deleted Items'], ['sentitems', 'Sent Items'], ['drafts', 'Drafts']] as const) {
      folders.set(wellKnown, { id: `AQMk${guid(`${a}/${wellKnown}`).replace(/-/g, '')}`, displayName });
    }
    mailboxes.set(a, { id: guid(a), address: a, unlicensed: (opts.unlicensed ?? []).map((x) => x.toLowerCase()).includes(a), sendAs: new Set(), folders, messages: new Map(), drafts: new Map() });
  }
  const sent: GraphSentMessage[] = [];
  const requests: GraphServer['requests'] = [];
  const uploads = new Map<string, { mailbox: Mailbox; draft: GraphDraft; name: string; contentType: string; size: number; received: Buffer[]; next: number }>();
  let throttled = 0;
  let failIn = -1;
  let throttleSeconds = 1;
  let changeCounter = 0;
  const concurrencyLimit = opts.mailboxConcurrency === undefined ? MAILBOX_CONCURRENCY : opts.mailboxConcurrency;
  const inFlight = new Map<string, number>();
  const peakConcurrent = new Map<string, number>();
  let concurrencyRefusals = 0;
  const rounds = new Map<string, { ids: string[]; upTo: number; offset: number }>();
  let hostileDelta: Parameters<GraphServer['nextDelta']>[0] | undefined;
  let hostileBytes = 0;
  const subs = new Map<string, GraphSubscription & { tenantId: string }>();
  const posted: GraphServer['posted'] = [];
  const live = () => {
    for (const [id, x] of subs) if (Date.parse(x.expirationDateTime) <= Date.now()) subs.delete(id);
    return [...subs.values()];
  };
  const isLoopbackUrl = (u: URL) => ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
  /** Graph's notification requests: JSON, no Authorization; the answer's status recorded. */
  async function post(target: string, body: unknown, subscriptionId: string, kind: string): Promise<void> {
    let status = 0;
    try {
      const r = await fetch(target, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(NOTIFICATION_TIMEOUT_MS) });
      status = r.status;
      await r.arrayBuffer().catch(() => undefined);
    } catch {
      status = 0;
    }
    posted.push({ subscriptionId, kind, status, at: Date.now() });
  }
  const changeNotification = (x: GraphSubscription & { tenantId: string }, messageId: string) => ({
    value: [
      {
        subscriptionId: x.id,
        subscriptionExpirationDateTime: x.expirationDateTime,
        changeType: 'created',
        resource: `Users/${guid(x.mailbox)}/Messages/${messageId}`,
        resourceData: { '@odata.type': '#Microsoft.Graph.Message', '@odata.id': `Users/${guid(x.mailbox)}/Messages/${messageId}`, '@odata.etag': `W/"${randomBytes(8).toString('hex')}"`, id: messageId },
        clientState: x.clientState,
        tenantId: x.tenantId,
      },
    ],
  });
  /** The validation handshake: the token (a sentence, as Microsoft's are) must come back as text/plain within 10 s. */
  async function validates(target: string): Promise<boolean> {
    const token = `Validation: Testing client application reachability for subscription Request-Id: ${randomUUID()}`;
    try {
      const r = await fetch(`${target}${target.includes('?') ? '&' : '?'}validationToken=${encodeURIComponent(token)}`, { method: 'POST', headers: { 'content-type': 'text/plain; charset=utf-8' }, signal: AbortSignal.timeout(VALIDATION_TIMEOUT_MS) });
      const text = await r.text();
      return r.status === 200 && /^text\/plain/.test(r.headers.get('content-type') ?? '') && text === token;
    } catch {
      return false;
    }
  }
  function checkExpiration(value: unknown): string {
    const at = typeof value === 'string' ? Date.parse(value) : NaN;
    if (!Number.isFinite(at)) throw new GraphError(400, 'InvalidRequest', 'expirationDateTime is required.');
    if (at <= Date.now()) throw new GraphError(400, 'InvalidRequest', 'Subscription expiration must be in the future.');
    if (at > Date.now() + MESSAGE_SUBSCRIPTION_MAX_MINUTES * 60_000) throw new GraphError(400, 'InvalidRequest', `Subscription expiration can only be ${MESSAGE_SUBSCRIPTION_MAX_MINUTES} minutes in the future.`);
    return new Date(at).toISOString();
  }
  const subView = (x: GraphSubscription) => ({ id: x.id, resource: x.resource, applicationId: randomUUID(), changeType: x.changeType, clientState: x.clientState, notificationUrl: x.notificationUrl, lifecycleNotificationUrl: x.lifecycleNotificationUrl, expirationDateTime: x.expirationDateTime, creatorId: guid(x.mailbox), latestSupportedTlsVersion: 'v1_2', includeResourceData: false });
  async function ownSubscription(req: IncomingMessage, id: string) {
    const caller = await authorize(req, 'Mail.ReadWrite');
    live();
    const x = subs.get(decodeURIComponent(id));
    if (!x || x.mailbox !== caller) throw new GraphError(404, 'ResourceNotFound', `The object was not found.`);
    return x;
  }
  /** Writes 64 KB chunks as fast as the client reads them until it hangs up. */
  const endless = (res: ServerResponse, first: string) => {
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    res.write(first);
    const more = () => {
      while (!res.destroyed && res.write(chunk)) hostileBytes += chunk.length;
      if (!res.destroyed) res.once('drain', more);
    };
    more();
  };

  const server = https.createServer({ cert: opts.tls.cert, key: opts.tls.key });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  /** App callers (`app:<appid>`) and the mailboxes Exchange lets them use (RBAC for Applications scope). */
  const appScopes = new Map<string, Set<string>>();

  async function authorize(req: IncomingMessage, permission: 'Mail.Send' | 'Mail.ReadWrite' | 'User.Read'): Promise<string> {
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!bearer) throw new GraphError(401, 'InvalidAuthenticationToken', 'Access token is empty.');
    if (opts.appTokenUrl && bearer.split('.').length === 3) {
      // Application permissions: the token's roles decide what, the app's mailbox scope decides where.
      const r = await fetch(opts.appTokenUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: bearer }) });
      const app = (await r.json()) as { active?: boolean; appid?: string; aud?: string; roles?: string[]; mailboxes?: string[] };
      if (!app.active) throw new GraphError(401, 'InvalidAuthenticationToken', 'Lifetime validation failed, the token is expired.');
      if (app.aud !== GRAPH_AUDIENCE) throw new GraphError(401, 'InvalidAuthenticationToken', 'Invalid audience.');
      const roles = app.roles ?? [];
      const granted = permission === 'User.Read' ? roles.length > 0 : roles.includes(permission);
      if (!granted) throw new GraphError(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');
      const caller = `app:${app.appid}`;
      appScopes.set(caller, new Set(app.mailboxes ?? []));
      return caller;
    }
    const intro = new URL(opts.introspectionUrl);
    const basic = Buffer.from(`${decodeURIComponent(intro.username)}:${decodeURIComponent(intro.password)}`).toString('base64');
    intro.username = '';
    intro.password = '';
    const r = await fetch(intro, { method: 'POST', headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: bearer }) });
    const info = (await r.json()) as { active?: boolean; aud?: string | string[]; scope?: string; email?: string };
    if (!info.active) throw new GraphError(401, 'InvalidAuthenticationToken', 'Lifetime validation failed, the token is expired.');
    const aud = Array.isArray(info.aud) ? info.aud : [info.aud];
    if (!aud.includes(GRAPH_AUDIENCE)) throw new GraphError(401, 'InvalidAuthenticationToken', 'Invalid audience.');
    const scopes = (info.scope ?? '').split(' ').map((s) => s.replace(`${GRAPH_AUDIENCE}/`, ''));
    const granted = scopes.includes(permission) || (permission === 'Mail.Send' && scopes.includes('Mail.Send.Shared'));
    if (!granted) throw new GraphError(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');
    return (info.email ?? '').toLowerCase();
  }

  function mailboxFor(id: string, caller: string, opts2: { mail?: boolean } = {}): Mailbox {
    const key = decodeURIComponent(id).toLowerCase();
    const box = key === 'me' ? mailboxes.get(caller) : [...mailboxes.values()].find((b) => b.address === key || b.id === key);
    if (!box) throw new GraphError(404, 'ErrorInvalidUser', `The requested user '${decodeURIComponent(id)}' is invalid.`);
    // Delegated permissions reach the signed-in user's own mailbox (shared mailboxes need .Shared).
    if (box.address !== caller && !appScopes.get(caller)?.has(box.address)) throw new GraphError(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');
    if (opts2.mail && box.unlicensed) throw new GraphError(404, 'MailboxNotEnabledForRESTAPI', 'The mailbox is either inactive, soft-deleted, or is hosted on-premise.');
    return box;
  }

  function folderOf(box: Mailbox, idOrName: string): { key: string; id: string; displayName: string } {
    const wanted = decodeURIComponent(idOrName).toLowerCase();
    for (const [key, f] of box.folders) {
      if (key === wanted || f.id.toLowerCase() === wanted || f.displayName.toLowerCase() === wanted) return { key, ...f };
    }
    throw new GraphError(404, 'ErrorInvalidIdMalformed', 'Id is malformed.');
  }

  const immutable = (req: IncomingMessage) => /IdType="ImmutableId"/i.test(String(req.headers.prefer ?? ''));
  // Without ImmutableId an id depends on the folder (it changes when the message moves), as at Microsoft.
  const idFor = (req: IncomingMessage, m: StoredMessage) => (immutable(req) ? m.immutableId : `${m.folder}.${m.immutableId}`);
  const findMessage = (box: Mailbox, id: string) => {
    const decoded = decodeURIComponent(id);
    const m = box.messages.get(decoded) ?? box.messages.get(decoded.split('.').pop() ?? '');
    if (!m || m.removed || (decoded.includes('.') && !decoded.startsWith(`${m.folder}.`))) throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
    return m;
  };
  const view = (req: IncomingMessage, m: StoredMessage) => ({ id: idFor(req, m), subject: m.subject, isRead: m.isRead, parentFolderId: m.folder, internetMessageId: headerOf(m.mime, 'Message-ID') ?? null });

  function checkSendAs(box: Mailbox, caller: string, from: string | undefined): void {
    const address = /<([^>]+)>/.exec(from ?? '')?.[1] ?? from?.trim();
    if (address && address.toLowerCase() !== box.address && !box.sendAs.has(address.toLowerCase())) {
      throw new GraphError(403, 'ErrorSendAsDenied', 'The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.');
    }
  }

  /**
   * A request to a mailbox's routes counts against its MailboxConcurrency from its arrival until its
   * response is written (or the connection closes); one over the limit is refused at once and does
   * not count. The segment is resolved to the mailbox without the token (an address or an id).
   */
  function admit(segment: string, res: ServerResponse): void {
    const raw = decodeURIComponent(segment).toLowerCase();
    const key = [...mailboxes.values()].find((b) => b.address === raw || b.id === raw)?.address ?? raw;
    const n = inFlight.get(key) ?? 0;
    // The peak counts a request refused for being one too many: it tells what the client attempted.
    if (n + 1 > (peakConcurrent.get(key) ?? 0)) peakConcurrent.set(key, n + 1);
    if (concurrencyLimit !== null && n >= concurrencyLimit) {
      concurrencyRefusals++;
      throw new GraphError(429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.', { 'retry-after': '1' });
    }
    inFlight.set(key, n + 1);
    res.once('close', () => inFlight.set(key, inFlight.get(key)! - 1));
  }

  const json = (res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', 'request-id': randomUUID(), ...headers }).end(body === undefined ? undefined : JSON.stringify(body));
  };

  async function route(req: IncomingMessage, res: ServerResponse, path: string, u: URL): Promise<void> {
    const method = req.method ?? 'GET';
    // Upload sessions: pre-authenticated URLs, no Authorization header (Microsoft: sending one fails).
    const upload = /^\/upload\/([\w-]+)$/.exec(path);
    if (upload) {
      if (req.headers.authorization) throw new GraphError(401, 'InvalidAuthenticationToken', 'Do not send an Authorization header to an upload URL.');
      const s = uploads.get(upload[1]!);
      if (!s) throw new GraphError(404, 'ErrorItemNotFound', 'The upload session was not found.');
      const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(req.headers['content-range'] ?? ''));
      const body = await readBody(req, 60 * MB);
      if (!range || Number(range[1]) !== s.next || Number(range[3]) !== s.size || Number(range[2]) - Number(range[1]) + 1 !== body.length) {
        throw new GraphError(416, 'InvalidRange', `Expected bytes ${s.next}- of ${s.size}.`);
      }
      const last = Number(range[2]) + 1 === s.size;
      if (!last && body.length % UPLOAD_CHUNK_UNIT !== 0) throw new GraphError(400, 'InvalidChunkSize', 'Upload chunks must be multiples of 320 KiB.');
      s.received.push(body);
      s.next += body.length;
      if (!last) return json(res, 200, { expirationDateTime: new Date(Date.now() + 3600_000).toISOString(), nextExpectedRanges: [`${s.next}-`] });
      s.draft.attachments.push({ name: s.name, contentType: s.contentType, bytes: Buffer.concat(s.received), via: 'upload-session' });
      uploads.delete(upload[1]!);
      return json(res, 201, undefined, { location: `${url}/v1.0/users/${s.mailbox.id}/messages/${s.draft.id}/attachments/${randomUUID()}` });
    }

    // Upload URLs (above) are not Graph requests: Microsoft's uploadUrl is a pre-authenticated URL at the
    // Outlook service (outlook.office.com), and MailboxConcurrency is documented for Graph requests. So
    // only the /v1.0/users/{id}/... routes count here.
    const user = /^\/v1\.0\/users\/([^/]+)/.exec(path);
    if (user) admit(user[1]!, res);

    if (failIn === 0) {
      failIn = -1;
      throw new GraphError(503, 'ServiceUnavailable', 'Service Unavailable');
    }
    if (failIn > 0) failIn--;
    if (throttled > 0) {
      throttled--;
      throw new GraphError(429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.', { 'retry-after': String(throttleSeconds) });
    }

    let m: RegExpExecArray | null;
    if (path === '/v1.0/subscriptions' && method === 'POST') {
      const caller = await authorize(req, 'Mail.ReadWrite');
      const b = JSON.parse((await readBody(req, 64 * 1024)).toString('utf8')) as Record<string, unknown>;
      const r = /^\/?(?:users\/([^/]+)|me)\/mailFolders(?:\('([^']+)'\)|\/([^/]+))\/messages$/i.exec(String(b.resource ?? ''));
      if (!r) throw new GraphError(400, 'InvalidRequest', 'This stand-in subscribes to a mail folder\'s messages only (users/{id}/mailFolders/{id}/messages).');
      const box = mailboxFor(r[1] ?? 'me', caller, { mail: true });
      const folder = folderOf(box, r[2] ?? r[3]!);
      if (typeof b.changeType !== 'string' || !b.changeType.split(',').every((c) => ['created', 'updated', 'deleted'].includes(c))) throw new GraphError(400, 'InvalidRequest', 'changeType must be created, updated or deleted.');
      if (b.clientState !== undefined && (typeof b.clientState !== 'string' || b.clientState.length > 128)) throw new GraphError(400, 'InvalidRequest', 'clientState must be at most 128 characters.');
      const expirationDateTime = checkExpiration(b.expirationDateTime);
      const urls = [b.notificationUrl, ...(b.lifecycleNotificationUrl === undefined ? [] : [b.lifecycleNotificationUrl])];
      for (const x of urls) {
        let u: URL;
        try {
          u = new URL(String(x));
        } catch {
          throw new GraphError(400, 'InvalidRequest', 'notificationUrl is not a URL.');
        }
        // Microsoft posts to https only; plain http is let through for loopback, where the tests run Mailroom.
        if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopbackUrl(u))) throw new GraphError(400, 'InvalidRequest', 'The notification URL must use https.');
      }
      for (const x of urls) {
        if (!(await validates(String(x)))) throw new GraphError(400, 'ValidationError', 'Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.');
      }
      const sub = { id: randomUUID(), mailbox: box.address, folder: folder.key, resource: String(b.resource), changeType: b.changeType, notificationUrl: String(b.notificationUrl), lifecycleNotificationUrl: b.lifecycleNotificationUrl === undefined ? null : String(b.lifecycleNotificationUrl), clientState: (b.clientState as string | undefined) ?? null, expirationDateTime, tenantId: guid('tenant') };
      subs.set(sub.id, sub);
      return json(res, 201, subView(sub));
    }
    if ((m = /^\/v1\.0\/subscriptions\/([^/]+)$/.exec(path))) {
      const x = await ownSubscription(req, m[1]!);
      if (method === 'GET') return json(res, 200, subView(x));
      if (method === 'DELETE') {
        subs.delete(x.id);
        return json(res, 204);
      }
      if (method === 'PATCH') {
        const b = JSON.parse((await readBody(req, 64 * 1024)).toString('utf8')) as Record<string, unknown>;
        x.expirationDateTime = checkExpiration(b.expirationDateTime);
        return json(res, 200, subView(x));
      }
    }
    if ((m = /^\/v1\.0\/users\/([^/]+)$/.exec(path)) && method === 'GET') {
      const caller = await authorize(req, 'User.Read');
      const box = mailboxFor(m[1]!, caller);
      return json(res, 200, { id: box.id, mail: box.address, userPrincipalName: box.address, displayName: box.address.split('@')[0] });
    }
    if ((m = /^\/v1\.0\/users\/([^/]+)\/sendMail$/.exec(path)) && method === 'POST') {
      const caller = await authorize(req, 'Mail.Send');
      const box = mailboxFor(m[1]!, caller, { mail: true });
      const body = await readBody(req, GRAPH_REQUEST_LIMIT);
      if (!String(req.headers['content-type']).startsWith('text/plain')) throw new GraphError(400, 'ErrorInvalidRequest', 'This test server accepts sendMail with a MIME body (text/plain, base64) only.');
      const mime = Buffer.from(body.toString('latin1'), 'base64');
      if (!/^[\w-]+:/m.test(mime.toString('latin1').slice(0, 2000))) throw new GraphError(400, 'ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.');
      checkSendAs(box, caller, headerOf(mime, 'From'));
      sent.push({ mailbox: box.address, mime, at: new Date() });
      return json(res, 202);
    }
    if ((m = /^\/v1\.0\/users\/([^/]+)\/messages$/.exec(path)) && method === 'POST') {
      const caller = await authorize(req, 'Mail.ReadWrite');
      const box = mailboxFor(m[1]!, caller, { mail: true });
      const draftJson = JSON.parse((await readBody(req, GRAPH_REQUEST_LIMIT)).toString('utf8')) as Record<string, unknown>;
      const draft: GraphDraft = { id: `AAMkDraft${randomBytes(12).toString('hex')}`, json: draftJson, attachments: [] };
      box.drafts.set(draft.id, draft);
      return json(res, 201, { id: draft.id, ...draftJson, isDraft: true });
    }
    if ((m = /^\/v1\.0\/users\/([^/]+)\/messages\/([^/]+)\/attachments$/.exec(path)) && method === 'POST') {
      const caller = await authorize(req, 'Mail.ReadWrite');
      const box = mailboxFor(m[1]!, caller, { mail: true });
      const draft = box.drafts.get(decodeURIComponent(m[2]!));
      if (!draft) throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
      const a = JSON.parse((await readBody(req, GRAPH_REQUEST_LIMIT)).toString('utf8')) as { name: string; contentType: string; contentBytes: string };
      const bytes = Buffer.from(a.contentBytes, 'base64');
      if (bytes.length > 3 * MB) throw new GraphError(413, 'ErrorAttachmentSizeShouldNotBeLessThanMinimumSize', 'Attachments of 3 MB or more need an upload session.');
      draft.attachments.push({ name: a.name, contentType: a.contentType, bytes, via: 'inline' });
      return json(res, 201, { id: randomUUID(), name: a.name, size: bytes.length });
    }
    if ((m = /^\/v1\.0\/users\/([^/]+)\/messages\/([^/]+)\/attachments\/createUploadSession$/.exec(path)) && method === 'POST') {
      const caller = await authorize(req, 'Mail.ReadWrite');
      const box = mailboxFor(m[1]!, caller, { mail: true });
      const draft = box.drafts.get(decodeURIComponent(m[2]!));
      if (!draft) throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
      const { AttachmentItem: item } = JSON.parse((await readBody(req, 64 * 1024)).toString('utf8')) as { AttachmentItem: { attachmentType: string; name: string; size: number; contentType?: string } };
      if (item?.attachmentType !== 'file' || !item.name || !(item.size > 0) || item.size > 150 * MB) throw new GraphError(400, 'ErrorInvalidRequest', 'AttachmentItem needs attachmentType file, a name and a size up to 150 MB.');
      const token = randomBytes(16).toString('hex');
      uploads.set(token, { mailbox: box, draft, name: item.name, contentType: item.contentType ?? 'application/octet-stream', size: item.size, received: [], next: 0 });
      return json(res, 201, { uploadUrl: `${url}/upload/${token}`, expirationDateTime: new Date(Date.now() + 3600_000).toISOString(), nextExpectedRanges: ['0-'] });
    }
    if ((m = /^\/v1\.0\/users\/([^/]+)\/messages\/([^/]+)\/send$/.exec(path)) && method === 'POST') {
      const caller = await authorize(req, 'Mail.Send');
      const box = mailboxFor(m[1]!, caller, { mail: true });
      const draft = box.drafts.get(decodeURIComponent(m[2]!));
      if (!draft) throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
      const from = (draft.json.from as { emailAddress?: { address?: string } } | undefined)?.emailAddress?.address;
      checkSendAs(box, caller, from);
      box.drafts.delete(draft.id);
      sent.push({ mailbox: box.address, draft, at: new Date() });
      return json(res, 202);
    }
    if ((m = /^\/v1\.0\/users\/([^/]+)\/mailFolders$/.exec(path)) && method === 'GET') {
      const caller = await authorize(req, 'Mail.ReadWrite');
      const box = mailboxFor(m[1]!, caller, { mail: true });
      const name = /^displayName eq '(.*)'$/.exec(u.searchParams.get('$filter') ?? '')?.[1]?.replace(/''/g, "'");
      const value = [...box.folders.values()].filter((f) => name === undefined || f.displayName.toLowerCase() === name.toLowerCase());
      return json(res, 200, { value });
    }
    if ((m = /^\/v1\.0\/users\/([^/]+)\/mailFolders$/.exec(path)) && method === 'POST') {
      const caller = await authorize(req, 'Mail.ReadWrite');
      const box = mailboxFor(m[1]!, caller, { mail: true });
      const { displayName } = JSON.parse((await readBody(req, 64 * 1024)).toString('utf8')) as { displayName?: string };
      if (!displayName) throw new GraphError(400, 'ErrorInvalidRequest', 'displayName is required.');
      const f = { id: `AQMk${guid(`${box.address}/${displayName}`).replace(/-/g, '')}`, displayName };
      box.folders.set(displayName.toLowerCase(), f);
      return json(res, 201, f);
    }
    if ((m = /^\/v1\.0\/users\/([^/]+)\/mailFolders\/([^/]+)$/.exec(path)) && method === 'GET') {
      const caller = await authorize(req, 'Mail.ReadWrite');
      const box = mailboxFor(m[1]!, caller, { mail: true });
      const f = folderOf(box, m[2]!);
      const inFolder = [...box.messages.values()].filter((x) => x.folder === f.key && !x.removed);
      return json(res, 200, { id: f.id, displayName: f.displayName, totalItemCount: inFolder.length, unreadItemCount: inFolder.filter((x) => !x.isRead).length });
    }
    if ((m = /^\/v1\.0\/users\/([^/]+)\/mailFolders\/([^/]+)\/messages\/delta$/.exec(path)) && method === 'GET') {
      const caller = await authorize(req, 'Mail.ReadWrite');
      const box = mailboxFor(m[1]!, caller, { mail: true });
      const folder = folderOf(box, m[2]!);
      const pageSize = Math.min(1000, Number(/odata\.maxpagesize=(\d+)/.exec(String(req.headers.prefer ?? ''))?.[1] ?? opts.defaultPageSize ?? 10));
      // A round is a snapshot taken at its first page: its later pages (skiptoken) come from that list,
      // and what changes meanwhile is in the next round (deltatoken = the change counter it started at).
      const skip = u.searchParams.get('$skiptoken');
      const delta = u.searchParams.get('$deltatoken');
      let round = skip ? rounds.get(skip) : undefined;
      if (skip && !round) throw new GraphError(400, 'SyncStateNotFound', 'The sync state generation is not found.');
      if (!round) {
        const since = delta ? Number(delta) : -1;
        const upTo = changeCounter;
        const ids = [...box.messages.values()]
          .filter((x) => x.changed > since && x.changed <= upTo && (x.folder === folder.key || (x.removed && since >= 0)))
          .sort((a, b) => a.changed - b.changed)
          .map((x) => x.immutableId);
        round = { ids, upTo, offset: 0 };
      }
      const page = round.ids.slice(round.offset, round.offset + pageSize).map((id) => box.messages.get(id)!);
      const base = `${url}/v1.0/users/${box.id}/mailFolders/${folder.id}/messages/delta`;
      const value = page.map((x) => (x.removed || x.folder !== folder.key ? { id: idFor(req, x), '@removed': { reason: x.removed ? 'deleted' : 'changed' } } : view(req, x)));
      const offset = round.offset + pageSize;
      const hostile = hostileDelta;
      hostileDelta = undefined;
      if (hostile && 'endless' in hostile) return endless(res.writeHead(200, { 'content-type': 'application/json' }), '{"value":[');
      if (hostile && 'declared' in hostile) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(hostile.declared) });
        return endless(res, '{"value":[');
      }
      let body: Record<string, unknown>;
      if (offset < round.ids.length) {
        const token = randomBytes(8).toString('hex');
        rounds.set(token, { ...round, offset });
        body = { value, '@odata.nextLink': `${base}?$skiptoken=${token}` };
      } else body = { value, '@odata.deltaLink': `${base}?$deltatoken=${round.upTo}` };
      return json(res, 200, hostile ? hostile.rewrite(body) : body);
    }
    if ((m = /^\/v1\.0\/users\/([^/]+)\/messages\/([^/]+)\/\$value$/.exec(path)) && method === 'GET') {
      const caller = await authorize(req, 'Mail.ReadWrite');
      const box = mailboxFor(m[1]!, caller, { mail: true });
      const msg = findMessage(box, m[2]!);
      if (msg.endless) return endless(res.writeHead(200, { 'content-type': 'text/plain' }), msg.mime.toString('latin1'));
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(msg.mime.length) }).end(msg.mime);
      return;
    }
    if ((m = /^\/v1\.0\/users\/([^/]+)\/messages\/([^/]+)$/.exec(path)) && method === 'PATCH') {
      const caller = await authorize(req, 'Mail.ReadWrite');
      const box = mailboxFor(m[1]!, caller, { mail: true });
      const msg = findMessage(box, m[2]!);
      const patch = JSON.parse((await readBody(req, 64 * 1024)).toString('utf8')) as { isRead?: boolean };
      if (typeof patch.isRead === 'boolean') msg.isRead = patch.isRead;
      msg.changed = ++changeCounter;
      return json(res, 200, view(req, msg));
    }
    if ((m = /^\/v1\.0\/users\/([^/]+)\/messages\/([^/]+)\/move$/.exec(path)) && method === 'POST') {
      const caller = await authorize(req, 'Mail.ReadWrite');
      const box = mailboxFor(m[1]!, caller, { mail: true });
      const msg = findMessage(box, m[2]!);
      const { destinationId } = JSON.parse((await readBody(req, 64 * 1024)).toString('utf8')) as { destinationId: string };
      msg.folder = folderOf(box, destinationId).key;
      msg.changed = ++changeCounter;
      return json(res, 201, view(req, msg));
    }
    throw new GraphError(400, 'BadRequest', `Unsupported request: ${method} ${path}`);
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url ?? '/', url);
    const path = u.pathname;
    const at = Date.now();
    const token = /^Bearer /.test(req.headers.authorization ?? '');
    route(req, res, path, u)
      .catch((e: unknown) => {
        if (e instanceof GraphError) return json(res, e.status, { error: { code: e.code, message: e.message, innerError: { date: new Date().toISOString(), 'request-id': randomUUID() } } }, e.headers);
        if (e instanceof SyntaxError) return json(res, 400, { error: { code: 'BadRequest', message: 'Unable to read JSON request payload.' } });
        console.error('graph-server:', e);
        return json(res, 500, { error: { code: 'InternalServerError', message: String(e) } });
      })
      .finally(() => requests.push({ method: req.method ?? 'GET', path, query: u.search, status: res.statusCode, at, token }));
  });

  const api: GraphServer = {
    url,
    sent,
    requests,
    posted,
    notifications: true,
    subscriptions: () => live().map(({ tenantId: _t, ...x }) => ({ ...x })),
    async notify(subscriptionId, count = 1) {
      const x = subs.get(subscriptionId);
      if (!x) throw new Error(`no subscription ${subscriptionId}`);
      await Promise.all(Array.from({ length: count }, () => post(x.notificationUrl, changeNotification(x, `AAkALg${randomBytes(18).toString('base64url')}`), x.id, 'created')));
    },
    async lifecycle(subscriptionId, event) {
      const x = subs.get(subscriptionId);
      if (!x) throw new Error(`no subscription ${subscriptionId}`);
      if (event === 'subscriptionRemoved') subs.delete(subscriptionId);
      if (!x.lifecycleNotificationUrl) return;
      await post(x.lifecycleNotificationUrl, { value: [{ subscriptionId: x.id, subscriptionExpirationDateTime: x.expirationDateTime, tenantId: x.tenantId, clientState: x.clientState, lifecycleEvent: event }] }, x.id, event);
    },
    expire(subscriptionId) {
      subs.delete(subscriptionId);
    },
    peakConcurrent,
    get concurrencyRefusals() {
      return concurrencyRefusals;
    },
    failAfter(okRequests) {
      failIn = okRequests;
    },
    throttle(count, retryAfterSeconds) {
      throttled = count;
      throttleSeconds = retryAfterSeconds;
    },
    deliver(mailbox, mime, o = {}) {
      const box = mailboxes.get(mailbox.toLowerCase());
      if (!box) throw new Error(`unknown mailbox ${mailbox}`);
      const raw = Buffer.isBuffer(mime) ? mime : Buffer.from(mime);
      const id = `AAkALg${randomBytes(18).toString('base64url')}`;
      box.messages.set(id, { immutableId: id, folder: o.folder ?? 'inbox', mime: raw, ...(o.endless && { endless: true }), isRead: o.isRead ?? false, subject: headerOf(raw, 'Subject') ?? '', changed: ++changeCounter, removed: false });
      if (api.notifications) {
        for (const x of live()) if (x.mailbox === box.address && x.folder === (o.folder ?? 'inbox') && x.changeType.includes('created')) void post(x.notificationUrl, changeNotification(x, id), x.id, 'created');
      }
      return id;
    },
    message(mailbox, immutableId) {
      const msg = mailboxes.get(mailbox.toLowerCase())?.messages.get(immutableId);
      return msg && { folder: msg.folder, isRead: msg.isRead };
    },
    nextDelta(answer) {
      hostileDelta = answer;
    },
    get hostileBytes() {
      return hostileBytes;
    },
    grantSendAs(mailbox, address) {
      mailboxes.get(mailbox.toLowerCase())?.sendAs.add(address.toLowerCase());
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
  return api;
}
