import { useState, type FormEvent } from 'react';
import { api, ApiError, type AuthMethodChoice, type MailServer, type MailServerInput } from './api.ts';
import { AdminConsentNotice, BusyButton, ConnectActions, OutcomeAlert, RolesResult, ServerNoticeAlert, toFailure, useConnect, useTest, type Outcome } from './connection-common.tsx';
import { ConnectionStatus } from './connection-status.tsx';
import { DisconnectButton } from './disconnect-button.tsx';
import { ErrorAlert } from './error-alert.tsx';
import { formatDateTime } from './format-date-time.ts';
import { Notice } from './notice.tsx';
import { Link } from './router.tsx';
import { emailPath } from './routes.ts';
import { Spinner } from './spinner.tsx';

interface ConnectionPanelProps {
  server: MailServer;
  /** The server's Authenticate Using as the API describes it (undefined while the list loads). */
  method: AuthMethodChoice | undefined;
  /** The `oauth` query parameter set by the OAuth callback redirect: 'connected' | 'admin_consent' | 'error' | null. */
  oauth: string | null;
  /** The form below has unsaved changes. */
  dirty: boolean;
  onServerChange: (server: MailServer) => void;
  /** "Allow this (shared mailbox)" saved allowAccountMismatch: the form's checkbox follows. */
  onSettingsSaved: (server: MailServer) => void;
}

const days = (n: number) => `${n} day${n === 1 ? '' : 's'}`;

/** Exchange refused SMTP AUTH (535 5.7.139): the tenant may keep it off, and Graph needs none. */
const smtpAuthOff = (o: Outcome | null) => o?.ok === false && /^SMTP_535_5\.7\.139/.test(o.code ?? '');

