import { diagnose, isTemporary } from '../diagnose/diagnose.ts';
import type { Evidence } from '../diagnose/evidence.ts';

export interface RetryPolicy {
  maxAttempts: number;
  maxAgeMs: number;
  retryBaseMs: number;
  /** Upper bound for one delay. */
  maxDelayMs?: number;
}

/** What a failed delivery attempt left behind, as the worker classifies it. */
export type Failure =
  /** The mail server's reply or a socket error. */
  | { kind: 'delivery'; evidence: Evidence }
  /** No usable token: not connected, reconnect needed, client secret rejected. */
  | { kind: 'credentials' }
  /** Microsoft's token endpoint unreachable or failing temporarily. */
  | { kind: 'token_unavailable' };

/**
 * `hold` without `resumeInMs`: until someone fixes the server (credentials, certificates). With it: a
 * sending quota, back by itself once its window frees, and not sooner than this.
 */
export type Decision = { action: 'retry'; delayMs: number } | { action: 'fail' } | { action: 'hold'; resumeInMs?: number };

/** A quota reply is not asked again sooner than this: each retry would only be refused once more. */
export const QUOTA_RECHECK_MS = 15 * 60_000;

/** Exponential backoff with jitter: base · 2^(attempt−1), capped, then a random 50–100 % of it. */
export function backoffMs(attempts: number, policy: Pick<RetryPolicy, 'retryBaseMs' | 'maxDelayMs'>, random: () => number = Math.random): number {
  const cap = policy.maxDelayMs ?? 3600_000;
  const raw = Math.min(cap, policy.retryBaseMs * 2 ** Math.max(0, attempts - 1));
  return Math.round(raw * (0.5 + random() / 2));
}

/** Transient by evidence: the network, an SMTP 4xx (including Microsoft's throttling replies). */
export function isTransient(e: Evidence): boolean {
  if (e.kind === 'network') return true;
  if (e.kind === 'smtp') return e.responseCode === undefined ? e.code !== 'EENVELOPE' && e.code !== 'EMESSAGE' : e.responseCode >= 400 && e.responseCode < 500;
  if (e.kind === 'imap') return e.responseCode === 'UNAVAILABLE';
  if (e.kind === 'graph') return diagnose(e).temporary;
  return false;
}

/**
 * Graph refusals that a change of setup fixes without losing the mail: a permission to add, a licence
 * to assign, a token Graph does not take, a full mailbox. Send As denied is the message's own fault.
 */
const GRAPH_HOLD = new Set(['GRAPH_ErrorAccessDenied', 'GRAPH_MailboxNotEnabledForRESTAPI', 'GRAPH_InvalidAuthenticationToken', 'GRAPH_ErrorQuotaExceeded', 'GRAPH_ErrorInvalidUser']);
export function isGraphSetupProblem(e: Evidence): boolean {
  return e.kind === 'graph' && GRAPH_HOLD.has(diagnose(e).code);
}

/** A sending quota used up (see Diagnosis.quota). */
export function isQuotaExceeded(e: Evidence): boolean {
  return e.kind === 'smtp' && diagnose(e).quota === true;
}

/** An SMTP login refusal: no point failing the message, the mailbox setup needs fixing. */
export function isAuthRefusal(e: Evidence): boolean {
  return e.kind === 'smtp' && (e.responseCode === 535 || e.responseCode === 530 || (e.code === 'EAUTH' && e.responseCode === undefined));
}

/** A certificate or TLS-mode problem: waiting will not fix it, but the admin can without losing mail. */
export function isSetupProblem(e: Evidence): boolean {
  return e.kind === 'network' && !isTemporary(e);
}

/**
 * Pure: what to do after a failed attempt, from the evidence, the attempts made so far (including this
 * one) and the message's age.
 */
export function decide(failure: Failure, attempts: number, ageMs: number, policy: RetryPolicy, random?: () => number): Decision {
  if (failure.kind === 'credentials') return { action: 'hold' };
  // Exchange's daily recipient quota and the tenant's external recipient limit: waiting for the
  // 24-hour window is the fix, so the mail waits for it instead of failing.
  if (failure.kind === 'delivery' && isQuotaExceeded(failure.evidence)) return { action: 'hold', resumeInMs: QUOTA_RECHECK_MS };
  if (failure.kind === 'delivery' && (isAuthRefusal(failure.evidence) || isSetupProblem(failure.evidence) || isGraphSetupProblem(failure.evidence))) return { action: 'hold' };
  const transient = failure.kind === 'token_unavailable' || isTransient(failure.evidence);
  if (!transient) return { action: 'fail' };
  if (attempts >= policy.maxAttempts) return { action: 'fail' };
  // Graph's Retry-After is the least wait that can succeed; backoff may ask for more.
  const retryAfterMs = failure.kind === 'delivery' && failure.evidence.kind === 'graph' ? (failure.evidence.retryAfterSeconds ?? 0) * 1000 : 0;
  const delayMs = Math.max(backoffMs(attempts, policy, random), retryAfterMs);
  if (ageMs + delayMs > policy.maxAgeMs) return { action: 'fail' };
  return { action: 'retry', delayMs };
}
