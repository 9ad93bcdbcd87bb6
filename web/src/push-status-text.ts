import type { PushStatus } from './api.ts';
import { formatDateTime } from './format-date-time.ts';

/** "Push: active until …" or why it is off, with the interval the delta safety net runs at. */
export function pushStatusText(p: PushStatus): string {
  const every = `checked every ${p.pollEveryMinutes} min`;
  if (p.state === 'active') return `Push: active until ${formatDateTime(p.until)} (${every})`;
  return `Push: ${p.state === 'silent' ? 'not arriving' : 'off'}. ${p.reason ?? ''} Polling ${every}.`;
}
