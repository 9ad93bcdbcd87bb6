import { GuidePageHeader, GuideStep as Step } from './guide-intro.tsx';
import { useEffect, useRef, useState } from 'react';
import {
  api,
  asApiError,
  ApiError,
  type ApplicationGuideStep,
  type IncomingServer,
  type MailServer,
  type MailServerDefaults,
  type ServerHealth,
} from './api.ts';
import { CopyButton } from './copy-button.tsx';
import { ErrorAlert } from './error-alert.tsx';
import { guideNetworkHosts } from './guide-network-hosts.ts';
import { RedirectCheck } from './redirect-check.tsx';
import { rememberedGuideServer, rememberGuideServer } from './remember-guide-server.ts';
import { Link, navigate, useLocation } from './router.tsx';
import { outlookGuidePath, paths, serverFormPath } from './routes.ts';
import { secretExpiryText } from './secret-expiry-text.ts';
import { ServerChecklist } from './server-checklist.tsx';
import { useTitle } from './use-title.ts';

/** How often the checklist of the chosen server is read again (the admin works in Azure meanwhile). */
const REFRESH_MS = 15_000;

const SIGN_IN_PERMISSIONS: { name: string; why: string }[] = [
  { name: 'offline_access', why: 'stay connected (refresh tokens)' },
  { name: 'openid', why: 'sign-in' },
  { name: 'profile', why: 'which account signed in' },
  { name: 'email', why: 'the address of that account' },
];

/** The delegated permissions the app registration needs (Microsoft Graph), for SMTP/IMAP or for Graph. */
const PERMISSIONS: Record<'smtp' | 'graph', { name: string; why: string }[]> = {
  smtp: [{ name: 'SMTP.Send', why: 'send mail over SMTP AUTH' }, { name: 'IMAP.AccessAsUser.All', why: 'read the mailbox over IMAP' }, ...SIGN_IN_PERMISSIONS],
  graph: [
    { name: 'Mail.Send', why: 'send mail through Microsoft Graph' },
    { name: 'Mail.ReadWrite', why: 'messages over 4 MB, and reading the mailbox' },
    { name: 'User.Read', why: 'Test Connection looks the mailbox up' },
    ...SIGN_IN_PERMISSIONS,
  ],
};

/** Frequent failures and the step that fixes each; the full explanation is in the error itself. */
const KNOWN_PROBLEMS: { symptom: string; step: number }[] = [
  { symptom: 'AADSTS50011: the redirect URI does not match', step: 1 },
  { symptom: 'AADSTS65001 or AADSTS90094: consent missing, or only an administrator may consent', step: 2 },
  { symptom: 'AADSTS7000215: invalid client secret (often the Secret ID pasted instead of its Value)', step: 3 },
  { symptom: 'AADSTS7000222: the client secret has expired', step: 3 },
  { symptom: 'AADSTS50194 or AADSTS700016: single-tenant app used with Tenant "common", or wrong Client ID', step: 4 },
  { symptom: 'Signed in with another account than Username', step: 5 },
  { symptom: 'Reconnect needed: the grant was revoked or unused for 90 days', step: 5 },
  { symptom: '535 5.7.139 Authentication unsuccessful (SMTP AUTH disabled for the mailbox or tenant)', step: 6 },
  { symptom: '554 5.2.252 SendAsDenied: no Send As rights for the From address', step: 6 },
  { symptom: 'Connection timed out, or certificate not trusted', step: 7 },
];

type Detail = { direction: 'outgoing'; server: MailServer } | { direction: 'incoming'; server: IncomingServer };


