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
        req: (req: { method: string; url: string; ip?: string }) => ({ method: req.method, path: req.url.split('?')[0], ip: req.ip }),
      },
    },
    destination,
  );
}

export type { Logger };
