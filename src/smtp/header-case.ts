import type { OutgoingMessage, RawOutgoingMessage } from './smtp-client.ts';

/**
 * nodemailer writes every header name in its own casing ("X-ERP-Document" goes out as "X-Erp-Document");
 * a receiving ERP may match the name exactly. Custom headers keep the case the caller gave: nodemailer
 * asks this function for each header name it writes.
 */
export function withHeaderCase<T extends OutgoingMessage | RawOutgoingMessage>(msg: T): T & { normalizeHeaderKey?: (key: string) => string } {
  const headers = 'headers' in msg ? msg.headers : undefined;
  if (!headers) return msg;
  const given = new Map(Object.keys(headers).map((name) => [name.toLowerCase(), name]));
  if (given.size === 0) return msg;
  return { ...msg, normalizeHeaderKey: (key: string) => given.get(key.toLowerCase()) ?? key };
}
