import { GuidePageHeader, GuideStep as Step } from './guide-intro.tsx';
import { useEffect, useState } from 'react';
import { api, asApiError, ApiError, type IncomingServer, type MailServer, type MailServerDefaults } from './api.ts';
import { CopyButton } from './copy-button.tsx';
import { ErrorAlert } from './error-alert.tsx';
import { RedirectCheck } from './redirect-check.tsx';
import { Link, useLocation } from './router.tsx';
import { paths, serverFormPath } from './routes.ts';
import { ServerChecklist } from './server-checklist.tsx';
import { useTitle } from './use-title.ts';

/** This guide's provider id (the API's authMethods[].oauth.id). */
const PROVIDER = 'gmail';


type Detail = { direction: 'outgoing'; server: MailServer } | { direction: 'incoming'; server: IncomingServer };

/** "How to connect Gmail": the Google Cloud console steps with this installation's redirect URL, and a server's checklist. */
export function GmailGuidePage() {
  useTitle('How to connect Gmail');
  const { query, hash } = useLocation();
  const [defaults, setDefaults] = useState<MailServerDefaults | null>(null);
  const [detail, setDetail] = useState<Detail | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const serverId = query.get('server');

  useEffect(() => {
    let cancelled = false;
    api.mailServerDefaults().then(
      (d) => !cancelled && setDefaults(d),
      (e: unknown) => !cancelled && setLoadError(asApiError(e)),
    );
    return () => {
      cancelled = true;
    };
  }, []);

  // A server opened from its form: its checklist beside the steps (outgoing or incoming, whichever it is).
  useEffect(() => {
    if (!serverId) return;
    let cancelled = false;
    api.getMailServer(serverId).then(
      (s) => !cancelled && setDetail({ direction: 'outgoing', server: s }),
      () =>
        api.getIncomingServer(serverId).then(
          (s) => !cancelled && setDetail({ direction: 'incoming', server: s }),
          () => undefined,
        ),
    );
    return () => {
      cancelled = true;
    };
  }, [serverId]);

  useEffect(() => {
    if (defaults && hash) document.getElementById(decodeURIComponent(hash.slice(1)))?.scrollIntoView();
  }, [defaults, hash]);

  const active = hash.startsWith('#step-') ? decodeURIComponent(hash.slice(1)) : '';
  const method = defaults?.authMethods.find((m) => m.oauth?.id === PROVIDER);
  const redirectUri = method?.oauth?.redirectUri ?? '';
  const smtp = method?.smtp;
  const imap = method?.imap;
  const mailbox = detail?.server.username || '<mailbox>';
  const connectLabel = method?.oauth?.connectLabel ?? 'Connect your Gmail account';

  return (
    <div className="outlook-guide">
      <GuidePageHeader title="How to connect Gmail" />
      <p className="guide-lead">
        Connecting a Gmail or Google Workspace mailbox takes an OAuth client in the Google Cloud console (steps 1–3), the
        Mailroom form (step 4) and one sign-in (step 5). Error messages in Mailroom name the step that fixes them.
      </p>
      {loadError && <ErrorAlert problem={loadError} />}

      {detail && (
        <section className="card guide-server" aria-labelledby="guide-checklist-heading">
          <h2 id="guide-checklist-heading">{`Checklist of “${detail.server.name}”`}</h2>
          <ServerChecklist items={detail.server.checklist} inPage labelledBy="guide-checklist-heading" guide={PROVIDER} />
          <p>
            <Link to={serverFormPath(detail.direction, detail.server.id)}>Open the server form</Link>
          </p>
        </section>
      )}

      <Step active={active} n={1} title="Create the OAuth client with this redirect URL">
        <p>
          In the <strong>Google Cloud console</strong> (console.cloud.google.com), pick or create a project for Mailroom, then open{' '}
          <strong>APIs &amp; Services › Credentials › Create credentials › OAuth client ID</strong>. If Google asks for the consent
          screen first, do step 2 and come back.
        </p>
        <p>
          Application type: <strong>Web application</strong>. Under <strong>Authorized redirect URIs</strong> click{' '}
          <strong>Add URI</strong> and paste this installation’s redirect URL. Google compares it character for character
          (redirect_uri_mismatch otherwise); a change can take a few minutes to apply.
        </p>
        <RedirectCheck redirectUri={redirectUri} />
        <div className="guide-value">
          <label htmlFor="gmail-guide-redirect-uri">Authorized redirect URI</label>
          <div className="input-with-button">
            <input id="gmail-guide-redirect-uri" type="text" readOnly value={redirectUri} onFocus={(e) => e.currentTarget.select()} />
            <CopyButton text={redirectUri} inputId="gmail-guide-redirect-uri" />
          </div>
        </div>
      </Step>

      <Step active={active} n={2} title="Set up the OAuth consent screen and its publishing status">
        <p>
          <strong>APIs &amp; Services › OAuth consent screen</strong> (Google Auth Platform): give the app a name and a support
          address. <strong>Audience</strong>: <em>Internal</em> for mailboxes of your own Google Workspace organisation (no
          review), <em>External</em> for other accounts (add them as test users while in Testing).
        </p>
        <p>
          <strong>Data access › Add or remove scopes</strong>: add <code>https://mail.google.com/</code> (SMTP and IMAP need this
          full mail scope), plus <code>openid</code> and <code>email</code>.
        </p>
        <p>
          <strong>Publishing status</strong>: an app left in <em>Testing</em> gets refresh tokens that Google ends after 7 days,
          after which mail is held until someone connects again; Mailroom warns when it sees such a token. Click{' '}
          <strong>Publish app</strong> (an Internal app needs no verification). A Workspace administrator may also have to
          allow the app under Security › API controls (admin_policy_enforced otherwise).
        </p>
      </Step>

      <Step active={active} n={3} title="Copy the Client ID and Client secret">
        <p>
          When the client is created, Google shows its <strong>Client ID</strong> (ending in{' '}
          <code>.apps.googleusercontent.com</code>) and <strong>Client secret</strong>. Paste both into the Mailroom form (step
          4). A new secret can be added later under Credentials › your client › Client secrets (invalid_client means one of
          them does not match).
        </p>
      </Step>

      <Step active={active} n={4} title="Fill in the mail server in Mailroom">
        <p>
          <Link to={paths.mailServerNew}>Add a mail server</Link>: Authenticate Using <strong>Gmail OAuth Authentication</strong>,
          Username = the Gmail address to send from ({mailbox}), Client ID and Client Secret from step 3. SMTP Server{' '}
          <code>{smtp?.host ?? 'smtp.gmail.com'}</code>, port <code>{smtp?.port ?? 587}</code> with STARTTLS (or 465 with
          SSL/TLS). With OAuth no App Password is needed. Gmail sends at most about 2,000 messages a day per Workspace user
          (500 for a free account).
        </p>
      </Step>

      <Step active={active} n={5} title="Connect the account">
        <p>
          Click <strong>Create</strong> (<strong>Save</strong> when the server exists already), then click <strong>{connectLabel}</strong> and sign in as {mailbox}. Google asks for consent every time (Mailroom
          asks for offline access and the consent screen, the only way Google hands out a refresh token). Back in Mailroom
          the status shows <strong>Token Valid</strong>. If it later shows <strong>Reconnect needed</strong> (access removed at
          myaccount.google.com/permissions, password changed, or a Testing app’s 7 days over), connect again: held mail then
          goes out.
        </p>
      </Step>

      <Step active={active} n={6} title="Test the connection, and incoming mail">
        <p>
          Click <strong>Test Connection</strong>: “Connection Test Successful!” means Gmail accepted the token. For incoming mail,
          switch IMAP on in Gmail (Settings › See all settings › Forwarding and POP/IMAP; Workspace admins can switch it off
          for everyone), then add an <Link to={paths.incomingMailServerNew}>incoming mail server</Link> with{' '}
          <code>{imap?.host ?? 'imap.gmail.com'}</code> port <code>{imap?.port ?? 993}</code> SSL/TLS and its own connection.
        </p>
      </Step>

      <Step active={active} n={7} title="When Gmail asks to wait">
        <p>
          <code>421 4.7.0</code> and <code>550 5.4.5</code> are Gmail’s rate and daily limits: Mailroom holds the mail and retries
          later by itself. Spread large mailings, or send them through another server with a FROM filter.
        </p>
      </Step>
    </div>
  );
}
