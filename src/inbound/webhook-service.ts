import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { z } from 'zod';
import { MailroomError } from '../errors/errors.ts';
import type { Logger } from '../logger.ts';
import type { Sealer } from '../secrets/sealer.ts';
import { assertHostAllowed, guardedLookup, hostRefusal, literalAddress, OutboundRefusedError, redactUrlCredentials, refusalText } from '../net/outbound-policy.ts';
import { pageLimit, parseInput, queryText } from '../errors/parse-input.ts';
import type { Db } from '../storage/database.ts';
import {
  claimDueDeliveries,
  deleteWebhook,
  findDelivery,
  findWebhook,
  insertWebhook,
  listDeliveries,
  listWebhooks,
  type DeliveryOutcome,
  recordDeliveryOutcomes,
  resetDelivery,
  updateWebhook,
  type WebhookRecord,
} from '../storage/webhook-store.ts';
import { backoffMs } from '../outbox/retry-policy.ts';
import { perTurn } from '../storage/per-turn.ts';
import type { InboundMessageService } from './inbound-message-service.ts';
import type { BounceService } from '../bounces/bounce-service.ts';

/**
 * Deliveries in flight at once (each its own HTTP request): one that finishes makes room for the next
 * at once, and the outcomes of those finished in one event-loop turn are one commit.
 */
const DELIVERIES_AT_ONCE = 16;
/** Claims of due deliveries are this far apart at least (see drain). */
const CLAIM_GATHER_MS = 25;

