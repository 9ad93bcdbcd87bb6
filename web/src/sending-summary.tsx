import type { SendStatus } from './api.ts';
import { formatDateTime } from './format-date-time.ts';

const n = (x: number) => x.toLocaleString();

/** "Sent today: 120 / 10,000 recipients", then when the next message may go or until when mail is held. */
function sendingText(s: SendStatus): { today: string; next: string | null } {
  const today = `Sent today: ${n(s.recipientsToday)}${s.recipientsPerDay === null ? '' : ` / ${n(s.recipientsPerDay)}`} recipients`;
  let next: string | null = null;
  if (s.held > 0 && s.heldUntil) next = `${n(s.held)} held until ${formatDateTime(s.heldUntil)} (daily limit)`;
  else if (s.nextSendAt) next = `Next message at ${formatDateTime(s.nextSendAt)} (${n(s.queued)} waiting)`;
  else if (s.queued > 0) next = `${n(s.queued)} waiting, sending now`;
  return { today, next };
}

/** The sending summary: on the server form above its limits, and in Mail Health. */
export function SendingSummary({ sending }: { sending: SendStatus }) {
  const { today, next } = sendingText(sending);
  return (
    <div className="sending-summary">
      <div>{today}</div>
      {next && <div className="muted">{next}</div>}
    </div>
  );
}
