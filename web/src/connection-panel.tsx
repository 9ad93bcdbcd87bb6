import { useState, type FormEvent } from 'react';
import { api, ApiError, type MailServer, type Problem } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { EvidenceDetails } from './evidence-details.tsx';
import { formatDateTime } from './format-date-time.ts';
import { Notice } from './notice.tsx';
import { Spinner } from './spinner.tsx';
import { TokenStatusBadge } from './token-status-badge.tsx';

interface ConnectionPanelProps {
  server: MailServer;
  /** The `oauth` query parameter set by the OAuth callback redirect: 'connected' | 'error' | null. */
  oauth: string | null;
  /** The form below has unsaved changes. */
  dirty: boolean;
  onServerChange: (server: MailServer) => void;
}

type Outcome = { ok: true; message: string; detail?: string } | ({ ok: false } & Problem);

function toFailure(err: unknown): Outcome {
  if (err instanceof ApiError) return { ok: false, message: err.message, fix: err.fix, evidence: err.evidence };
  return { ok: false, message: String(err) };
}

function daysUntil(ymd: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(ymd);
  if (!m) return null;
  const target = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  const now = new Date();
  const today = Date.UTC(now.getFullYear(), now.getMonth(), now.getDate());
  return Math.round((target - today) / 86_400_000);
}

function Failure({ outcome }: { outcome: Problem }) {
  return (
    <div className="alert alert-error" role="alert">
      <p className="alert-message">{outcome.message}</p>
      {outcome.fix && (
        <p className="alert-fix">
          <span className="alert-fix-label">How to fix: </span>
          {outcome.fix}
        </p>
      )}
      <EvidenceDetails evidence={outcome.evidence} />
    </div>
  );
}

