import type { InboundDeliveryState, MessageOutcome, MessageProblemCode, MessageState, TokenStatus } from './api.ts';

/**
 * Every state badge of the UI in one table: the label a state reads as and the colour class it wears.
 * Colours: green done/valid, red failed, amber waiting on something, blue in progress, grey inactive.
 */
const KINDS = {
  message: {
    queued: ['Queued', 'badge-message-queued'],
    sending: ['Sending', 'badge-message-sending'],
    sent: ['Sent', 'badge-message-sent'],
    failed: ['Failed', 'badge-message-failed'],
    held: ['Held', 'badge-message-held'],
    cancelled: ['Cancelled', 'badge-message-cancelled'],
  } satisfies Record<MessageState, [string, string]>,
  outcome: {
    bounced: ['Bounced', 'badge-outcome-bounced'],
    delayed: ['Delayed', 'badge-outcome-delayed'],
    auto_replied: ['Auto-replied', 'badge-outcome-auto_replied'],
    delivered: ['Delivered', 'badge-outcome-delivered'],
  } satisfies Record<MessageOutcome, [string, string]>,
  token: {
    valid: ['Token Valid', 'badge-valid'],
    not_connected: ['Not connected', 'badge-not-connected'],
    reconnect_needed: ['Reconnect needed', 'badge-reconnect-needed'],
  } satisfies Record<TokenStatus, [string, string]>,
  delivery: {
    pending: ['Pending', 'badge-delivery-pending'],
    delivered: ['Delivered', 'badge-delivery-delivered'],
    failed: ['Failed', 'badge-delivery-failed'],
    none: ['No webhook', 'badge-delivery-none'],
  } satisfies Record<InboundDeliveryState, [string, string]>,
  problem: {
    too_large: ['Too large', 'badge-message-held'],
    too_many_parts: ['Too many parts', 'badge-message-held'],
    too_deep: ['Nested too deep', 'badge-message-held'],
    malformed: ['Unreadable', 'badge-message-held'],
  } satisfies Record<MessageProblemCode, [string, string]>,
  /** API keys and webhooks. */
  active: {
    active: ['Active', 'badge-active'],
    revoked: ['Revoked', 'badge-revoked'],
    disabled: ['Disabled', 'badge-revoked'],
    inactive: ['Inactive', 'badge-inactive'],
  },
  /** A server's connection as a list shows it (token, last error, sign-in). */
  connection: {
    connected: ['Connected', 'badge-valid'],
    token_valid: ['Token Valid', 'badge-valid'],
    needs_sign_in: ['Needs sign-in', 'badge-reconnect-needed'],
    failed: ['Connection failed', 'badge-message-failed'],
    not_connected: ['Not connected', 'badge-not-connected'],
    no_sign_in: ['Ready', 'badge-valid'],
  },
} as const;

export type StatusKind = keyof typeof KINDS;
export type StatusOf<K extends StatusKind> = keyof (typeof KINDS)[K];

export function statusLabel<K extends StatusKind>(kind: K, state: StatusOf<K>): string {
  const entry = (KINDS[kind] as Record<string, readonly [string, string]>)[state as string];
  return entry ? entry[0] : String(state);
}

/** Every state of a kind, in display order, with its label (e.g. for a filter's options). */
export function statusOptions<K extends StatusKind>(kind: K): { value: StatusOf<K>; label: string }[] {
  return Object.entries(KINDS[kind]).map(([value, [label]]) => ({ value: value as StatusOf<K>, label }));
}

interface StatusBadgeProps<K extends StatusKind> {
  kind: K;
  state: StatusOf<K>;
  /** Replaces the label (e.g. "Connection failed — timeout"). */
  label?: string;
  /** Tooltip: the detail behind the state. */
  title?: string;
}

/** One state as a coloured badge; the same look for messages, tokens, deliveries and keys. */
export function StatusBadge<K extends StatusKind>({ kind, state, label, title }: StatusBadgeProps<K>) {
  const entry = (KINDS[kind] as Record<string, readonly [string, string]>)[state as string];
  const className = entry ? entry[1] : 'badge-inactive';
  return (
    <span className={`badge ${className}`} title={title}>
      {label ?? (entry ? entry[0] : String(state))}
    </span>
  );
}

/** Queued and sending messages change by themselves: pages showing them refresh. */
export function messageIsPending(state: MessageState): boolean {
  return state === 'queued' || state === 'sending';
}