/** Token status of an existing mail server and the actions to connect, test and send a test email. */
export function ConnectionPanel({ server, method, oauth, dirty, onServerChange, onSettingsSaved }: ConnectionPanelProps) {
  // Token status, connect and disconnect only for OAuth methods; Username/Password and None just test.
  const provider = method?.oauth ?? null;
  const account = provider ? `${provider.accountName} account` : 'account';
  const connectLabel = provider?.connectLabel ?? 'Connect';
  const guide = provider?.id ?? null;
  const [disconnected, setDisconnected] = useState(false);
  const [allowing, setAllowing] = useState(false);
  const [allowed, setAllowed] = useState(false);
  const [sending, setSending] = useState(false);
  const [recipient, setRecipient] = useState('');
  const [recipientError, setRecipientError] = useState<string | null>(null);
  const [sendOutcome, setSendOutcome] = useState<Outcome | null>(null);
  const [sentId, setSentId] = useState<string | null>(null);

  function refresh() {
    api.getMailServer(server.id).then(onServerChange, () => undefined);
  }
  const { connecting, connectError, setConnectError, roles, connect } = useConnect('mail-servers', server, refresh);
  const { testing, testOutcome, setTestOutcome, test } = useTest(() => api.testMailServer(server.id), (r) => ({ ok: true, message: 'Connection Test Successful!', detail: r.message }), refresh);

  /** A setting saved from the panel (Graph instead of SMTP, shared mailbox): the form follows. */
  async function saveSetting(patch: Partial<MailServerInput>, busy: (b: boolean) => void, done: () => void) {
    busy(true);
    setConnectError(null);
    try {
      const updated = await api.updateMailServer(server.id, patch);
      done();
      onSettingsSaved(updated);
    } catch (err) {
      setConnectError(toFailure(err));
    } finally {
      busy(false);
    }
  }

  const [switching, setSwitching] = useState(false);
  const [switched, setSwitched] = useState(false);
  /** "Send with Microsoft Graph instead": Send Using becomes Graph; the admin then connects again with Graph permissions. */
  const switchToGraph = () => saveSetting({ sendUsing: 'graph' }, setSwitching, () => setSwitched(true));

  const graphOffer = (
    <div className="graph-offer">
      {switched ? (
        <p role="status">
          Send Using is now Microsoft Graph. Click <strong>Connect your Outlook account</strong> to sign in again with the Graph permissions, then Test Connection.
        </p>
      ) : (
        <>
          <p>
            If SMTP AUTH must stay switched off for your tenant, Mailroom can send through Microsoft Graph over HTTPS instead. In Azure › App registrations › your
            app › API permissions, add the Microsoft Graph delegated permissions <strong>Mail.Send</strong>, <strong>Mail.ReadWrite</strong> and{' '}
            <strong>User.Read</strong>, then:
          </p>
          <BusyButton busy={switching} onClick={switchToGraph}>
            Send with Microsoft Graph instead
          </BusyButton>
        </>
      )}
    </div>
  );

  const allowSharedMailbox = () => saveSetting({ allowAccountMismatch: true }, setAllowing, () => setAllowed(true));

  function clearResults() {
    setTestOutcome(null);
    setSendOutcome(null);
    setConnectError(null);
    setAllowed(false);
  }

  async function sendTest(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const to = recipient.trim();
    setSending(true);
    setSendOutcome(null);
    setSentId(null);
    setRecipientError(null);
    try {
      const r = await api.sendTestEmail(server.id, to);
      setSentId(r.outboxId ?? null);
      if (r.ok) {
        setSendOutcome({
          ok: true,
          message: `Test email sent to ${to}`,
          detail: r.messageId ? `Message ID: ${r.messageId}` : undefined,
        });
      } else {
        setSendOutcome({ ok: false, message: r.message, fix: r.fix, code: r.code, guideStep: r.guideStep, evidence: r.evidence });
      }
    } catch (err) {
      const fieldMessage = err instanceof ApiError ? err.fields.to : undefined;
      if (fieldMessage) setRecipientError(fieldMessage);
      else setSendOutcome(toFailure(err));
    } finally {
      setSending(false);
      refresh();
    }
  }

  const lastError = server.lastError;
  const showLastError = lastError && !testOutcome && !sendOutcome;
  // A shared mailbox: signing in with another account was allowed after this error.
  const mismatchAllowed = lastError?.code === 'ACCOUNT_MISMATCH' && server.allowAccountMismatch;
  const connected = server.tokenStatus !== 'not_connected';
  const secret = server.clientSecretExpiry;

  return (
    <section className="card connection-panel" aria-labelledby="connection-heading">
      <h2 id="connection-heading">Connection</h2>

      {oauth === 'connected' && !disconnected && <Notice>{`${account.charAt(0).toUpperCase()}${account.slice(1)} connected`}</Notice>}
      {oauth === 'admin_consent' && !disconnected && <AdminConsentNotice method={method} access={server.access} />}
      {disconnected && <Notice kind="info">Disconnected. Mailroom no longer holds tokens for this mailbox.</Notice>}
      {server.allowAccountMismatch && (allowed || (showLastError && mismatchAllowed)) && (
        <Notice kind="info">
          {`Sending as a shared mailbox is allowed: ${server.connectedAccount ?? 'another account'} may sign in for ` +
            `${server.username}. Click Test Connection to check that it has Send As rights.`}
        </Notice>
      )}
      {showLastError && lastError && !mismatchAllowed && (
        <ErrorAlert
          problem={lastError}
          title={
            oauth === 'error'
              ? `The ${account} could not be connected.`
              : `Last error${lastError.at ? ` (${formatDateTime(lastError.at)})` : ''}`
          }
          showCode
          guide={guide ?? false}
        >
          {lastError.code === 'ACCOUNT_MISMATCH' && (
            <div className="alert-actions">
              <BusyButton small busy={allowing} onClick={allowSharedMailbox}>
                Allow this (shared mailbox)
              </BusyButton>
              <span className="field-help">
                When {server.username} is a shared mailbox and the signed-in account has Send As rights on it.
              </span>
            </div>
          )}
        </ErrorAlert>
      )}
      {oauth === 'error' && !lastError && !disconnected && (
        <ErrorAlert
          problem={{
            message: `The ${account} could not be connected.`,
            fix: `Try again with “${connectLabel}”.`,
          }}
        />
      )}
      {connectError && <ErrorAlert problem={connectError} guide={guide ?? false} />}
      <RolesResult roles={roles} />
      <ServerNoticeAlert notice={server.notice} guide={guide} base="mail-servers" serverId={server.id} onChange={refresh} />

      <ConnectionStatus server={server} tokens={provider !== null} guide={guide}>
        {provider && (secret.state === 'expiring' || secret.state === 'expired') && secret.daysLeft !== null && (
          <div className="alert alert-warning">
            {secret.state === 'expired'
              ? `The client secret expired on ${server.clientSecretExpiresAt}: mail has stopped. ` +
                'Create a new client secret for the app and enter it below.'
              : `The client secret expires on ${server.clientSecretExpiresAt} (in ${days(secret.daysLeft)}). ` +
                'Create a new client secret for the app before then and enter it below.'}
          </div>
        )}
      </ConnectionStatus>

      {dirty && <p className="hint">You have unsaved changes below: save them before connecting or testing.</p>}

      <div className="button-row">
        <ConnectActions base="mail-servers" server={server} method={method} connecting={connecting} onConnect={connect} />
        <BusyButton busy={testing} onClick={test}>
          Test Connection
        </BusyButton>
        {provider && connected && (
          <DisconnectButton
            disconnect={() => api.disconnectMailServer(server.id)}
            onDisconnected={(s) => {
              clearResults();
              setDisconnected(true);
              onServerChange(s);
            }}
            onError={setConnectError}
          />
        )}
      </div>
      {server.adminConsentUrl && (
        <p className="admin-consent">
          <a href={server.adminConsentUrl} aria-describedby="admin-consent-help">
            Admin consent link
          </a>
          <span id="admin-consent-help" className="field-help">
            For tenants where users may not consent: a tenant administrator opens this once.
          </span>
        </p>
      )}
      <div className="action-result" aria-live="polite">
        {testing && <p className="muted">Testing the connection…</p>}
        {testOutcome && (
          <OutcomeAlert guide={guide} outcome={testOutcome}>
            {smtpAuthOff(testOutcome) && method?.graph && (server.sendUsing !== 'graph' || switched) && graphOffer}
          </OutcomeAlert>
        )}
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
            className="input-placeholder-muted"
            placeholder="name@example.com"
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
          {sendOutcome && (
            <OutcomeAlert guide={guide} outcome={sendOutcome}>
              {smtpAuthOff(sendOutcome) && method?.graph && (server.sendUsing !== 'graph' || switched) && graphOffer}
            </OutcomeAlert>
          )}
          {sendOutcome && sentId && (
            <p className="hint">
              <Link to={emailPath(sentId)}>See it under Emails</Link>
            </p>
          )}
        </div>
      </form>
    </section>
  );
}
