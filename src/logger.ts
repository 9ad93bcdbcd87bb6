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

export type { Logger };