const url = z
  .string({ error: 'Enter the URL that receives the webhook, e.g. https://erp.example.com/mailroom/webhook' })
  .trim()
  .url({ error: 'Enter a full URL starting with https:// (or http:// on a private network)' })
  .refine((v) => /^https?:\/\//i.test(v), { error: 'The URL must start with https:// or http://' })
  // A user name or password in the URL would be echoed wherever the URL is: the list, the audit
  // log, error messages. The signature header authenticates Mailroom to the receiver instead.
  .refine((v) => !hasCredentials(v), { error: 'The URL must not contain a user name or password (user:password@): check the X-Mailroom-Signature header in the receiver instead', abort: true })
  .superRefine((v, ctx) => {
    const r = URL.canParse(v) ? hostRefusal(new URL(v).hostname) : null;
    if (r) ctx.addIssue({ code: 'custom', message: `${refusalText(r)}. Use the receiver's own host name${r.kind === 'loopback' || r.kind === 'private' ? ', or list it in OUTBOUND_ALLOW' : ''}` });
  });

function hasCredentials(v: string): boolean {
  try {
    const u = new URL(v);
    return u.username !== '' || u.password !== '';
  } catch {
    return false;
  }
}

export const deliveriesQuerySchema = z.object({ limit: pageLimit, cursor: queryText('cursor').optional() });

export const createWebhookSchema = z.strictObject({
  url,
  description: z.preprocess((v) => (v === '' ? null : v), z.string().trim().max(200).nullable().default(null)),
});
export const updateWebhookSchema = z.strictObject({
  url: url.optional(),
  description: z.preprocess((v) => (v === '' ? null : v), z.string().trim().max(200).nullable().optional()),
  active: z.boolean().optional(),
});

const secretAad = (id: string) => `webhook:${id}:secret`;

/** Bytes of text and of HTML sent in a webhook; past it the body goes by reference (`rawUrl`). */
export const WEBHOOK_BODY_BYTES = 256 * 1024;
/** Bytes of a whole webhook request body: a receiver is never sent more. */
export const WEBHOOK_PAYLOAD_BYTES = 1024 * 1024;
/** Entries of each list (recipients, references, attachments) once a payload is still too large. */
const WEBHOOK_LIST_ENTRIES = 100;

/** The longest prefix of `s` within `maxBytes` of UTF-8 that does not split a character. */
function cutToBytes(s: string, maxBytes: number): string {
  if (s.length <= maxBytes / 3 || Buffer.byteLength(s) <= maxBytes) return s;
  const b = Buffer.from(s).subarray(0, maxBytes);
  // Drop a sequence cut in the middle (what a lone continuation byte decodes to).
  return b.toString('utf8').replace(/\uFFFD+$/, '');
}

type PayloadMessage = Record<string, unknown> & { text: string | null; html: string | null; truncated: boolean; textTruncated: boolean; htmlTruncated: boolean };

/**
 * The message as a webhook carries it, at most WEBHOOK_PAYLOAD_BYTES in all: text and HTML past
 * WEBHOOK_BODY_BYTES are cut (`truncated`, `textTruncated`, `htmlTruncated`; the whole message is at
 * `rawUrl`); a message still too large (thousands of recipients) goes without bodies and with the
 * first entries of each list; one larger still with its identifying fields only.
 */
export function webhookMessage<M extends PayloadMessage>(m: M, envelopeBytes = 512): Record<string, unknown> {
  const text = m.text === null ? null : cutToBytes(m.text, WEBHOOK_BODY_BYTES);
  const html = m.html === null ? null : cutToBytes(m.html, WEBHOOK_BODY_BYTES);
  const textTruncated = m.textTruncated || text !== m.text;
  const htmlTruncated = m.htmlTruncated || html !== m.html;
  const cutBodies = { ...m, text, html, textTruncated, htmlTruncated, truncated: textTruncated || htmlTruncated };
  const fits = (x: unknown) => Buffer.byteLength(JSON.stringify(x)) + envelopeBytes <= WEBHOOK_PAYLOAD_BYTES;
  if (fits(cutBodies)) return cutBodies;
  const list = (v: unknown) => (Array.isArray(v) ? v.slice(0, WEBHOOK_LIST_ENTRIES) : v);
  const short = (v: unknown) => (typeof v === 'string' ? v.slice(0, 1000) : v);
  const noBodies = {
    ...cutBodies,
    text: null,
    html: null,
    textTruncated: m.text !== null,
    htmlTruncated: m.html !== null,
    truncated: true,
    to: list(m.to),
    cc: list(m.cc),
    references: list(m.references),
    attachments: list(m.attachments),
    listsTruncated: true,
  };
  if (fits(noBodies)) return noBodies;
  const keep = ['id', 'serverId', 'serverName', 'folder', 'messageId', 'from', 'subject', 'date', 'inReplyTo', 'size', 'inReplyToOutboxId', 'receivedAt', 'problem', 'rawUrl'];
  return { ...Object.fromEntries(keep.map((k) => [k, short(m[k])])), to: [], cc: [], references: [], attachments: [], text: null, html: null, truncated: true, textTruncated: m.text !== null, htmlTruncated: m.html !== null, listsTruncated: true };
}

/** `X-Mailroom-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (Stripe's scheme). */
export function signature(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** Why a delivery failed, in words for the delivery log: never the URL (its path or query may hold a token). */
function deliveryError(e: unknown, timeoutMs: number): string {
  if (e instanceof OutboundRefusedError) return `Refused by Mailroom's outbound policy, nothing was sent: ${e.message}. Point the webhook at the receiver's own host name, or set OUTBOUND_ALLOW.`;
  if (e instanceof CredentialsInUrl) return e.message;
  const code = (e as { code?: string }).code;
  if (code === 'ETIMEDOUT') return `No answer within ${timeoutMs / 1000} s.`;
  return `Could not connect: ${code ?? (e as Error).message}.`;
}

class CredentialsInUrl extends Error {
  constructor() {
    super('The webhook URL contains a user name or password, which Mailroom does not send: edit the webhook and remove them (the receiver checks the X-Mailroom-Signature header instead).');
  }
}

/**
 * POSTs a delivery and answers the HTTP status. node:http rather than fetch: its `lookup` lets the
 * outbound policy check every address the host resolves to on the connection itself (no DNS
 * rebinding between a check and the connect), and it takes no new dependency. Redirects are not
 * followed; the answer's body is not read.
 */
function postWebhook(target: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const url = new URL(target);
    if (url.username || url.password) throw new CredentialsInUrl();
    assertHostAllowed(url.hostname);
    const literal = literalAddress(url.hostname);
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = request(
      {
        protocol: url.protocol,
        // A numeric form other than the dotted quad connects to the address it means (checked above).
        hostname: literal ?? url.hostname,
        port: url.port || undefined,
        path: `${url.pathname}${url.search}`,
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)), host: url.host },
        servername: literal ? undefined : url.hostname,
        lookup: guardedLookup(),
        agent: false,
        timeout: timeoutMs,
      },
      (res) => {
        clearTimeout(timer);
        res.destroy();
        resolve(res.statusCode ?? 0);
      },
    );
    const timer = setTimeout(() => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })), timeoutMs);
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end(body);
  });
}

export class WebhookService {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  /** While draining: look for due deliveries now (one finished, or new ones were queued). */
  private wakeDrain: (() => void) | undefined;
  private woken = false;
  /** Builds message.bounced / message.delayed / message.auto_replied bodies (set once the outbox exists). */
  bounces: BounceService | undefined;

  constructor(
    private readonly deps: {
      db: Db;
      sealer: Sealer;
      messages: InboundMessageService;
      logger: Logger;
      config: { retryBaseMs: number; maxAttempts: number; timeoutMs: number };
      now?: () => Date;
    },
  ) {}

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  private view(w: WebhookRecord) {
    return { id: w.id, url: redactUrlCredentials(w.url), description: w.description, active: w.active, createdAt: w.createdAt };
  }