/** "How to connect Outlook": the Azure steps 1–7 with this installation's values and a server's live checklist. */
export function OutlookGuidePage() {
  useTitle('How to connect Outlook');
  const { query, hash } = useLocation();
  const [defaults, setDefaults] = useState<MailServerDefaults | null>(null);
  const [servers, setServers] = useState<ServerHealth[] | null>(null);
  const [detail, setDetail] = useState<Detail | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [detailError, setDetailError] = useState<ApiError | null>(null);

  useEffect(() => {
    let cancelled = false;
    Promise.all([api.mailServerDefaults(), api.serverHealth()]).then(
      ([d, h]) => {
        if (cancelled) return;
        setDefaults(d);
        setServers(h.items);
      },
      (e: unknown) => !cancelled && setLoadError(asApiError(e)),
    );
    return () => {
      cancelled = true;
    };
  }, []);

  const requested = query.get('server') ?? rememberedGuideServer();
  const selected = servers ? (servers.find((s) => s.id === requested) ?? servers[0] ?? null) : null;
  const selectedId = selected?.id ?? null;
  const selectedDirection = selected?.direction ?? null;

  // The chosen server in full (tenant, Client ID, hosts) and its live checklist, read again now and then.
  useEffect(() => {
    if (!selectedId || !selectedDirection) return;
    let stopped = false;
    let timer = 0;
    const load = async () => {
      try {
        const d: Detail =
          selectedDirection === 'incoming'
            ? { direction: 'incoming', server: await api.getIncomingServer(selectedId) }
            : { direction: 'outgoing', server: await api.getMailServer(selectedId) };
        if (stopped) return;
        setDetail(d);
        setDetailError(null);
      } catch (e) {
        if (!stopped) setDetailError(asApiError(e));
      }
    };
    const tick = async () => {
      if (!document.hidden) await load();
      if (!stopped) timer = window.setTimeout(tick, REFRESH_MS);
    };
    const onFocus = () => void load();
    setDetail((d) => (d && d.server.id === selectedId ? d : null));
    void load();
    timer = window.setTimeout(tick, REFRESH_MS);
    window.addEventListener('focus', onFocus);
    return () => {
      stopped = true;
      window.clearTimeout(timer);
      window.removeEventListener('focus', onFocus);
    };
  }, [selectedId, selectedDirection]);

  // Opened at #step-N: scroll there once the page has its final layout.
  const ready = servers !== null && defaults !== null && (selected === null || detail !== null || detailError !== null);
  const scrolledTo = useRef<string | null>(null);
  useEffect(() => {
    if (!ready || !hash || scrolledTo.current === hash) return;
    scrolledTo.current = hash;
    document.getElementById(decodeURIComponent(hash.slice(1)))?.scrollIntoView();
  }, [ready, hash]);

  // The step the page was opened at (or jumped to), highlighted.
  const active = hash.startsWith('#step-') ? decodeURIComponent(hash.slice(1)) : '';

  function choose(id: string) {
    rememberGuideServer(id);
    navigate(outlookGuidePath(id), { replace: true });
  }

  const current = detail && selected && detail.server.id === selected.id ? detail : null;
  const outgoing = current?.direction === 'outgoing' ? current.server : null;
  const incoming = current?.direction === 'incoming' ? current.server : null;
  const redirectUri = defaults?.redirectUri ?? '';
  const mailbox = selected?.username || '<mailbox>';
  const domain = selected?.username.includes('@') ? selected.username.split('@').pop() : 'contoso.com';
  const tenant = current?.server.tenant ?? defaults?.tenant ?? 'common';
  const broadTenant = ['common', 'organizations', 'consumers'].includes(tenant.toLowerCase());
  const clientId = current?.server.clientId || null;
  const isIncoming = selected?.direction === 'incoming';
  const networkHosts = guideNetworkHosts({
    direction: isIncoming ? 'incoming' : 'outgoing',
    authorityHost: defaults?.microsoftAuthorityHost ?? 'https://login.microsoftonline.com',
    graphHost: defaults?.microsoftGraphHost ?? 'https://graph.microsoft.com',
    smtpHost: outgoing?.smtpHost,
    smtpPort: outgoing?.smtpPort,
    sendUsing: outgoing?.sendUsing,
    imapHost: incoming?.imapHost,
    imapPort: incoming?.imapPort,
    serverType: incoming?.serverType,
  });
  const formPath = selected ? serverFormPath(selected.direction, selected.id) : null;
  const viaGraph = outgoing?.sendUsing === 'graph' || incoming?.serverType === 'graph';
  const sharedFrom = incoming?.tokenSourceId ? incoming : null;
  const testButton = isIncoming ? 'Test & Confirm' : 'Test Connection';
  const expiry = outgoing ? secretExpiryText(outgoing.clientSecretExpiry) : null;
  const outgoingServers = servers?.filter((s) => s.direction === 'outgoing') ?? [];
  const incomingServers = servers?.filter((s) => s.direction === 'incoming') ?? [];

  return (
    <div className="outlook-guide">
      <GuidePageHeader title="How to connect Outlook" />
      <p className="guide-lead">
        Connecting a Microsoft 365 mailbox takes an app registration in Azure (steps 1–3), the Mailroom form (step 4) and
        one sign-in (step 5). Error messages in Mailroom name the step that fixes them.
      </p>

      {loadError && <ErrorAlert problem={loadError} />}

      <section className="card guide-server" aria-labelledby="guide-checklist-heading">
        <h2 id="guide-checklist-heading">Checklist</h2>
        {!servers && !loadError && <p className="loading">Loading…</p>}
        {servers && servers.length === 0 && (
          <p className="muted">
            No mail servers yet. <Link to={paths.mailServerNew}>Add a mail server</Link>, then come back here to follow its
            progress.
          </p>
        )}
        {servers && selected && (
          <>
            <div className="guide-picker">
              <label htmlFor="guide-server">Mail Server</label>
              <select id="guide-server" value={selected.id} onChange={(e) => choose(e.target.value)}>
                <ServerGroup label="Outgoing (SMTP)" servers={outgoingServers} unnamed="(no description)" />
                <ServerGroup label="Incoming (IMAP)" servers={incomingServers} unnamed="(no name)" />
              </select>
              {formPath && <Link to={formPath}>Open the server form</Link>}
            </div>
            {detailError && <ErrorAlert problem={detailError} />}
            <ServerChecklist items={current?.server.checklist ?? selected.checklist} inPage labelledBy="guide-checklist-heading" />
          </>
        )}
      </section>

      {current?.server.access === 'application' && (
        <ApplicationAccessSteps
          base={current.direction === 'incoming' ? 'incoming-servers' : 'mail-servers'}
          id={current.server.id}
          name={current.server.name}
        />
      )}

      <Step active={active} n={1} title="Register the app">
        <p>
          In the <strong>Azure portal › Microsoft Entra ID › App registrations</strong>, click <strong>New registration</strong>.
          Any name will do, e.g. “Mailroom”. Under supported account types, <em>this organizational directory only</em>{' '}
          (single tenant) is fine: then Tenant must be your tenant ID or domain (step 4).
        </p>
        <p>
          Under <strong>Redirect URI</strong> choose the platform <strong>Web</strong> and paste this installation’s redirect
          URL. Microsoft compares scheme, host, port and path character for character. For an existing app, add it under{' '}
          <strong>Authentication › Add a platform › Web</strong> (or Add URI).
        </p>
        <RedirectCheck redirectUri={redirectUri} />
        <div className="guide-value">
          <label htmlFor="guide-redirect-uri">Redirect URI</label>
          <div className="input-with-button">
            <input
              id="guide-redirect-uri"
              type="text"
              readOnly
              value={redirectUri}
              onFocus={(e) => e.currentTarget.select()}
            />
            <CopyButton text={redirectUri} inputId="guide-redirect-uri" />
          </div>
        </div>
      </Step>

      <Step active={active} n={2} title="Add the API permissions">
        <p>
          In the app: <strong>API permissions › Add a permission › Microsoft Graph › Delegated permissions</strong>. Add
          these {viaGraph ? 'seven' : 'six'}
          {viaGraph ? ' (this server uses Microsoft Graph: SMTP AUTH can stay switched off)' : ''}:
        </p>
        <ul className="permission-list">
          {PERMISSIONS[viaGraph ? 'graph' : 'smtp'].map((p) => (
            <li key={p.name}>
              <code className="mono">{p.name}</code> <span className="muted">— {p.why}</span>
            </li>
          ))}
        </ul>
        <p>
          If users of your tenant may not consent to apps themselves, an administrator clicks{' '}
          <strong>Grant admin consent</strong> on that page
          {outgoing?.adminConsentUrl ? (
            <>
              , or opens the <a href={outgoing.adminConsentUrl}>Admin consent link</a> of “{outgoing.name}” once
            </>
          ) : null}
          . If the app requires assignment, add the mailbox user under{' '}
          <strong>Enterprise applications › the app › Users and groups</strong>.
        </p>
      </Step>

      <Step active={active} n={3} title="Create a client secret">
        <p>
          <strong>Certificates &amp; secrets › Client secrets › New client secret</strong>. Copy the secret’s{' '}
          <strong>Value</strong> right away (Azure shows it once), not the <em>Secret ID</em> next to it.
        </p>
        <p>
          Note the <strong>Expires</strong> date and enter it as Client Secret Expiration: Mailroom warns 30, 7 and 1 days
          ahead. When the secret expires, every mailbox using this app stops sending until a new secret is entered.
        </p>
        {outgoing && (
          <p className="guide-current">
            {expiry
              ? `The secret saved for “${outgoing.name}”: ${expiry.toLowerCase()}.`
              : `No expiry date saved for “${outgoing.name}” yet.`}
          </p>
        )}
      </Step>

      <Step active={active} n={4} title="Fill in the Mailroom form">
        {sharedFrom ? (
          <p>
            “{sharedFrom.name}” reuses the connection of the outgoing mail server{' '}
            <Link to={serverFormPath('outgoing', sharedFrom.tokenSourceId ?? '')}>
              {sharedFrom.tokenSourceName ?? 'it shares'}
            </Link>
            : no Client ID, secret or tenant needed here.
          </p>
        ) : (
          <dl className="facts guide-facts">
            <div>
              <dt>Client ID</dt>
              <dd>
                The app’s <em>Application (client) ID</em> from its Overview page
                {current && (
                  <>
                    {' '}
                    (now: {clientId ? <code className="mono">{clientId}</code> : 'not set'})
                  </>
                )}
                .
              </dd>
            </div>
            <div>
              <dt>Client Secret</dt>
              <dd>The Value from step 3.</dd>
            </div>
            <div>
              <dt>Tenant</dt>
              <dd>
                Now <code className="mono">{tenant}</code>
                {selected ? ` on “${selected.name}”` : ''}.{' '}
                {broadTenant ? (
                  <>
                    Fine for a multi-tenant app; for a single-tenant app enter your tenant ID (Directory (tenant) ID on the
                    Overview page) or your domain, e.g. <code className="mono">{domain}</code>.
                  </>
                ) : (
                  <>
                    Right for a single-tenant app. A multi-tenant app may use <code className="mono">common</code>.
                  </>
                )}
              </dd>
            </div>
          </dl>
        )}
        {isIncoming ? (
          <p>
            Keep Server <code className="mono">{incoming?.imapHost ?? 'outlook.office365.com'}</code>, Port{' '}
            <code className="mono">{incoming?.imapPort ?? 993}</code> with SSL/TLS. Click <strong>Create</strong> (<strong>Save</strong> when the server exists already).
          </p>
        ) : (
          <p>
            Keep SMTP Server <code className="mono">{outgoing?.smtpHost ?? 'smtp.office365.com'}</code>, SMTP Port{' '}
            <code className="mono">{outgoing?.smtpPort ?? 587}</code> and Connection Security STARTTLS. Click <strong>Create</strong> (<strong>Save</strong> when the server exists already).
          </p>
        )}
        {formPath && selected && (
          <p>
            <Link to={formPath}>{`Open “${selected.name || selected.username}”`}</Link>
          </p>
        )}
      </Step>

      <Step active={active} n={5} title="Connect and consent">
        <p>
          On the server form click <strong>Connect your Outlook account</strong>, sign in as{' '}
          <code className="mono">{mailbox}</code> and accept the permission request. Back in Mailroom the status shows the
          token as valid.
          {current?.server.connectedAccount && ` Connected now: ${current.server.connectedAccount}.`}
        </p>
        {!isIncoming && (
          <p>
            Sending from a shared mailbox? Sign in with an account that has Send As rights on it and tick{' '}
            <strong>Send as a shared mailbox</strong> on the form.
          </p>
        )}
      </Step>

      <Step active={active} n={6} title={viaGraph ? 'Nothing to allow for Microsoft Graph' : isIncoming ? 'Allow IMAP and SMTP AUTH for the mailbox' : 'Allow SMTP AUTH for the mailbox'}>
        {viaGraph ? (
          <p>
            This server uses Microsoft Graph over HTTPS: SMTP AUTH and IMAP may stay switched off for the mailbox and the tenant. The mailbox needs an
            Exchange Online licence. Click <strong>{testButton}</strong> on the server form: it fetches a Graph token, looks the mailbox up and checks the
            permission.
          </p>
        ) : (
        <>
        <p>
          Exchange Online wants <em>Authenticated SMTP</em> enabled for the mailbox, even with OAuth:{' '}
          <strong>Microsoft 365 admin center › Users › Active users › {mailbox} › Mail › Manage email apps</strong>
          {isIncoming ? ', tick Authenticated SMTP and IMAP' : ', tick Authenticated SMTP'}. Or in Exchange Online
          PowerShell:
        </p>
        <pre className="code-example guide-code">
          {`Set-CASMailbox -Identity ${mailbox} -SmtpClientAuthenticationDisabled $false`}
          {isIncoming ? `\nSet-CASMailbox -Identity ${mailbox} -ImapEnabled $true` : ''}
        </pre>
        <p>
          The change can take a while to apply. Then click <strong>{testButton}</strong> on the server form: it logs in
          without sending anything and shows the server’s exact answer. Security defaults in Microsoft Entra block SMTP AUTH
          for the whole tenant. If SMTP AUTH must stay off, set <strong>Send Using</strong> to <strong>Microsoft Graph</strong> instead.
        </p>
        </>
        )}
      </Step>

      <Step active={active} n={7} title="Check the network">
        <p>
          The Mailroom server (not your browser) must reach{' '}
          {networkHosts.map((h, i) => (
            <span key={h}>
              {i > 0 && ' and '}
              <code className="mono">{h}</code>
            </span>
          ))}
          . A proxy or antivirus that inspects TLS must let these hosts through unchanged; a private certificate authority is
          trusted with <code className="mono">NODE_EXTRA_CA_CERTS</code>.
        </p>
      </Step>

      <details className="card known-problems">
        <summary>Known problems</summary>
        <ul>
          {KNOWN_PROBLEMS.map((p) => (
            <li key={p.symptom}>
              <span>{p.symptom}</span> <a href={`#step-${p.step}`}>{`Step ${p.step}`}</a>
            </li>
          ))}
        </ul>
      </details>
    </div>
  );
}

