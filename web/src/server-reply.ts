import type { MessageError } from './api.ts';

/**
 * The raw server reply behind a delivery error, on one line: the SMTP reply text when there is one,
 * otherwise the evidence as JSON. Empty when the error carries no evidence.
 */
export function serverReply(error: MessageError): string {
  const evidence: unknown = error.evidence;
  if (evidence === undefined || evidence === null) return '';
  if (typeof evidence === 'string') return evidence;
  if (typeof evidence === 'object' && 'response' in evidence && typeof evidence.response === 'string') {
    return evidence.response;
  }
  try {
    return JSON.stringify(evidence);
  } catch {
    return String(evidence);
  }
}
