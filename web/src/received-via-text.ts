import type { Message } from './api.ts';

/** "received over SMTP from 10.0.0.5 as Legacy ERP", or null for a message sent through the API. */
export function receivedViaText(m: Pick<Message, 'receivedVia'>): string | null {
  const r = m.receivedVia;
  return r ? `received over SMTP from ${r.clientAddress} as ${r.apiKeyName}` : null;
}