/** Token status of an existing mail server and the actions to connect, test and send a test email. */
export function ConnectionPanel({ server, oauth, dirty, onServerChange }: ConnectionPanelProps) {
  const [connecting, setConnecting] = useState(false);
  const [connectError, setConnectError] = useState<Problem | null>(null);
  const [testing, setTesting] = useState(false);
  const [testOutcome, setTestOutcome] = useState<Outcome | null>(null);
  const [sending, setSending] = useState(false);
  const [recipient, setRecipient] = useState('');
  const [recipientError, setRecipientError] = useState<string | null>(null);
  const [sendOutcome, setSendOutcome] = useState<Outcome | null>(null);

  function refresh() {
    api.getMailServer(server.id).then(onServerChange, () => undefined);
  }

  async function connect() {
    setConnecting(true);
    setConnectError(null);
    try {
      const { authorizeUrl } = await api.connectMailServer(server.id);
      window.location.assign(authorizeUrl);
    } catch (err) {
      const f = toFailure(err);
      setConnectError(f.ok ? null : f);
      setConnecting(false);
    }
  }

  async function test() {
    setTesting(true);
    setTestOutcome(null);
    try {
      const r = await api.testMailServer(server.id);
      setTestOutcome(
        r.ok
          ? { ok: true, message: 'Connection Test Successful!', detail: r.message }
          : { ok: false, message: r.message, fix: r.fix, evidence: r.evidence },
      );
    } catch (err) {
      setTestOutcome(toFailure(err));
    } finally {
      setTesting(false);
      refresh();
    }
  }

  async function sendTest(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const to = recipient.trim();
    setSending(true);
    setSendOutcome(null);
    setRecipientError(null);
    try {
      const r = await api.sendTestEmail(server.id, to);
      if (r.ok) {
        setSendOutcome({
          ok: true,
          message: `Test email sent to ${to}`,
          detail: r.messageId ? `Message ID: ${r.messageId}` : undefined,
        });
      } else setSendOutcome({ ok: false, message: r.message, fix: r.fix, evidence: r.evidence });
    } catch (err) {
      const fieldMessage = err instanceof ApiError ? err.fields.to : undefined;
      if (fieldMessage) setRecipientError(fieldMessage);
      else setSendOutcome(toFailure(err));
    } finally {
      setSending(false);
      refresh();
    }
  }

  const showLastError = server.lastError && !testOutcome && !sendOutcome;
  const secretDays = server.clientSecretExpiresAt ? daysUntil(server.clientSecretExpiresAt) : null;

  return (
    <section className="card connection-panel" aria-labelledby="connection-heading">
      <h2 id="connection-heading">Connection</h2>

      {oauth === 'connected' && <Notice>Outlook account connected</Notice>}
      {showLastError && server.lastError && (
        <ErrorAlert
          problem={server.lastError}
          title={
            oauth === 'error'
              ? 'The Outlook account could not be connected.'
              : `Last error${server.lastError.at ? ` (${formatDateTime(server.lastError.at)})` : ''}`
          }
          showCode
        />
      )}
      {oauth === 'error' && !server.lastError && (
        <ErrorAlert
          problem={{
            message: 'The Outlook account could not be connected.',
            fix: 'Try again with “Connect your Outlook account”.',
          }}
        />
      )}
      {connectError && <ErrorAlert problem={connectError} />}

      <div className="connection-status">
        <p className="status-line">
          <span className="status-label">Status</span>
          <TokenStatusBadge status={server.tokenStatus} />
        </p>
        {server.tokenStatusReason && <p className="status-reason">{server.tokenStatusReason}</p>}
        <dl className="facts">
          <div>
            <dt>Connected account</dt>
            <dd>{server.connectedAccount ?? '—'}</dd>
          </div>
          <div>
            <dt>Token expires</dt>
            <dd>{formatDateTime(server.tokenExpiresAt)}</dd>
          </div>
        </dl>
        {secretDays !== null && secretDays <= 30 && (
          <div className="alert alert-warning">
            {secretDays < 0
              ? `The client secret expired on ${server.clientSecretExpiresAt}. Create a new secret in Microsoft Entra and enter it below.`
              : `The client secret expires on ${server.clientSecretExpiresAt} (in ${secretDays} day${secretDays === 1 ? '' : 's'}).`}
          </div>
        )}
      </div>

      {dirty && <p className="hint">You have unsaved changes below: save them before connecting or testing.</p>}

      <div className="button-row">
        <button
          type="button"
          className={server.tokenStatus === 'valid' ? 'btn btn-secondary' : 'btn btn-primary'}
          onClick={connect}
          disabled={connecting}
          aria-busy={connecting || undefined}
        >
          {connecting && <Spinner />}
          Connect your Outlook account
        </button>
        <button type="button" className="btn btn-secondary" onClick={test} disabled={testing} aria-busy={testing || undefined}>
          {testing && <Spinner />}
          Test Connection
        </button>
      </div>
      <div className="action-result" aria-live="polite">
        {testing && <p className="muted">Testing the connection…</p>}
        {testOutcome?.ok === true && (
          <div className="alert alert-success" role="status">
            <p className="alert-message">{testOutcome.message}</p>
            {testOutcome.detail && testOutcome.detail !== testOutcome.message && (
              <p className="alert-detail">{testOutcome.detail}</p>
            )}
          </div>
        )}
        {testOutcome?.ok === false && <Failure outcome={testOutcome} />}
      </div>

      <form className="send-test" onSubmit={sendTest} noValidate>
        <h3>Send a test email</h3>
        <div className="send-test-row">
          <label htmlFor="send-test-recipient">Recipient</label>
          <input
            id="send-test-recipient"
            name="to"
            type="email"
            autoComplete="off"
            placeholder={server.username || 'someone@example.com'}
            value={recipient}
            onChange={(e) => setRecipient(e.target.value)}
            aria-invalid={recipientError ? true : undefined}
            aria-describedby={recipientError ? 'send-test-recipient-error' : undefined}
          />
          <button type="submit" className="btn btn-secondary" disabled={sending} aria-busy={sending || undefined}>
            {sending && <Spinner />}
            Send test email
          </button>
        </div>
        {recipientError && (
          <p id="send-test-recipient-error" className="field-error">
            {recipientError}
          </p>
        )}
        <div className="action-result" aria-live="polite">
          {sendOutcome?.ok === true && (
            <div className="alert alert-success" role="status">
              <p className="alert-message">{sendOutcome.message}</p>
              {sendOutcome.detail && <p className="alert-detail">{sendOutcome.detail}</p>}
            </div>
          )}
          {sendOutcome?.ok === false && <Failure outcome={sendOutcome} />}
        </div>
      </form>
    </section>
  );
}
