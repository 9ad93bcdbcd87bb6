import pino, { type Logger } from 'pino';

/** Secrets and tokens never reach the log, wherever they hide in a logged object. */
export const REDACT_PATHS = [
  'password',
  'clientSecret',
  'accessToken',
  'refreshToken',
  'access_token',
  'refresh_token',
  'id_token',
  'code_verifier',
  '*.password',
  '*.clientSecret',
  '*.accessToken',
  '*.refreshToken',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.client_secret',
  // Certificate credentials: the private key (PEM, inside a PFX, or opened for signing), the PFX password, the signed assertion.
  'privateKeyPem',
  'pfxBase64',
  'pfxPassword',
  'client_assertion',
  '*.privateKeyPem',
  '*.pfxBase64',
  '*.pfxPassword',
  '*.client_assertion',
  'req.headers.cookie',
  'req.headers.authorization',
  'req.headers["x-csrf-token"]',
  'res.headers["set-cookie"]',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { service: 'mailroom' },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: {
        // Query strings carry OAuth codes and state on the callback: log the path only.
        // A connect link's token is in its path: a live credential until used, so never logged.
        req: (req: { method: string; url: string; ip?: string }) => ({ method: req.method, path: req.url.split('?')[0]!.replace(/^\/connect\/[^/]+/, '/connect/[token]'), ip: req.ip }),
      },
    },
    destination,
  );
}

/**
 * Node prints its warnings (deprecations, MaxListeners…) as plain text on stderr: into the log
 * instead (each thread has its own `process` events).
 */
export function logWarnings(logger: Logger): void {
  process.removeAllListeners('warning');
  process.on('warning', (w: Error & { code?: string; detail?: string }) => {
    logger.warn({ event: 'process.warning', warning: { name: w.name, ...(w.code && { code: w.code }), ...(w.detail && { detail: w.detail }) } }, w.message);
  });
}

/** Where `logger` writes its lines: another logger's lines (the delivery thread's) go there too. */
export function destinationOf(logger: Logger): { write(line: string): unknown } {
  return (logger as unknown as Record<symbol, { write(line: string): unknown }>)[pino.symbols.streamSym]!;
}

/**
 * The level for the request log of a route called all the time (UI polls, health checks, the send
 * API): its access lines appear only when LOG_LEVEL is debug or trace, while its warnings and errors
 * are kept (and a quieter LOG_LEVEL stays quieter).
 */
export function quietLevel(logLevel: string): string {
  return ['debug', 'trace', 'error', 'fatal', 'silent'].includes(logLevel) ? logLevel : 'warn';
}

export type { Logger };
