import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { GraphPushConfig } from '../config/config.ts';
import { isMailroomError } from '../errors/errors.ts';
import { GraphError, invalidResponse } from '../graph/graph-client.ts';
import type { Logger } from '../logger.ts';
import { acquireLease, releaseLease } from '../storage/cluster-store.ts';
import type { Db } from '../storage/database.ts';
import { findGraphSubscription, type GraphSubscriptionRecord, saveGraphSubscription } from '../storage/graph-subscription-store.ts';
import type { MailServerRecord } from '../storage/mail-server-store.ts';
import { caller, folderId, tokenOf } from './graph-fetcher.ts';
import type { FetcherDeps } from './mailbox-fetcher.ts';

/** Where Graph posts change notifications and lifecycle events, under NOTIFICATION_BASE_URL (or BASE_URL). */
export const NOTIFICATION_PATH = '/graph/notifications';
export const LIFECYCLE_PATH = '/graph/lifecycle';
/** Microsoft: clientState is at most 128 characters. 48 random bytes are 64 in base64url. */
const CLIENT_STATE_BYTES = 48;
/** Creating or renewing a subscription (Graph's validation handshake included) is over well within this. */
const CLAIM_MS = 90_000;

/** One subscription per mailbox and folder: the row's key and the claim's name. */
export const resourceKey = (s: Pick<MailServerRecord, 'username' | 'imap'>) => `${s.username.toLowerCase()}|${s.imap!.folder}`;

const hashOf = (clientState: string) => createHash('sha256').update(clientState, 'utf8').digest();

/** The notification's clientState against the stored hash, in constant time (hashes are equal-length). */
export function clientStateMatches(received: unknown, storedHash: string | null): boolean {
  if (typeof received !== 'string' || !storedHash || received.length > 128) return false;
  const stored = Buffer.from(storedHash, 'hex');
  const got = hashOf(received);
  return stored.length === got.length && timingSafeEqual(stored, got);
}

/** Why a create or renew failed, in plain words with the fix (kept on the row for Mail Health). */
export function subscriptionFailure(e: unknown, retryMs: number): string {
  const retry = `Mailroom polls at the normal interval and tries again in ${Math.round(retryMs / 1000)} s.`;
  if (e instanceof GraphError) {
    const ev = e.evidence;
    const why = ev.status === 400 && /validat/i.test(`${ev.code} ${ev.message}`)
      ? 'Microsoft Graph could not reach the notification endpoint to validate it: check that NOTIFICATION_BASE_URL (or BASE_URL) is reachable from the internet over https, and that a proxy in front passes /graph/notifications and /graph/lifecycle through.'
      : ev.status === 403
        ? 'The connection lacks the permission to subscribe (Mail.Read or Mail.ReadWrite): reconnect the server with it.'
        : 'Check the error and the Graph service health.';
    return `Microsoft Graph refused the subscription (${ev.status} ${ev.code}: ${ev.message.slice(0, 300)}). ${why} ${retry}`;
  }
  if (isMailroomError(e)) return `${e.message} ${retry}`;
  return `The subscription could not be made: ${String((e as Error)?.message ?? e).slice(0, 300)}. ${retry}`;
}

interface SubscriptionAnswer {
  id: string;
  expirationDateTime: string;
}

function subscriptionAnswer(what: string, body: Record<string, unknown>): SubscriptionAnswer {
  if (typeof body.id !== 'string' || !body.id) throw invalidResponse(what, 'the subscription has no id');
  if (typeof body.expirationDateTime !== 'string' || !Number.isFinite(Date.parse(body.expirationDateTime))) throw invalidResponse(what, 'expirationDateTime is not a date');
  return { id: body.id, expirationDateTime: new Date(body.expirationDateTime).toISOString() };
}

export type SubscriptionDeps = Pick<FetcherDeps, 'tokens' | 'gates' | 'signal'> & { db: Db; graphHost: string; push: GraphPushConfig; logger: Logger; instance: string; now: () => Date };

/**
 * Keeps one Graph subscription (changeType=created on the folder's messages, with a lifecycle URL)
 * per mailbox and folder: made when missing, renewed once half its lifetime is gone, made again when
 * Graph says it was removed or refuses to renew it. The work is claimed (lease `subscription:<key>`)
 * so two instances never both create one; the row is what every instance reads.
 */
