import type { Db } from './database.ts';

/**
 * 'active': notifications arrive and the mailbox is polled at the long interval; 'silent': the
 * subscription exists but a poll found mail no notification announced; 'off': none (reason says why).
 */
export type PushStateName = 'active' | 'silent' | 'off';

export interface GraphSubscriptionRecord {
  resourceKey: string;
  mailServerId: string;
  subscriptionId: string | null;
  clientStateHash: string | null;
  expiresAt: string | null;
  state: PushStateName;
  reason: string | null;
  lastNotificationAt: string | null;
  createdAt: string;
  updatedAt: string;
}

type Row = {
  resource_key: string;
  mail_server_id: string;
  subscription_id: string | null;
  client_state_hash: string | null;
  expires_at: string | null;
  state: string;
  reason: string | null;
  last_notification_at: string | null;
  created_at: string;
  updated_at: string;
};

const record = (r: Row): GraphSubscriptionRecord => ({
  resourceKey: r.resource_key,
  mailServerId: r.mail_server_id,
  subscriptionId: r.subscription_id,
  clientStateHash: r.client_state_hash,
  expiresAt: r.expires_at,
  state: r.state as PushStateName,
  reason: r.reason,
  lastNotificationAt: r.last_notification_at,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export async function listGraphSubscriptions(db: Db): Promise<GraphSubscriptionRecord[]> {
  return (await db.selectFrom('graph_subscriptions').selectAll().execute()).map(record);
}

export async function findGraphSubscription(db: Db, resourceKey: string): Promise<GraphSubscriptionRecord | undefined> {
  const r = await db.selectFrom('graph_subscriptions').selectAll().where('resource_key', '=', resourceKey).executeTakeFirst();
  return r && record(r);
}

/** The rows of these subscription ids (a notification's); read only: an unknown id costs no write. */
export async function subscriptionsById(db: Db, ids: string[]): Promise<GraphSubscriptionRecord[]> {
  if (!ids.length) return [];
  return (await db.selectFrom('graph_subscriptions').selectAll().where('subscription_id', 'in', ids).execute()).map(record);
}

/** Writes the mailbox and folder's row as its claimer left it (insert or replace). */
export async function saveGraphSubscription(db: Db, s: Omit<GraphSubscriptionRecord, 'createdAt' | 'updatedAt' | 'lastNotificationAt'>, now: Date): Promise<void> {
  const at = now.toISOString();
  const values = {
    resource_key: s.resourceKey,
    mail_server_id: s.mailServerId,
    subscription_id: s.subscriptionId,
    client_state_hash: s.clientStateHash,
    expires_at: s.expiresAt,
    state: s.state,
    reason: s.reason,
    updated_at: at,
  };
  await db
    .insertInto('graph_subscriptions')
    .values({ ...values, last_notification_at: null, created_at: at })
    .onConflict((oc) => oc.column('resource_key').doUpdateSet(values))
    .execute();
}

/** A checked notification for this subscription: it counts as working again. */
export async function markNotified(db: Db, subscriptionId: string, now: Date): Promise<void> {
  await db.updateTable('graph_subscriptions').set({ last_notification_at: now.toISOString(), state: 'active', reason: null }).where('subscription_id', '=', subscriptionId).where('state', '!=', 'off').execute();
}

/** A poll found mail no notification announced: back to the normal interval until one arrives. */
export async function markSilent(db: Db, resourceKey: string, reason: string, now: Date): Promise<void> {
  await db.updateTable('graph_subscriptions').set({ state: 'silent', reason, updated_at: now.toISOString() }).where('resource_key', '=', resourceKey).where('state', '=', 'active').execute();
}

export async function deleteGraphSubscription(db: Db, resourceKey: string): Promise<void> {
  await db.deleteFrom('graph_subscriptions').where('resource_key', '=', resourceKey).execute();
}
