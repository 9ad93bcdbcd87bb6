import type { Config } from '../config/config.ts';
import type { ApplicationContext } from '../diagnose/evidence.ts';
import { MailroomError } from '../errors/errors.ts';
import { type ApplicationGuideStep, applicationAccessGuide } from '../oauth/application-guide.ts';
import { requireOAuthProvider } from '../oauth/oauth-providers.ts';
import { applicationConsentUrl } from '../oauth/outlook.ts';
import type { TokenManager } from '../oauth/token-manager.ts';
import type { MailServerRecord } from '../storage/mail-server-store.ts';

/** The admin consent URL of a server with application access (its source's app when it reuses one). */
export function applicationConsentUrlOf(s: MailServerRecord, config: Config): { url: string } {
  if (s.access !== 'application') {
    throw new MailroomError('MR_VALIDATION', 'Admin consent for application permissions applies to servers with Access: Application.', { field: 'access', fields: { access: 'Set Access to Application first' } });
  }
  const app = requireOAuthProvider(s).app(s, config, { kind: 'secret', secret: '' });
  return { url: applicationConsentUrl(app, s.id) };
}

/**
 * The guide's "Application access" steps for this server, filled in with its app, tenant, mailbox and
 * (once a token told it) the Enterprise application's object id.
 */
export function applicationGuideOf(s: MailServerRecord, context: ApplicationContext | undefined, config: Config): { steps: ApplicationGuideStep[] } {
  if (!context) {
    throw new MailroomError('MR_VALIDATION', 'The Application access steps apply to Outlook servers with Access: Application.', { field: 'access', fields: { access: 'Set Access to Application first' } });
  }
  let consent: string | null = null;
  try {
    consent = applicationConsentUrlOf(s, config).url;
  } catch {
    // A server sharing another's connection: consent is given on that one.
  }
  return { steps: applicationAccessGuide({ ...context, adminConsentUrl: consent, transport: s.transport }) };
}

/** What an outgoing or incoming server offers for Access: Application, the same for both directions. */
export interface ApplicationAccessActions {
  /**
   * "Check application access": a client-credentials token now, verified for the role this server's
   * transport needs (SMTP.SendAsApp, IMAP.AccessAsApp, Mail.Send or Mail.ReadWrite); Token Valid
   * follows from it. No user signs in.
   */
  check(id: string): Promise<{ status: 'valid'; roles: string[] }>;
  /** Microsoft's admin consent page for this app and tenant. */
  consentUrl(id: string): Promise<{ url: string }>;
  guide(id: string): Promise<{ steps: ApplicationGuideStep[] }>;
}

/** The application-access actions of a service whose `record` finds a server of its direction (MR_NOT_FOUND otherwise). */
export function applicationAccessActions(deps: {
  record: (id: string) => Promise<MailServerRecord>;
  tokens: Pick<TokenManager, 'getApplicationAccess' | 'applicationContext'>;
  config: Config;
}): ApplicationAccessActions {
  return {
    async check(id) {
      await deps.record(id);
      const t = await deps.tokens.getApplicationAccess(id, { forceRefresh: true });
      return { status: 'valid', roles: t.roles };
    },
    async consentUrl(id) {
      return applicationConsentUrlOf(await deps.record(id), deps.config);
    },
    async guide(id) {
      const s = await deps.record(id);
      return applicationGuideOf(s, await deps.tokens.applicationContext(s.id), deps.config);
    },
  };
}