/** One direction's servers in the guide's server picker. */
function ServerGroup({ label, servers, unnamed }: { label: string; servers: Array<{ id: string; name: string; username: string }>; unnamed: string }) {
  if (servers.length === 0) return null;
  return (
    <optgroup label={label}>
      {servers.map((s) => (
        <option key={s.id} value={s.id}>
          {`${s.name || unnamed} (${s.username})`}
        </option>
      ))}
    </optgroup>
  );
}

/**
 * Access: Application — no user sign-in: the steps for this server with its app, tenant, mailbox and
 * PowerShell commands filled in by Mailroom (the same values its error explanations use).
 */
function ApplicationAccessSteps({ base, id, name }: { base: 'mail-servers' | 'incoming-servers'; id: string; name: string }) {
  const [steps, setSteps] = useState<ApplicationGuideStep[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    let cancelled = false;
    setSteps(null);
    api.applicationGuide(base, id).then(
      (r) => !cancelled && setSteps(r.steps),
      (e: unknown) => !cancelled && setError(asApiError(e)),
    );
    return () => {
      cancelled = true;
    };
  }, [base, id]);
  return (
    <section className="card guide-application" aria-labelledby="guide-application-heading">
      <h2 id="guide-application-heading">Application access</h2>
      <p>
        “{name}” uses <strong>Application — no user sign-in</strong>: the app acts for itself, so nobody signs in and no
        refresh token can expire. It can reach every mailbox the tenant lets it: scope it to the mailboxes Mailroom serves.
      </p>
      {error && <ErrorAlert problem={error} />}
      {!steps && !error && <p className="loading">Loading…</p>}
      {steps && (
        <ol className="guide-application-steps">
          {steps.map((step) => (
            <li key={step.title}>
              <strong>{step.title}</strong>
              <p>{step.text}</p>
              {step.command && <pre className="mono guide-command">{step.command}</pre>}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
