/**
 * HTTP requests to peers Mailroom does not control (Microsoft Graph, token endpoints, webhook
 * receivers): every exchange ends by a deadline and no answer is read past a size limit, however the
 * peer behaves. A body that would pass the limit (by its Content-Length, or by what arrives) and an
 * exchange still under way at its deadline (headers or body) fail with a PeerLimitError.
 */

export interface FetchBounds {
  /** The whole exchange, response headers and body, must be over by then. */
  timeoutMs: number;
  /** Largest response body read, in bytes. */
  maxBytes: number;
  /** Ends the exchange early (shutdown): the fetch or the body read rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** A peer's answer passed a bound: too large, or not over in time. Node-style `code` for network evidence. */
export class PeerLimitError extends Error {
  readonly code: 'ERESPONSE_TOO_LARGE' | 'ETIMEDOUT';

  constructor(
    readonly limit: 'size' | 'time',
    /** The peer's origin (scheme, host, port): never the path or query, which may carry tokens. */
    readonly origin: string,
    /** maxBytes or timeoutMs. */
    readonly bound: number,
  ) {
    super(
      limit === 'size'
        ? `The answer from ${origin} is larger than ${formatBytes(bound)}; Mailroom stopped reading it.`
        : `${origin} did not finish answering within ${Math.round(bound / 100) / 10} s.`,
    );
    this.name = 'PeerLimitError';
    this.code = limit === 'size' ? 'ERESPONSE_TOO_LARGE' : 'ETIMEDOUT';
  }
}

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${Math.round((n / 1024 / 1024) * 10) / 10} MB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KB`;
  return `${n} bytes`;
}

/**
 * fetch() within bounds. The returned Response's body is a stream that errors with a PeerLimitError
 * once more than `maxBytes` have arrived or the deadline passes, so `text()`, `json()` and a piped
 * stream all stop there; the connection is aborted, not drained.
 */
export async function boundedFetch(input: string | URL, init: RequestInit, bounds: FetchBounds): Promise<Response> {
  const url = new URL(input);
  const abort = new AbortController();
  let failure: PeerLimitError | undefined;
  const fail = (e: PeerLimitError) => {
    failure ??= e;
    abort.abort(failure);
  };
  const timer = setTimeout(() => fail(new PeerLimitError('time', url.origin, bounds.timeoutMs)), bounds.timeoutMs);
  const onOuterAbort = () => abort.abort(bounds.signal!.reason);
  if (bounds.signal?.aborted) onOuterAbort();
  else bounds.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const done = () => {
    clearTimeout(timer);
    bounds.signal?.removeEventListener('abort', onOuterAbort);
  };
  let response: Response;
  try {
    response = await fetch(url, { ...init, signal: init.signal ? AbortSignal.any([init.signal, abort.signal]) : abort.signal });
  } catch (e) {
    done();
    throw failure ?? e;
  }
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > bounds.maxBytes) {
    done();
    fail(new PeerLimitError('size', url.origin, bounds.maxBytes));
    await response.body?.cancel().catch(() => undefined);
    throw failure!;
  }
  if (!response.body || [101, 204, 205, 304].includes(response.status)) {
    done();
    return response;
  }
  let seen = 0;
  const reader = response.body.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done: end, value } = await reader.read();
        if (end) {
          done();
          controller.close();
          return;
        }
        seen += value.byteLength;
        if (seen > bounds.maxBytes) {
          fail(new PeerLimitError('size', url.origin, bounds.maxBytes));
          done();
          await reader.cancel(failure).catch(() => undefined);
          controller.error(failure);
          return;
        }
        controller.enqueue(value);
      } catch (e) {
        done();
        controller.error(failure ?? e);
      }
    },
    cancel(reason) {
      done();
      abort.abort(reason);
      return reader.cancel(reason).catch(() => undefined);
    },
  });
  // A Response over the bounded stream: text(), json(), arrayBuffer() and body all read through it.
  const bounded = new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  Object.defineProperty(bounded, 'url', { value: response.url });
  return bounded;
}
