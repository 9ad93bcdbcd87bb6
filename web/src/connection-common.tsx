import { useState, type ReactNode } from 'react';
import { api, ApiError, type AuthMethodChoice, type ConnectAnswer, type Problem, type ServerBase, type ServerNotice, type TestResult } from './api.ts';
import { ConnectAccountButton } from './connect-account-button.tsx';
import { ErrorAlert } from './error-alert.tsx';
import { GuideStepLink, guideOf, guideStepOf } from './guide-step-link.tsx';
import { Notice } from './notice.tsx';
import { Link } from './router.tsx';
import { guidePath } from './routes.ts';
import { connectButtonLabel } from './server-form-description.ts';
import { Spinner } from './spinner.tsx';

/** What both Connection panels share: connecting, application access, results and notices. */

export type Outcome = { ok: true; message: string; detail?: string } | ({ ok: false } & Problem);

export function toFailure(err: unknown): Outcome & { ok: false } {
  if (err instanceof ApiError) return { ok: false, message: err.message, fix: err.fix, code: err.code, evidence: err.evidence };
  return { ok: false, message: String(err) };
}

/** A test, send or fetch result: success, or the explained failure with its guide step. */
export function OutcomeAlert({ outcome, guide, failureTitle, children }: { outcome: Outcome; guide: string | null; failureTitle?: string; children?: ReactNode }) {
  if (outcome.ok) {
    return (
      <div className="alert alert-success" role="status">
        <p className="alert-message">{outcome.message}</p>
        {outcome.detail && outcome.detail !== outcome.message && <p className="alert-detail">{outcome.detail}</p>}
      </div>
    );
  }
  return (
    <ErrorAlert problem={outcome} title={failureTitle} guide={guide ?? false}>
      {children}
    </ErrorAlert>
  );
}

/** A secondary button with a spinner while its action runs. */
export function BusyButton({ busy, onClick, children, disabled, small }: { busy: boolean; onClick: () => void; children: ReactNode; disabled?: boolean; small?: boolean }) {
  return (
    <button type="button" className={small ? 'btn btn-secondary btn-small' : 'btn btn-secondary'} onClick={onClick} disabled={busy || disabled} aria-busy={busy || undefined}>
      {busy && <Spinner />}
      {children}
    </button>
  );
}

/** Test Connection / Test & Confirm: the explained outcome, then the server read again (its checklist moved). */
export function useTest(call: () => Promise<TestResult>, success: (r: TestResult) => Outcome & { ok: true }, refresh: () => void) {
  const [testing, setTesting] = useState(false);
  const [testOutcome, setTestOutcome] = useState<Outcome | null>(null);
  async function test() {
    setTesting(true);
    setTestOutcome(null);
    try {
      const r = await call();
      setTestOutcome(r.ok ? success(r) : { ok: false, message: r.message, fix: r.fix, code: r.code, guideStep: r.guideStep, evidence: r.evidence });
    } catch (err) {
      setTestOutcome(toFailure(err));
    } finally {
      setTesting(false);
      refresh();
    }
  }
  return { testing, testOutcome, setTestOutcome, test };
}

interface ConnectableServer {
  id: string;
  tokenStatus: 'not_connected' | 'valid' | 'reconnect_needed';
  access?: 'delegated' | 'application';
  notice?: ServerNotice | null;
}

/**
 * "Connect your … account" (delegated: off to the provider's sign-in) or "Check application access"
 * (application: a token is asked for now and its roles checked), the guide link and, for application
 * access, "Grant admin consent".
 */
export function useConnect(base: ServerBase, server: ConnectableServer, refresh: () => void) {
  const [connecting, setConnecting] = useState(false);
  const [connectError, setConnectError] = useState<Problem | null>(null);
  const [roles, setRoles] = useState<string[] | null>(null);
  async function connect() {
    setConnecting(true);
    setConnectError(null);
    setRoles(null);
    try {
      const answer: ConnectAnswer = base === 'mail-servers' ? await api.connectMailServer(server.id) : await api.connectIncomingServer(server.id);
      if ('authorizeUrl' in answer) {
        window.location.assign(answer.authorizeUrl);
        return;
      }
      setRoles(answer.roles);
      refresh();
    } catch (err) {
      setConnectError(toFailure(err));
    }
    setConnecting(false);
  }
  return { connecting, connectError, setConnectError, roles, connect };
}

