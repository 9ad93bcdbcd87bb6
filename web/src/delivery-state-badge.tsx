import type { InboundDeliveryState } from './api.ts';

const LABELS: Record<InboundDeliveryState, string> = {
  pending: 'Pending',
  delivered: 'Delivered',
  failed: 'Failed',
  none: 'No webhook',
};

export function deliveryStateLabel(state: InboundDeliveryState): string {
  return LABELS[state] ?? state;
}

/** Webhook delivery of an incoming message: pending amber, delivered green, failed red, no webhook grey. */
export function DeliveryStateBadge({ state }: { state: InboundDeliveryState }) {
  return <span className={`badge badge-delivery-${state}`}>{deliveryStateLabel(state)}</span>;
}
