import { connectLabel } from '../oauth/oauth-provider.ts';
import { oauthProviderOf } from '../oauth/oauth-providers.ts';
import type { Logger } from '../logger.ts';
import type { TokenManager } from '../oauth/token-manager.ts';
import type { OutboxService } from '../outbox/outbox-service.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import { acquireLease, releaseLease } from '../storage/cluster-store.ts';
import type { Db } from '../storage/database.ts';
import { listAdminEmails } from '../storage/audit-store.ts';
import { claimCertificateAlert, claimReconnectAlert, claimSecretAlert, listAllMailServers, listTokens, type MailServerRecord, setAlertState, type TokenRecord } from '../storage/mail-server-store.ts';
import { alertDue, certificateExpiry, secretExpiry } from './secret-expiry.ts';

const KEEPALIVE_AFTER_MS = 24 * 3600_000;
const CHECK_EVERY_MS = 3600_000;

/**
 * The slow clock of the product: client secret expiry warnings (30, 7, 1 days and after expiry), a
 * daily keep-alive refresh (Microsoft refresh tokens die after 90 days unused), and a single alert
 * when a connection needs reconnecting. Alerts go to the log and, by e-mail, to every admin through a
 * mail server that still works.
 */
export class LifecycleService {
  private timer: NodeJS.Timeout | undefined;
  private held = false;
  private lastRun = 0;
  private running: Promise<unknown> | undefined;
  private lastProbe = 0;
  private probing: Promise<unknown> | undefined;

  constructor(
    private readonly deps: {
      db: Db;
      tokens: TokenManager;
      outbox: OutboxService;
      audit: AuditLog;
      logger: Logger;
      baseUrl: URL;
      now?: () => Date;
      instance?: string;
      /** How long the lifecycle lease lasts without a heartbeat (LIFECYCLE_LEASE_SECONDS). */
      leaseMs?: number;
      /** How often rolled certificates waiting to be proven are tried (CERTIFICATE_PROBE_SECONDS). */
      certificateProbeMs?: number;
    },
  ) {}

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  private get leaseMs(): number {
    return this.deps.leaseMs ?? 25_000;
  }

  private get holder(): string {
    return this.deps.instance ?? 'local';
  }

  start(): void {
    if (this.timer) return;
    // Once for the cluster: the instance holding the short lifecycle lease runs the checks hourly and
    // renews the lease every third of its length; if it dies, another takes the lease once it runs
    // out and runs the checks at once. The checks themselves are claimed row by row, so a takeover
    // (or two instances running them at once) never sends a warning twice.
    this.timer = setInterval(() => void this.tick(), Math.max(1000, Math.floor(this.leaseMs / 3)));
    this.timer.unref();
    void this.tick();
  }

  private async tick(): Promise<void> {
    try {
      const held = await acquireLease(this.deps.db, 'lifecycle', this.holder, this.leaseMs, this.now());
      const gained = held && !this.held;
      this.held = held;
      if (!held) return;
      this.probeSoon();
      if (this.running) return;
      if (!gained && Date.now() - this.lastRun < CHECK_EVERY_MS) return;
      this.lastRun = Date.now();
      if (gained) this.deps.logger.info({ event: 'lifecycle.lease_taken', instance: this.holder }, 'this instance runs the lifecycle jobs');
      this.running = this.runChecks()
        .catch((e) => this.deps.logger.error({ err: e, event: 'lifecycle.failed' }, 'lifecycle checks failed'))
        .finally(() => (this.running = undefined));
    } catch (e) {
      this.held = false;
      this.deps.logger.warn({ event: 'lifecycle.lease_failed', err: (e as Error).message }, 'lifecycle lease not renewed');
    }
  }

  private probeSoon(): void {
    if (this.probing || Date.now() - this.lastProbe < (this.deps.certificateProbeMs ?? 300_000)) return;
    this.lastProbe = Date.now();
    this.probing = this.probePendingCertificates()
      .catch((e) => this.deps.logger.warn({ err: e, event: 'lifecycle.certificate_probe_failed' }, 'certificate probe failed'))
      .finally(() => (this.probing = undefined));
  }