export async function keepSubscription(deps: SubscriptionDeps, server: MailServerRecord, opts: { force?: 'renew' | 'recreate' } = {}): Promise<GraphSubscriptionRecord | undefined> {
  const base = deps.push.notificationBase;
  if (!base) return undefined;
  const key = resourceKey(server);
  const now = deps.now();
  const row = await findGraphSubscription(deps.db, key);
  if (row && row.mailServerId !== server.id && row.state !== 'off') return row; // another incoming server has this mailbox and folder
  // A failed attempt waits GRAPH_PUSH_RETRY_SECONDS before the next one (Graph counts each try).
  if (!opts.force && row?.state === 'off' && now.getTime() - Date.parse(row.updatedAt) < deps.push.retryMs) return row;
  const lifetimeMs = deps.push.subscriptionMinutes * 60_000;
  const left = row?.expiresAt ? Date.parse(row.expiresAt) - now.getTime() : -1;
  const wanted = opts.force ?? (!row?.subscriptionId || left <= 0 ? 'recreate' : left < lifetimeMs / 2 ? 'renew' : undefined);
  if (!wanted) return row;
  const claim = `subscription:${key}`;
  if (!(await acquireLease(deps.db, claim, deps.instance, CLAIM_MS, now))) return row;
  try {
    // Taken after the claim: another instance may have just made or renewed it.
    const fresh = await findGraphSubscription(deps.db, key);
    if (!opts.force && fresh?.subscriptionId && fresh.updatedAt !== row?.updatedAt && fresh.state !== 'off') return fresh;
    const call = caller(deps, server, tokenOf(deps, server));
    // A little under the lifetime asked for: Graph refuses a date past its maximum, and clocks differ.
    const expirationDateTime = new Date(now.getTime() + lifetimeMs - Math.min(60_000, lifetimeMs / 10)).toISOString();
    if (wanted === 'renew' && fresh?.subscriptionId) {
      try {
        const r = subscriptionAnswer('PATCH /subscriptions', await call<Record<string, unknown>>({ method: 'PATCH', path: `/subscriptions/${encodeURIComponent(fresh.subscriptionId)}`, body: { expirationDateTime } }));
        await saveGraphSubscription(deps.db, { ...fresh, expiresAt: r.expirationDateTime, state: fresh.state === 'off' ? 'active' : fresh.state }, deps.now());
        deps.logger.info({ event: 'inbound.subscription_renewed', mailServerId: server.id, expiresAt: r.expirationDateTime }, 'Graph subscription renewed');
        return await findGraphSubscription(deps.db, key);
      } catch (e) {
        // Gone (expired, removed by Microsoft): made again below. Anything else is a failure.
        if (!(e instanceof GraphError && e.evidence.status === 404)) throw e;
      }
    }
    const clientState = randomBytes(CLIENT_STATE_BYTES).toString('base64url');
    const folder = await folderId(call, server.username, server.imap!.folder);
    const body = {
      changeType: 'created',
      notificationUrl: `${base}${NOTIFICATION_PATH}`,
      lifecycleNotificationUrl: `${base}${LIFECYCLE_PATH}`,
      resource: `users/${server.username}/mailFolders/${folder}/messages`,
      expirationDateTime,
      clientState,
    };
    const r = subscriptionAnswer('POST /subscriptions', await call<Record<string, unknown>>({ method: 'POST', path: '/subscriptions', body }));
    await saveGraphSubscription(deps.db, { resourceKey: key, mailServerId: server.id, subscriptionId: r.id, clientStateHash: hashOf(clientState).toString('hex'), expiresAt: r.expirationDateTime, state: 'active', reason: null }, deps.now());
    deps.logger.info({ event: 'inbound.subscribed', mailServerId: server.id, expiresAt: r.expirationDateTime }, 'Graph change notifications subscribed');
    // The one it replaces, if Graph still has it: notifications for it would be ignored anyway.
    if (fresh?.subscriptionId && fresh.subscriptionId !== r.id) {
      await call({ method: 'DELETE', path: `/subscriptions/${encodeURIComponent(fresh.subscriptionId)}` }).catch(() => undefined);
    }
    return await findGraphSubscription(deps.db, key);
  } catch (e) {
    if (deps.signal?.aborted) return row;
    const reason = subscriptionFailure(e, deps.push.retryMs);
    await saveGraphSubscription(deps.db, { resourceKey: key, mailServerId: server.id, subscriptionId: null, clientStateHash: null, expiresAt: null, state: 'off', reason }, deps.now());
    deps.logger.warn({ event: 'inbound.subscribe_failed', mailServerId: server.id, reason }, 'Graph subscription not made; polling at the normal interval');
    return await findGraphSubscription(deps.db, key);
  } finally {
    await releaseLease(deps.db, claim, deps.instance).catch(() => undefined);
  }
}
