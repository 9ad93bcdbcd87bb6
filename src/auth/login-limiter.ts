/**
 * Counts failed logins per account and per client address. After `perAccount` failures for one email
 * (or `perAddress` from one address, higher because an office shares one NAT address) within
 * `windowMs`, further attempts are refused until the window passes, whatever the password: this stops
 * password guessing without letting a stranger lock an account out for longer than the window.
 */
export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly perAccount = 5,
    private readonly windowMs = 15 * 60_000,
    private readonly perAddress = 4 * perAccount,
    private readonly now: () => number = Date.now,
  ) {}

  private recent(key: string): number[] {
    const cutoff = this.now() - this.windowMs;
    const list = (this.failures.get(key) ?? []).filter((t) => t > cutoff);
    if (list.length) this.failures.set(key, list);
    else this.failures.delete(key);
    return list;
  }

  /** Milliseconds to wait before another attempt is allowed, or 0. */
  retryAfterMs(ip: string, email: string): number {
    let wait = 0;
    for (const [key, max] of [[`ip:${ip}`, this.perAddress], [`acct:${email}`, this.perAccount]] as const) {
      const list = this.recent(key);
      if (list.length >= max) wait = Math.max(wait, list[list.length - max]! + this.windowMs - this.now());
    }
    return wait;
  }

  recordFailure(ip: string, email: string): void {
    for (const key of [`ip:${ip}`, `acct:${email}`]) {
      this.failures.set(key, [...this.recent(key), this.now()]);
    }
  }

  recordSuccess(ip: string, email: string): void {
    this.failures.delete(`ip:${ip}`);
    this.failures.delete(`acct:${email}`);
  }
}