  /**
   * A rolled certificate becomes current once a token request with it succeeds (see client-auth.ts):
   * servers that have one waiting get a forced refresh, pending certificate first and the current one
   * if it is refused, so the roll completes soon after the admin uploaded it, busy or idle. The refresh
   * holds the server's token lock like any other, so a send never waits on a second one.
   */
  async probePendingCertificates(): Promise<string[]> {
    const { db, logger } = this.deps;
    const tokens = new Map((await listTokens(db)).map((t) => [t.mailServerId, t]));
    const probed: string[] = [];
    for (const s of await listAllMailServers(db)) {
      if (s.tokenSourceId || s.clientCredential !== 'certificate' || !s.pendingCertificate) continue;
      const t = tokens.get(s.id);
      // A delegated grant is refreshed; application access (no refresh token) asks for a new app token.
      if (t?.status !== 'valid' || (!t.refreshTokenSealed && s.access !== 'application')) continue;
      try {
        await this.deps.tokens.getAccessToken(s.id, { forceRefresh: true });
        probed.push(s.id);
      } catch (e) {
        logger.warn({ event: 'lifecycle.certificate_probe_refresh_failed', mailServerId: s.id, err: (e as Error).message }, 'refresh while probing a rolled certificate failed');
      }
    }
    return probed;
  }