  async list() {
    return (await listWebhooks(this.deps.db)).map((w) => this.view(w));
  }

  /** The signing secret is returned here only; it is stored sealed. */
  async create(body: unknown) {
    const input = parseInput(createWebhookSchema, body);
    const id = randomUUID();
    const secret = `whsec_${randomBytes(32).toString('base64url')}`;
    await insertWebhook(this.deps.db, { id, url: input.url, description: input.description, secretSealed: this.deps.sealer.seal(secret, secretAad(id)), active: true }, this.now());
    return { ...this.view((await findWebhook(this.deps.db, id))!), secret };
  }

  async update(id: string, body: unknown) {
    const input = parseInput(updateWebhookSchema, body);
    if (!(await updateWebhook(this.deps.db, id, input, this.now()))) throw new MailroomError('MR_NOT_FOUND', `Webhook ${id} does not exist.`);
    return this.view((await findWebhook(this.deps.db, id))!);
  }

  async remove(id: string): Promise<void> {
    if (!(await deleteWebhook(this.deps.db, id))) throw new MailroomError('MR_NOT_FOUND', `Webhook ${id} does not exist.`);
  }

  async deliveries(id: string, input: unknown) {
    const query = parseInput(deliveriesQuerySchema, input);
    if (!(await findWebhook(this.deps.db, id))) throw new MailroomError('MR_NOT_FOUND', `Webhook ${id} does not exist.`);
    const { limit } = query;
    const before = query.cursor ? Buffer.from(query.cursor, 'base64url').toString('utf8') : undefined;
    const rows = await listDeliveries(this.deps.db, { webhookId: id, ...(before && { before }), limit: limit + 1 });
    const page = rows.slice(0, limit);
    return { items: page, nextCursor: rows.length > limit ? Buffer.from(page[page.length - 1]!.createdAt).toString('base64url') : null };
  }

  async redeliver(deliveryId: string) {
    if (!(await resetDelivery(this.deps.db, deliveryId, this.now()))) throw new MailroomError('MR_NOT_FOUND', `Delivery ${deliveryId} does not exist.`);
    this.kick();
    return (await findDelivery(this.deps.db, deliveryId))!;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.kick(), 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    while (this.busy) await new Promise((r) => setTimeout(r, 20));
  }

  /** Sends what is due now; each delivery is signed, and retried with backoff until a 2xx. */
  kick(): void {
    if (this.busy) {
      this.woken = true;
      this.wakeDrain?.();
      return;
    }
    this.busy = true;
    void this.drain()
      .catch((e) => this.deps.logger.error({ err: e, event: 'webhook.loop_error' }, 'webhook sender error'))
      .finally(() => (this.busy = false));
  }

  /**
   * Keeps up to DELIVERIES_AT_ONCE deliveries in flight until none is due: a slow receiver holds one
   * slot, not a whole round. Outcomes are written per event-loop turn (one commit for those finished
   * together), then their log lines.
   */
  private async drain(): Promise<void> {
    let inflight = 0;
    /** Outcome writes not yet committed: the drain ends after them. */
    const writes = new Set<Promise<void>>();
    let lastClaim = 0;
    try {
      for (;;) {
        this.woken = false;
        // At most one claim per CLAIM_GATHER_MS: a burst of imports, a kick each, is claimed in a few
        // transactions rather than one per message; a lone message goes at once.
        const wait = lastClaim + CLAIM_GATHER_MS - Date.now();
        if (wait > 0 && inflight < DELIVERIES_AT_ONCE) await new Promise((r) => setTimeout(r, wait));
        const room = DELIVERIES_AT_ONCE - inflight;
        if (room > 0) lastClaim = Date.now();
        const due = room > 0 ? await claimDueDeliveries(this.deps.db, this.now(), this.deps.config.timeoutMs * 3, room) : [];
        for (const d of due) {
          inflight++;
          void this.deliver(d)
            .catch((e: unknown) => this.unsendable(d, e))
            .then((r) => {
              inflight--;
              const w = this.recordOutcome({ d, ...r });
              writes.add(w);
              void w.then(() => writes.delete(w));
              this.wakeDrain?.();
            });
        }
        if (!due.length && inflight === 0) break;
        // More may be due at once when the claim was full; else wait for a slot or a kick.
        if (due.length === room && room > 0) continue;
        if (!this.woken) await new Promise<void>((resolve) => (this.wakeDrain = resolve));
        this.wakeDrain = undefined;
      }
    } finally {
      while (inflight > 0) await new Promise<void>((resolve) => (this.wakeDrain = resolve));
      this.wakeDrain = undefined;
      await Promise.all([...writes]);
    }
  }

