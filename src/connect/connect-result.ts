import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** Query names Mailroom adds to the return URL; a return URL may not use them itself. */
export const RESULT_PARAMS = ['status', 'owner', 'mailbox', 'serverId', 'incomingServerId', 'error', 'message', 'ts', 'nonce', 'sig'] as const;

export type ConnectResult =
  | { status: 'connected'; owner: string; mailbox: string; serverId: string; incomingServerId?: string }
  | { status: 'disconnected'; owner: string; serverId?: string }
  | { status: 'error'; owner: string; error: string; message: string };

const hmac = (secret: Buffer, text: string) => createHmac('sha256', secret).update(text, 'utf8').digest('hex');

/**
 * The return URL with the result appended, then `ts` (Unix seconds) and a random `nonce`, then last
 * `sig`: hex HMAC-SHA256 of the query string before `&sig=`, exactly as sent (the return URL's own
 * query included). The ERP recomputes it over the raw query, refuses an old `ts` and a `nonce` it has
 * seen: a result is accepted once.
 */
export function signedResultUrl(returnUrl: string, result: ConnectResult, secret: Buffer, now: Date): string {
  const url = new URL(returnUrl);
  const q = new URLSearchParams(url.search);
  for (const [k, v] of Object.entries(result)) if (v !== undefined) q.append(k, String(v));
  q.append('ts', String(Math.floor(now.getTime() / 1000)));
  q.append('nonce', randomBytes(16).toString('base64url'));
  const query = q.toString();
  url.search = `${query}&sig=${hmac(secret, query)}`;
  return url.href;
}

/**
 * What the ERP does with the URL it receives (the README shows the same steps): the signature over
 * the raw query before `&sig=`, then the age. Nonce bookkeeping is the caller's (`seen`).
 */
export function verifyResultQuery(rawQuery: string, secret: Buffer, opts: { now: Date; maxAgeSeconds?: number; seen?: (nonce: string) => boolean }): { ok: true; params: URLSearchParams } | { ok: false; reason: string } {
  const q = rawQuery.startsWith('?') ? rawQuery.slice(1) : rawQuery;
  const at = q.lastIndexOf('&sig=');
  if (at < 0) return { ok: false, reason: 'no signature' };
  const signed = q.slice(0, at);
  const sig = Buffer.from(q.slice(at + 5), 'utf8');
  const expected = Buffer.from(hmac(secret, signed), 'utf8');
  if (sig.length !== expected.length || !timingSafeEqual(sig, expected)) return { ok: false, reason: 'bad signature' };
  const params = new URLSearchParams(signed);
  const ts = Number(params.get('ts'));
  if (!Number.isFinite(ts) || Math.abs(opts.now.getTime() / 1000 - ts) > (opts.maxAgeSeconds ?? 300)) return { ok: false, reason: 'too old' };
  const nonce = params.get('nonce');
  if (!nonce || opts.seen?.(nonce)) return { ok: false, reason: 'replayed' };
  return { ok: true, params };
}