export function ConnectActions({
  base,
  server,
  method,
  connecting,
  onConnect,
  showConnect = true,
}: {
  base: ServerBase;
  server: ConnectableServer;
  method: AuthMethodChoice | undefined;
  connecting: boolean;
  onConnect: () => void;
  showConnect?: boolean;
}) {
  const provider = method?.oauth ?? null;
  const label = method ? connectButtonLabel(method, server.access) : null;
  if (!provider || !label) return null;
  return (
    <>
      {showConnect && <ConnectAccountButton label={label} tokenStatus={server.tokenStatus} connecting={connecting} onClick={onConnect} />}
      <Link className="guide-link" to={guidePath(provider.id, { server: server.id })}>
        How to connect {provider.accountName}
      </Link>
      {server.access === 'application' && provider.applicationAccess && <GrantAdminConsent base={base} id={server.id} />}
    </>
  );
}

/** "Grant admin consent": Microsoft's admin-consent page for this app and tenant. */
function GrantAdminConsent({ base, id }: { base: ServerBase; id: string }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Problem | null>(null);
  async function open() {
    setBusy(true);
    setError(null);
    try {
      window.location.assign((await api.adminConsentUrl(base, id)).url);
    } catch (err) {
      setError(toFailure(err));
      setBusy(false);
    }
  }
  return (
    <>
      <BusyButton busy={busy} onClick={open}>
        Grant admin consent
      </BusyButton>
      {error && <ErrorAlert problem={error} />}
    </>
  );
}

/**
 * Back from Microsoft's admin-consent page: what to click next — "Check application access" for
 * application access (no sign-in follows), the connect button otherwise.
 */
export function AdminConsentNotice({ method, access }: { method: AuthMethodChoice | undefined; access: 'delegated' | 'application' | undefined }) {
  const label = (method && connectButtonLabel(method, access)) ?? 'Connect';
  return <Notice>{`Admin consent granted. Now click ${label}.`}</Notice>;
}

/** After "Check application access": the roles the app token holds. */
export function RolesResult({ roles }: { roles: string[] | null }) {
  if (!roles) return null;
  return <Notice>{`Application access works: the token holds ${roles.length > 0 ? roles.join(', ') : 'no roles'}.`}</Notice>;
}

/**
 * A notice about a connection that works (never shown as the Last error). A rolled certificate's
 * notice stays until the admin says the old certificate is deleted in Azure.
 */
export function ServerNoticeAlert({ notice, guide, base, serverId, onChange }: { notice: ServerNotice | null | undefined; guide: string | null; base: ServerBase; serverId: string; onChange: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Problem | null>(null);
  if (!notice) return null;
  const step = guideStepOf(notice);
  async function dismiss() {
    setBusy(true);
    setError(null);
    try {
      await api.dismissRolledCertificate(base, serverId);
      onChange();
    } catch (e) {
      setError(toFailure(e));
    } finally {
      setBusy(false);
    }
  }
  return (
    <div className="alert alert-warning server-notice" role="status">
      <p className="alert-message">{notice.message}</p>
      {notice.fix && (
        <p className="alert-fix">
          <span className="alert-fix-label">How to fix: </span>
          {notice.fix}
        </p>
      )}
      {step !== null && guide !== null && <GuideStepLink step={step} guide={guideOf(notice) ?? guide} />}
      {notice.code === 'CERTIFICATE_ROLLED' && (
        <p>
          <BusyButton busy={busy} onClick={dismiss} small>
            I deleted it in Azure
          </BusyButton>
        </p>
      )}
      {error && <ErrorAlert problem={error} />}
    </div>
  );
}

const dateOnly = (iso: string) => new Date(iso).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });

/**
 * When the connection needs a person, if ever — not the one-hour access token, which renews itself.
 * From the token status, a short-lived grant's sign-in date, the certificate's or secret's expiry.
 */
export function renewalText(s: {
  tokenStatus: 'not_connected' | 'valid' | 'reconnect_needed';
  notice?: ServerNotice | null;
  clientCredential?: 'secret' | 'certificate';
  certificate?: { notAfter: string } | null;
  clientSecretExpiresAt?: string | null;
}): string {
  if (s.tokenStatus === 'not_connected') return 'Not connected yet';
  if (s.tokenStatus === 'reconnect_needed') return 'Needs sign-in now';
  if (s.notice?.signInBy) return `Needs sign-in by ${dateOnly(s.notice.signInBy)}`;
  if (s.clientCredential === 'certificate' && s.certificate) return `Renews itself until the certificate expires on ${dateOnly(s.certificate.notAfter)}`;
  if (s.clientCredential !== 'certificate' && s.clientSecretExpiresAt) return `Renews itself until the client secret expires on ${dateOnly(s.clientSecretExpiresAt)}`;
  return 'Renews itself';
}
