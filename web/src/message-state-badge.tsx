import type { MessageOutcome, MessageState } from './api.ts';

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

export const OUTCOME_LABELS: Record<MessageOutcome, string> = {
  bounced: 'Bounced',
  delayed: 'Delayed',
  auto_replied: 'Auto-replied',
  delivered: 'Delivered',
};

/** What came back after the 250: a bounce, a delay report, an automatic reply, a delivery report. */
export function OutcomeBadge({ outcome }: { outcome: MessageOutcome | null | undefined }) {
  if (!outcome) return null;
  return <span className={`badge badge-outcome-${outcome}`}>{OUTCOME_LABELS[outcome] ?? outcome}</span>;
}
