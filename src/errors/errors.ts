/**
 * The one registry of error codes. Every error Mailroom throws on purpose is created here, so codes
 * stay stable and each carries the HTTP status it maps to. Code branches on `code`, never on text.
 */
export const ERRORS = {
  MR_VALIDATION: 400,
  MR_BAD_REQUEST: 400,
  MR_REQUEST_TIMEOUT: 408,
  MR_PAYLOAD_TOO_LARGE: 413,
  MR_URI_TOO_LONG: 414,
  MR_UNSUPPORTED_MEDIA_TYPE: 415,
  MR_HEADERS_TOO_LARGE: 431,
  MR_AUTH_REQUIRED: 401,
  MR_AUTH_INVALID_CREDENTIALS: 401,
  MR_AUTH_RATE_LIMITED: 429,
  /** The public Graph notification endpoint: too many requests from one address. */
  MR_NOTIFICATIONS_RATE_LIMITED: 429,
  MR_AUTH_CSRF: 403,
  MR_SETUP_TOKEN_INVALID: 400,
  MR_SETUP_DONE: 409,
  MR_NOT_FOUND: 404,
  MR_CONFLICT: 409,
  /** Generate certificate on a server that has one: Roll certificate replaces it without an interruption. */
  MR_CERTIFICATE_EXISTS: 409,
  MR_IDEMPOTENCY_MISMATCH: 409,
  MR_UNPROCESSABLE: 422,
  MR_AUTH_FORBIDDEN: 403,
  MR_SECRET_TAMPERED: 500,
  MR_SECRET_KEY_UNKNOWN: 500,
  /** At start: this instance's key does not open the check value the first instance sealed. */
  MR_SECRET_KEY_MISMATCH: 500,
  /** The database cannot be reached (restarted, network down): try again shortly. */
  MR_DATABASE_UNAVAILABLE: 503,
  /** At start: PostgreSQL answered but refused us (login failed, no such database); waiting will not help. */
  MR_DATABASE_REFUSED: 500,
  MR_OAUTH_STATE_INVALID: 400,
  MR_CONNECT_NOT_CONFIGURED: 409,
  MR_OAUTH_NOT_CONFIGURED: 422,
  MR_OAUTH_PROVIDER_ERROR: 502,
  MR_OAUTH_RESPONSE_INVALID: 502,
  MR_OAUTH_NOT_CONNECTED: 422,
  MR_OAUTH_ROLE_MISSING: 422,
  MR_CREDENTIALS_MISSING: 422,
  MR_OAUTH_RECONNECT_NEEDED: 422,
  MR_OAUTH_UNREACHABLE: 502,
  MR_SMTP_FAILED: 502,
  MR_GRAPH_UNREACHABLE: 502,
  /** On a held message, not an HTTP answer: the mailbox's daily recipient limit is used up. */
  MR_SEND_QUOTA_REACHED: 429,
  MR_INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ERRORS;

export interface ErrorDetails {
  field?: string;
  fields?: Record<string, string>;
  fix?: string;
  /** Protocol evidence: OAuth error + AADSTS codes, SMTP code and reply, network error code. */
  evidence?: Record<string, unknown>;
  cause?: unknown;
}

export class MailroomError extends Error {
  readonly statusCode: number;
  readonly field?: string;
  readonly fields?: Record<string, string>;
  readonly fix?: string;
  readonly evidence?: Record<string, unknown>;

  constructor(readonly code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'MailroomError';
    this.statusCode = ERRORS[code];
    if (details.field !== undefined) this.field = details.field;
    if (details.fields !== undefined) this.fields = details.fields;
    if (details.fix !== undefined) this.fix = details.fix;
    if (details.evidence !== undefined) this.evidence = details.evidence;
  }

  toJSON() {
    return {
      code: this.code,
      message: this.message,
      ...(this.field !== undefined && { field: this.field }),
      ...(this.fields !== undefined && { fields: this.fields }),
      ...(this.fix !== undefined && { fix: this.fix }),
      ...(this.evidence !== undefined && { evidence: this.evidence }),
    };
  }
}

export function isMailroomError(e: unknown, code?: ErrorCode): e is MailroomError {
  return e instanceof MailroomError && (code === undefined || e.code === code);
}

export function validationError(fields: Record<string, string>): MailroomError {
  const [first] = Object.entries(fields);
  const [field, msg] = first ?? ['', 'Invalid input'];
  const message = Object.keys(fields).length === 1 ? msg : `${msg} (and ${Object.keys(fields).length - 1} more)`;
  return new MailroomError('MR_VALIDATION', message, { field, fields });
}