  /** Stops the heartbeat and gives the lease up, so another instance takes the jobs over at once. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
    await this.probing;
    if (this.held) await releaseLease(this.deps.db, 'lifecycle', this.holder).catch(() => undefined);
    this.held = false;
  }

  async runChecks(): Promise<{ alerts: string[]; refreshed: string[] }> {
    const { db, logger } = this.deps;
    const now = this.now();
    const servers = await listAllMailServers(db);
    const tokens = new Map((await listTokens(db)).map((t) => [t.mailServerId, t]));
    const alerts: string[] = [];
    const refreshed: string[] = [];

    for (const s of servers.filter((x) => !x.tokenSourceId)) {
      const t = tokens.get(s.id);
      if (t?.status === 'valid' && t.refreshTokenSealed && (!t.refreshedAt || now.getTime() - Date.parse(t.refreshedAt) > KEEPALIVE_AFTER_MS)) {
        try {
          await this.deps.tokens.getAccessToken(s.id, { forceRefresh: true });
          refreshed.push(s.id);
          logger.info({ event: 'lifecycle.keepalive', mailServerId: s.id }, 'idle connection refreshed');
        } catch (e) {
          logger.warn({ event: 'lifecycle.keepalive_failed', mailServerId: s.id, err: (e as Error).message }, 'keep-alive refresh failed');
        }
      }
    }

    const fresh = new Map((await listTokens(db)).map((t) => [t.mailServerId, t]));
    for (const s of servers.filter((x) => !x.tokenSourceId)) {
      // Only OAuth servers have a client secret and a sign-in to lose; the texts name their provider.
      const provider = oauthProviderOf(s);
      if (!provider) continue;
      // The secret's date matters while the secret is the credential in use.
      const expiry = secretExpiry(s.clientCredential === 'certificate' && provider.certificates ? null : s.clientSecretExpiresAt, now);
      // The claim first: the instance whose conditional update moved the level on sends the warning.
      if (alertDue(expiry, s.secretAlertLevel) && (await claimSecretAlert(db, s.id, s.secretAlertLevel, expiry.threshold!))) {
        const when = expiry.state === 'expired' ? `expired on ${s.clientSecretExpiresAt}` : `expires on ${s.clientSecretExpiresAt} (${expiry.daysLeft} day${expiry.daysLeft === 1 ? '' : 's'} left)`;
        const subject = `Mailroom: the client secret of "${s.name}" ${expiry.state === 'expired' ? 'has expired' : 'expires soon'}`;
        const text =
          `The ${provider.accountName} client secret used by the mail server "${s.name}" (${s.username}) ${when}.\n` +
          `When it expires, every mailbox using this app stops sending and receiving.\n\n` +
          `Fix: create a new client secret. ${provider.secretHelp} The form: ${this.formUrl(s)}; also update Client Secret Expiration.\n`;
        logger.warn({ event: 'lifecycle.secret_expiry', mailServerId: s.id, threshold: expiry.threshold, daysLeft: expiry.daysLeft }, subject);
        await this.alertAdmins(s, subject, text);
        alerts.push(`secret:${s.id}:${expiry.threshold}`);
      }
      const cert = certificateExpiry(s, now);
      if (cert && s.certificate && alertDue(cert, s.certificateAlertLevel) && (await claimCertificateAlert(db, s.id, s.certificateAlertLevel, cert.threshold!))) {
        const day = s.certificate.notAfter.slice(0, 10);
        const when = cert.state === 'expired' ? `expired on ${day}` : `expires on ${day} (${cert.daysLeft} day${cert.daysLeft === 1 ? '' : 's'} left)`;
        const subject = `Mailroom: the certificate of "${s.name}" ${cert.state === 'expired' ? 'has expired' : 'expires soon'}`;
        const text =
          `The certificate (thumbprint ${s.certificate.thumbprint}) the mail server "${s.name}" (${s.username}) signs its ${provider.accountName} token requests with ${when}.\n` +
          `When it expires, every mailbox using it stops sending and receiving.\n\n` +
          `Fix: open ${this.formUrl(s)}, click Roll certificate, then Download certificate and upload the new one in Azure › Certificates & secrets › Certificates. ` +
          `The current certificate keeps working until the new one is proven; Mailroom then tells you which old thumbprint to delete.\n`;
        logger.warn({ event: 'lifecycle.certificate_expiry', mailServerId: s.id, threshold: cert.threshold, daysLeft: cert.daysLeft, thumbprint: s.certificate.thumbprint }, subject);
        await this.alertAdmins(s, subject, text);
        alerts.push(`certificate:${s.id}:${cert.threshold}`);
      }
      const t = fresh.get(s.id);
      if (t?.status === 'reconnect_needed' && !s.reconnectAlertedAt && (await claimReconnectAlert(db, s.id, now.toISOString()))) {
        const subject = `Mailroom: "${s.name}" must be reconnected`;
        const text =
          `The ${provider.accountName} sign-in of the mail server "${s.name}" (${s.username}) is no longer accepted.\n` +
          `Reason: ${t.statusReason ?? 'the sign-in was revoked or expired'}.\n` +
          `Mail for this server is held until it is reconnected; nothing is lost.\n\n` +
          `Fix: open ${this.formUrl(s)} and click ${connectLabel(provider)}.\n`;
        logger.warn({ event: 'lifecycle.reconnect_needed', mailServerId: s.id }, subject);
        await this.alertAdmins(s, subject, text);
        alerts.push(`reconnect:${s.id}`);
      } else if (t?.status === 'valid' && s.reconnectAlertedAt) {
        await setAlertState(db, s.id, { reconnectAlertedAt: null });
      }
    }
    return { alerts, refreshed };
  }

  private formUrl(s: MailServerRecord): string {
    const base = this.deps.baseUrl.href.replace(/\/+$/, '');
    return `${base}/settings/technical/${s.direction === 'incoming' ? 'incoming-mail-servers' : 'mail-servers'}/${s.id}`;
  }

  /** E-mails every admin through another outgoing server whose token is valid; the log has it either way. */
  private async alertAdmins(about: MailServerRecord, subject: string, text: string): Promise<void> {
    const { db, logger } = this.deps;
    const admins = await listAdminEmails(db);
    const tokens = new Map((await listTokens(db)).map((t: TokenRecord) => [t.mailServerId, t]));
    const via = (await listAllMailServers(db)).find(
      (s) => s.direction === 'outgoing' && s.active && s.id !== about.id && s.id !== about.tokenSourceId && tokens.get(s.id)?.status === 'valid',
    );
    if (!admins.length || !via) {
      logger.warn({ event: 'lifecycle.alert_not_mailed', mailServerId: about.id, reason: admins.length ? 'no other working mail server' : 'no admins' }, 'alert could not be e-mailed');
      return;
    }
    await this.deps.outbox.enqueue({ from: via.username, to: admins, subject, text, mailServerId: via.id });
    await this.deps.audit.record('system', 'alert.mailed', { type: 'mail_server', id: about.id }, { subject, via: via.id });
  }
}
