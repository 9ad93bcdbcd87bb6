import type { MessageState } from './api.ts';

export const MESSAGE_STATE_LABELS: Record<MessageState, string> = {
  queued: 'Queued',
  sending: 'Sending',
  sent: 'Sent',
  failed: 'Failed',
  held: 'Held',
  cancelled: 'Cancelled',
};

export const MESSAGE_STATES = Object.keys(MESSAGE_STATE_LABELS) as MessageState[];

export function messageStateLabel(state: MessageState): string {
  return MESSAGE_STATE_LABELS[state] ?? state;
}

/** Queued and sending messages change by themselves: pages showing them refresh. */
export function isPending(state: MessageState): boolean {
  return state === 'queued' || state === 'sending';
}

export function MessageStateBadge({ state }: { state: MessageState }) {
  return <span className={`badge badge-message-${state}`}>{messageStateLabel(state)}</span>;
}
