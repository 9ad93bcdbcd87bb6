import { type AttemptRule, limitedFor, pruneAttempts, releaseAttempt, reserveAttempt } from '../storage/attempt-limit-store.ts';
import type { Db } from '../storage/database.ts';

export interface LoginLimits {
  /** Failures for one account from one address: a stranger guessing locks out only that pair. */
  perPair: number;
  pairWindowMs: number;
  /** Failures from one address over all accounts (higher: an office shares one NAT address). */
  perAddress: number;
  addressWindowMs: number;
  /** Failures for one account from anywhere: stops guessing spread over many addresses. */
  perAccount: number;
  accountWindowMs: number;
}

export const LOGIN_LIMITS: LoginLimits = {
  perPair: 5,
  pairWindowMs: 15 * 60_000,
  perAddress: 20,
  addressWindowMs: 15 * 60_000,
  perAccount: 50,
  accountWindowMs: 60 * 60_000,
};

export type LoginAttempt = { ok: true; succeeded(): Promise<void> } | { ok: false; retryAfterMs: number };

/**
 * Failed-attempt limits kept in the database, so a restart does not reset them and every instance
 * shares them. An attempt is reserved before the password is checked (twenty parallel guesses get at
 * most `perPair` checks) and given back when the password was right.
 */
export class LoginLimiter {
  constructor(
    private readonly db: Db,
    private readonly limits: LoginLimits = LOGIN_LIMITS,
    private readonly now: () => Date = () => new Date(),
    /** Keeps logins and other credential checks (SMTP AUTH) in counters of their own. */
    private readonly realm = 'login',
  ) {}

  private rules(address: string, account: string): AttemptRule[] {
    const l = this.limits;
    return [
      { key: `${this.realm}:pair:${address}|${account}`, max: l.perPair, windowMs: l.pairWindowMs },
      { key: `${this.realm}:address:${address}`, max: l.perAddress, windowMs: l.addressWindowMs },
      { key: `${this.realm}:account:${account}`, max: l.perAccount, windowMs: l.accountWindowMs },
    ];
  }

  async attempt(address: string, account: string): Promise<LoginAttempt> {
    const rules = this.rules(address, account);
    const r = await this.count(rules);
    if (!r.ok) return r;
    const keys = rules.map((x) => x.key);
    return { ok: true, succeeded: () => releaseAttempt(this.db, keys, [keys[0]!]) };
  }

  /**
   * For credentials nobody can guess (256-bit API keys as SMTP passwords) and many parallel logins
   * of one client: only failures are counted, so fifty connections logging in at once do not use
   * up the allowance the way reserved attempts would. `limitedFor` first (over the limit: refuse
   * without checking), then `failed` after a wrong credential.
   */
  limitedFor(address: string, account: string): Promise<number> {
    return limitedFor(this.db, this.rules(address, account), this.now());
  }

  /**
   * Which counter holds this pair back now (checked in the order pair, address, account), so a
   * refusal can say whose failures it is for; null when none does.
   */
  async limitedBy(address: string, account: string): Promise<{ by: 'pair' | 'address' | 'account'; retryAfterMs: number } | null> {
    const rules = this.rules(address, account);
    const names = ['pair', 'address', 'account'] as const;
    for (let i = 0; i < rules.length; i++) {
      const wait = await limitedFor(this.db, [rules[i]!], this.now());
      if (wait > 0) return { by: names[i]!, retryAfterMs: wait };
    }
    return null;
  }

  /** Counts a failed attempt; `ok: false` when this one went over a limit (answer "try later"). */
  async failed(address: string, account: string): Promise<{ ok: true } | { ok: false; retryAfterMs: number }> {
    return this.count(this.rules(address, account));
  }

  private async count(rules: AttemptRule[]): Promise<{ ok: true } | { ok: false; retryAfterMs: number }> {
    const l = this.limits;
    const now = this.now();
    const r = await reserveAttempt(this.db, rules, now);
    if (!r.ok) return r;
    // Old counters go with the next attempt after their window (an index range): no timer, no growth.
    await pruneAttempts(this.db, now, Math.max(l.pairWindowMs, l.addressWindowMs, l.accountWindowMs));
    return { ok: true };
  }
}
