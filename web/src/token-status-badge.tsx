import type { TokenStatus } from './api.ts';

const LABELS: Record<TokenStatus, string> = {
  valid: 'Token Valid',
  not_connected: 'Not connected',
  reconnect_needed: 'Reconnect needed',
};

export function tokenStatusLabel(status: TokenStatus): string {
  return LABELS[status] ?? status;
}

export function TokenStatusBadge({ status }: { status: TokenStatus }) {
  return <span className={`badge badge-${status.replace(/_/g, '-')}`}>{tokenStatusLabel(status)}</span>;
}
