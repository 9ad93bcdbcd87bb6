import { createServer } from 'node:http';
import type { HttpConfig } from '../config/config.ts';
import { errorBody, handleClientError, SECURITY_HEADERS } from './http-errors.ts';

export interface StartingServer {
  /** What /readyz says the instance is waiting for. */
  waitingFor(cause: string): void;
  /** Stops listening (the application takes the port over). */
  close(): Promise<void>;
}

/**
 * What answers on HOST:PORT while `serve` waits for its database: `/healthz` 200 `starting` (the
 * process lives, so an orchestrator's liveness check does not restart it), `/readyz` 503, and every
 * other request 503 MR_DATABASE_UNAVAILABLE with Retry-After, as a running instance answers during an
 * outage. Plain node:http: the application's routes need the open database to be built.
 */
export async function listenWhileStarting(host: string, port: number, http: HttpConfig): Promise<StartingServer> {
  let waiting = 'waiting for the database';
  const server = createServer({ headersTimeout: http.headersTimeoutMs, requestTimeout: http.requestTimeoutMs }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const [status, body] =
      path === '/healthz'
        ? [200, { status: 'starting' }]
        : path === '/readyz'
          ? [503, { status: 'starting', ...errorBody('MR_DATABASE_UNAVAILABLE', `Mailroom is starting: ${waiting}.`) }]
          : [503, errorBody('MR_DATABASE_UNAVAILABLE', 'Mailroom is starting and cannot reach its database yet. Try again in a few seconds.')];
    const text = JSON.stringify(body);
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
      ...(status === 503 && { 'retry-after': '5' }),
      // Nothing is kept open across the hand-over to the application; a request body is never read.
      connection: 'close',
    });
    res.end(text);
  });
  server.on('clientError', handleClientError);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    waitingFor(cause) {
      waiting = cause;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
