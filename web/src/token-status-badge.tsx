import type { TokenStatus } from './api.ts';
import { StatusBadge, statusLabel } from './status-badge.tsx';

export function tokenStatusLabel(status: TokenStatus): string {
  return statusLabel('token', status);
}

export function TokenStatusBadge({ status }: { status: TokenStatus }) {
  return <StatusBadge kind="token" state={status} />;
}
