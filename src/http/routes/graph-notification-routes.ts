import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Mailroom } from '../../mailroom.ts';
import { LIFECYCLE_PATH, NOTIFICATION_PATH } from '../../inbound/graph-subscriptions.ts';
import { errorBody } from '../http-errors.ts';
import type { ApiDoc } from '../openapi.ts';

/**
 * A notification collection is a few KB (each item about 1 KB without resource data); Microsoft
 * batches, so allow some hundreds, and nothing near the 1 MB the API accepts.
 */
const NOTIFICATION_BODY_LIMIT = 256 * 1024;
/** Items read of one collection; more is not what Graph sends. */
const MAX_ITEMS = 1000;
/** Microsoft's validation tokens are a few hundred characters. */
const MAX_VALIDATION_TOKEN = 2048;
/** Per source address: a burst of this many requests, refilled at RATE_PER_SECOND. */
const BURST = 300;
const RATE_PER_SECOND = 100;
/** Sources remembered at most; past it the quietest are forgotten (a spoofed-address flood cannot grow it). */
const MAX_SOURCES = 10_000;

/** Token buckets per source address: unauthenticated floods are answered 429 before any work. */
export class SourceRateLimit {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    private readonly burst = BURST,
    private readonly perSecond = RATE_PER_SECOND,
  ) {}

  take(source: string, now = Date.now()): boolean {
    let b = this.buckets.get(source);
    if (!b) {
      if (this.buckets.size >= MAX_SOURCES) {
        for (const [k, v] of this.buckets) if (v.tokens + ((now - v.at) / 1000) * this.perSecond >= this.burst) this.buckets.delete(k);
        if (this.buckets.size >= MAX_SOURCES) this.buckets.delete(this.buckets.keys().next().value!);
      }
      b = { tokens: this.burst, at: now };
      this.buckets.set(source, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

/**
 * The public endpoint Microsoft Graph posts to (no API key, no session: Graph has neither). It
 * answers the validation handshake by echoing validationToken as text/plain, and accepts a
 * notification collection at once (202) before looking at it: only a known subscription id with its
 * clientState counts, and all it does is ask for a delta run.
 */
export function graphNotificationRoutes(app: FastifyInstance, mr: Mailroom, doc: ApiDoc): void {
  const limit = new SourceRateLimit();
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!limit.take(req.ip)) return reply.code(429).header('retry-after', '1').send(errorBody('MR_NOTIFICATIONS_RATE_LIMITED', 'Too many notifications from this address.'));
    const token = (req.query as Record<string, unknown>).validationToken;
    if (typeof token === 'string') {
      // Microsoft: answer 200 with the decoded token as text/plain within 10 seconds.
      if (token.length > MAX_VALIDATION_TOKEN) return reply.code(400).send(errorBody('MR_VALIDATION', 'validationToken is too long.'));
      return reply.code(200).type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(token);
    }
    const value = (req.body as { value?: unknown } | undefined)?.value;
    if (!Array.isArray(value) || value.length > MAX_ITEMS) return reply.code(400).send(errorBody('MR_VALIDATION', 'The body is not a change notification collection ({"value":[…]}).'));
    const items = value.filter((v): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v));
    // Graph wants an answer within 3 seconds: the check and the wake-up happen after it.
    void reply.code(202).send();
    void mr.incoming.notified(items).catch((e: unknown) => mr.logger.warn({ event: 'inbound.notification_failed', err: (e as Error).message }, 'change notification not handled; the delta safety net catches up'));
    return reply;
  };
  for (const path of [NOTIFICATION_PATH, LIFECYCLE_PATH]) {
    app.post(path, { bodyLimit: NOTIFICATION_BODY_LIMIT }, handler);
  }
  doc.add('post', NOTIFICATION_PATH, 'Microsoft Graph change notifications (public, no authentication): the validation handshake (validationToken) and notification collections, answered 202; only a known subscription with its clientState schedules a delta run');
  doc.add('post', LIFECYCLE_PATH, 'Microsoft Graph lifecycle notifications (reauthorizationRequired, subscriptionRemoved, missed), as above');
}