  /** Outcomes finished in one event-loop turn: one commit, then their log lines. */
  private readonly recordOutcome = perTurn<{ d: { id: string; attempts: number; redeliveredAfter: number }; o: DeliveryOutcome; log: () => void }>(async (batch) => {
    try {
      await recordDeliveryOutcomes(this.deps.db, batch, this.now());
      for (const { log } of batch) log();
    } catch (e) {
      // The claims run out and the deliveries are sent again: at least once, never lost.
      this.deps.logger.error({ err: e, event: 'webhook.record_failed', count: batch.length }, 'could not record webhook outcomes; they are sent again when their claims run out');
    }
  });

  /**
   * The body of a delivery: message.received carries the incoming message; an event about a report
   * carries the outgoing message it is about (null when none matched) and the report, in the same
   * envelope `{id, event, createdAt, message, report}`.
   */
  private async body(d: { id: string; inboundMessageId: string; event: string | null; reportId: string | null }): Promise<{ event: string; body: string }> {
    if (d.event && d.reportId) {
      if (!this.bounces) throw new Error('report events need the bounce service');
      const { message, report } = await this.bounces.eventPayload(d.reportId);
      return { event: d.event, body: JSON.stringify({ id: d.id, event: d.event, createdAt: this.now().toISOString(), message, report }) };
    }
    const message = await this.deps.messages.get(d.inboundMessageId);
    const { deliveries: _omit, ...payloadMessage } = message;
    return { event: 'message.received', body: JSON.stringify({ id: d.id, event: 'message.received', createdAt: this.now().toISOString(), message: webhookMessage(payloadMessage) }) };
  }

  /** A delivery whose payload could not be built (Mailroom's fault, not the receiver's): tried again later, with the stack in the log. */
  private unsendable(d: { id: string; attempts: number; redeliveredAfter: number }, e: unknown): { o: DeliveryOutcome; log: () => void } {
    const failed = d.attempts - d.redeliveredAfter >= this.deps.config.maxAttempts;
    const error = 'Mailroom could not build this delivery\'s payload; it tries again (the log line webhook.payload_failed has the cause).';
    return {
      o: { state: failed ? 'failed' : 'pending', status: null, error, ...(!failed && { nextAttemptAt: new Date(this.now().getTime() + backoffMs(d.attempts - d.redeliveredAfter, this.deps.config)) }) },
      log: () => this.deps.logger.error({ event: 'webhook.payload_failed', deliveryId: d.id, err: e }, 'could not build a webhook payload'),
    };
  }

  /** Sends one delivery; its outcome is written with the round's (drain), then `log` says it. */
  private async deliver(d: { id: string; webhookId: string; inboundMessageId: string; attempts: number; redeliveredAfter: number; event: string | null; reportId: string | null }): Promise<{ o: DeliveryOutcome; log: () => void }> {
    const { db, logger, config } = this.deps;
    const hook = await findWebhook(db, d.webhookId);
    if (!hook || !hook.active) return { o: { state: 'failed', status: null, error: 'The webhook was disabled or deleted.' }, log: () => undefined };
    let status: number | null = null;
    let error: string | null = null;
    const { event, body } = await this.body(d);
    const t = Math.floor(this.now().getTime() / 1000);
    try {
      status = await postWebhook(hook.url, {
        'content-type': 'application/json',
        'user-agent': 'Mailroom-Webhook/1',
        'x-mailroom-event': event,
        'x-mailroom-delivery': d.id,
        'x-mailroom-timestamp': String(t),
        'x-mailroom-signature': signature(this.deps.sealer.open(hook.secretSealed, secretAad(hook.id)), t, body),
      }, body, config.timeoutMs);
      if (status >= 200 && status < 300) {
        return { o: { state: 'delivered', status, error: null }, log: () => logger.info({ event: 'webhook.delivered', deliveryId: d.id, status }, 'webhook delivered') };
      }
      error = `The receiver answered HTTP ${status}.`;
    } catch (e) {
      error = deliveryError(e, config.timeoutMs);
    }
    // Counted from the last Redeliver: each redelivery gets the full WEBHOOK_MAX_ATTEMPTS again.
    const round = d.attempts - d.redeliveredAfter;
    const failed = round >= config.maxAttempts;
    const delay = backoffMs(round, config);
    return {
      o: { state: failed ? 'failed' : 'pending', status, error, ...(!failed && { nextAttemptAt: new Date(this.now().getTime() + delay) }) },
      log: () => logger.warn({ event: failed ? 'webhook.failed' : 'webhook.retry', deliveryId: d.id, status, attempt: d.attempts }, error ?? ''),
    };
  }
}
