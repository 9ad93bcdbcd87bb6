import { useEffect, useState, type ReactNode } from 'react';
import {
  api,
  type AfterFetch,
  type AuthType,
  type ImapSecurity,
  type IncomingServer,
  type IncomingServerDefaults,
  type IncomingServerInput,
  type ReusableConnection,
  type ServerType,
} from './api.ts';
import { methodOf, useAuthMethods } from './auth-methods.ts';
import { ErrorAlert } from './error-alert.tsx';
import { ErrorSummary } from './error-summary.tsx';
import { fieldA11y } from './field-a11y.ts';
import { FormField } from './form-field.tsx';
import { FormPageLoadState } from './form-page-load-state.tsx';
import { FormPageHeader } from './form-page-header.tsx';
import { IncomingConnectionPanel } from './incoming-connection-panel.tsx';
import { Notice } from './notice.tsx';
import { OAuthCredentialsFields } from './oauth-credentials-fields.tsx';
import { GuideIntro } from './guide-intro.tsx';
import { PasswordField } from './password-field.tsx';
import { Link, useFlashNotice, useLocation } from './router.tsx';
import { incomingMailServerPath, mailServerPath, paths } from './routes.ts';
import { Spinner } from './spinner.tsx';
import { toNullable, toNumber, useServerForm } from './use-server-form.ts';
import { useTitle } from './use-title.ts';

/** Pause after typing a Username before asking for an outgoing connection to reuse. */
const REUSE_LOOKUP_DELAY_MS = 400;

type FieldName =
  | 'name'
  | 'serverType'
  | 'authType'
  | 'imapHost'
  | 'imapPort'
  | 'imapSecurity'
  | 'username'
  | 'folder'
  | 'afterFetch'
  | 'moveToFolder'
  | 'intervalMinutes'
  | 'active'
  | 'clientId'
  | 'clientSecret'
  | 'password'
  | 'tenant';

interface FormValues {
  name: string;
  serverType: string;
  authType: string;
  imapHost: string;
  imapPort: string;
  imapSecurity: ImapSecurity;
  username: string;
  folder: string;
  afterFetch: AfterFetch;
  moveToFolder: string;
  intervalMinutes: string;
  active: boolean;
  clientId: string;
  clientSecret: string;
  password: string;
  tenant: string;
  /** The outgoing mail server whose OAuth connection is reused; null: this server's own credentials. */
  tokenSourceId: string | null;
}

type TextField = {
  [K in FieldName]: FormValues[K] extends string ? K : never;
}[FieldName];

// Label order is the order of the error summary.
const LABELS: Record<FieldName | 'redirectUri' | 'tokenSourceId', string> = {
  name: 'Name',
  authType: 'Authenticate Using',
  username: 'Username',
  tokenSourceId: 'Connection',
  redirectUri: 'OAuth2 Redirect Url',
  clientId: 'Client ID',
  clientSecret: 'Client Secret',
  password: 'Password',
  tenant: 'Tenant',
  serverType: 'Server Type',
  imapHost: 'Server',
  imapPort: 'Port',
  imapSecurity: 'SSL/TLS',
  folder: 'Folder',
  afterFetch: 'After fetching',
  moveToFolder: 'Move to Folder',
  intervalMinutes: 'Interval',
  active: 'Active',
};

const HELP: Partial<Record<FieldName, string>> = {
  username: 'The mailbox to read, e.g. support@contoso.com; for Username/Password the login name the server expects.',
  imapHost: 'e.g. outlook.office365.com or imap.gmail.com.',
  imapPort: 'Usually 993 with SSL/TLS.',
  imapSecurity: 'Unchecked: STARTTLS (usually port 143).',
  folder: 'The mailbox folder to read, usually INBOX.',
  afterFetch: 'What happens to a message in the mailbox once Mailroom has it.',
  moveToFolder: 'An existing folder of the mailbox, e.g. Archive or Processed.',
  intervalMinutes: 'How often to check when the server cannot push (IDLE)',
  active: 'Inactive servers are not read.',
};

const AFTER_FETCH_OPTIONS: { value: AfterFetch; label: string }[] = [
  { value: 'mark_read', label: 'Mark as read' },
  { value: 'move', label: 'Move to a folder' },
  { value: 'leave', label: 'Leave as is' },
];

const SERVER_TYPE_OPTIONS: { value: ServerType; label: string }[] = [
  { value: 'imap', label: 'IMAP' },
  { value: 'graph', label: 'Microsoft Graph' },
];

const fieldId = (f: string) => `incoming-server-${f}`;

function isFieldName(f: string): f is FieldName {
  return f in LABELS && f !== 'redirectUri' && f !== 'tokenSourceId';
}

const FORM_ORDER = Object.keys(LABELS);

function valuesFromDefaults(d: IncomingServerDefaults): FormValues {
  return {
    name: '',
    serverType: d.serverType,
    authType: d.authType,
    imapHost: d.imapHost,
    imapPort: String(d.imapPort),
    imapSecurity: d.imapSecurity,
    username: '',
    folder: d.folder,
    afterFetch: d.afterFetch,
    moveToFolder: '',
    intervalMinutes: String(d.intervalMinutes),
    active: true,
    clientId: '',
    clientSecret: '',
    password: '',
    tenant: d.tenant,
    tokenSourceId: null,
  };
}

function valuesFromServer(s: IncomingServer): FormValues {
  return {
    name: s.name,
    serverType: s.serverType,
    authType: s.authType,
    imapHost: s.imapHost,
    imapPort: String(s.imapPort),
    imapSecurity: s.imapSecurity,
    username: s.username,
    folder: s.folder,
    afterFetch: s.afterFetch,
    moveToFolder: s.moveToFolder ?? '',
    intervalMinutes: String(s.intervalMinutes),
    active: s.active,
    clientId: s.clientId ?? '',
    clientSecret: '',
    password: '',
    tenant: s.tenant ?? '',
    tokenSourceId: s.tokenSourceId,
  };
}

/** The API input for the form values, without the (write-only) client secret. */
function toInput(v: FormValues): Omit<IncomingServerInput, 'clientSecret'> {
  return {
    ...(v.password !== '' && { password: v.password }),
    name: v.name.trim(),
    serverType: v.serverType as ServerType,
    authType: v.authType as AuthType,
    imapHost: v.imapHost.trim(),
    imapPort: toNumber(v.imapPort),
    imapSecurity: v.imapSecurity,
    username: v.username.trim(),
    folder: v.folder.trim(),
    afterFetch: v.afterFetch,
    // Only meaningful when moving: otherwise cleared, like the hidden field.
    moveToFolder: v.afterFetch === 'move' ? toNullable(v.moveToFolder) : null,
    intervalMinutes: toNumber(v.intervalMinutes),
    active: v.active,
    tokenSourceId: v.tokenSourceId,
    clientId: toNullable(v.clientId),
    tenant: toNullable(v.tenant),
  };
}

/** Create (id undefined) or edit an incoming mail server (IMAP with Outlook OAuth). */
export function IncomingMailServerForm({ id }: { id?: string }) {
  const { query } = useLocation();
  const [flash] = useFlashNotice();
  const [tokenSourceName, setTokenSourceName] = useState<string | null>(null);
  const [reusing, setReusing] = useState(false);
  const form = useServerForm(id, flash, {
    noun: 'incoming mail server',
    listPath: paths.incomingMailServers,
    pathOf: incomingMailServerPath,
    loadDefaults: api.incomingServerDefaults,
    load: api.getIncomingServer,
    create: api.createIncomingServer,
    update: api.updateIncomingServer,
    remove: api.deleteIncomingServer,
    fromDefaults: valuesFromDefaults,
    fromServer: valuesFromServer,
    toInput,
    sendsSecret: (v) => v.tokenSourceId === null,
    check: (v) => {
      const local: Record<string, string> = {};
      if (v.imapPort.trim() === '') local.imapPort = 'Enter a port number (993 for SSL/TLS)';
      if (v.intervalMinutes.trim() === '') local.intervalMinutes = 'Enter an interval in minutes, e.g. 5';
      if (v.afterFetch === 'move' && v.moveToFolder.trim() === '') local.moveToFolder = 'Enter the folder to move fetched messages to';
      return local;
    },
    onServer: (s) => setTokenSourceName(s.tokenSourceName),
  });
  const { isNew, server, initial, values, set, loadError, saving, deleting, fieldErrors, validationMessage, formError, notice, setNotice, clearMessages, showError, submit, remove, dirty } = form;

  // Connected outgoing mail servers for the typed Username, and the ones the user turned down.
  const [reusable, setReusable] = useState<{ username: string; items: ReusableConnection[] } | null>(null);
  const [declined, setDeclined] = useState<string[]>([]);

  useTitle(isNew ? 'New Incoming Mail Server' : server?.name || 'Incoming Mail Server');
  const methods = useAuthMethods(api.incomingServerDefaults);
  const method = values ? methodOf(methods, values.authType) : undefined;
  const oauth = method?.oauth ?? null;

  /** Authenticate Using changed: a new server takes the method's own IMAP host (imap.gmail.com:993); Graph only where allowed. */
  function changeMethod(authType: string) {
    const m = methodOf(methods, authType);
    set('authType', authType);
    if (m && !m.graph) set('serverType', 'imap');
    if (!isNew || !m || !values) return;
    const providerHosts = new Set((methods ?? []).flatMap((x) => (x.imap ? [x.imap.host] : [])));
    if (m.imap) {
      set('imapHost', m.imap.host);
      set('imapPort', String(m.imap.port));
      set('imapSecurity', m.imap.security);
    } else if (providerHosts.has(values.imapHost)) {
      set('imapHost', '');
    }
  }

  // Typing a Username that an outgoing mail server already connected: offer to reuse its consent.
  const lookupUsername = values?.username.trim() ?? '';
  const sharing = values?.tokenSourceId != null;
  useEffect(() => {
    if (lookupUsername === '' || sharing) return;
    let cancelled = false;
    const t = window.setTimeout(() => {
      api.reusableConnections(lookupUsername).then(
        (r) => !cancelled && setReusable({ username: lookupUsername, items: r.items }),
        () => !cancelled && setReusable({ username: lookupUsername, items: [] }),
      );
    }, REUSE_LOOKUP_DELAY_MS);
    return () => {
      cancelled = true;
      window.clearTimeout(t);
    };
  }, [lookupUsername, sharing]);

  function setSecurity(tls: boolean) {
    if (!values) return;
    // Follow the usual port of the mode, unless the user chose another one.
    const port = values.imapPort.trim();
    set('imapSecurity', tls ? 'tls' : 'starttls');
    if (tls && port === '143') set('imapPort', '993');
    if (!tls && port === '993') set('imapPort', '143');
  }

  async function reuse(c: ReusableConnection) {
    if (!values) return;
    clearMessages();
    if (!server) {
      set('tokenSourceId', c.mailServerId);
      setTokenSourceName(c.name);
      return;
    }
    // An existing server switches right away (with the Username it was found for).
    const patch: Partial<IncomingServerInput> = { tokenSourceId: c.mailServerId };
    const username = values.username.trim();
    if (initial && username !== initial.username.trim()) patch.username = username;
    setReusing(true);
    try {
      const updated = await api.updateIncomingServer(server.id, patch);
      form.setServer(updated);
      setTokenSourceName(updated.tokenSourceName ?? c.name);
      form.keepSaved({ tokenSourceId: updated.tokenSourceId, username: updated.username });
      setNotice({ kind: 'success', text: `Now using the connection of the outgoing mail server "${c.name}".` });
    } catch (err) {
      showError(err);
    } finally {
      setReusing(false);
    }
  }

  function switchToOwnCredentials() {
    if (!values?.tokenSourceId) return;
    const left = values.tokenSourceId;
    setDeclined((d) => [...d, left]);
    set('tokenSourceId', null);
    window.setTimeout(() => document.getElementById(fieldId('clientId'))?.focus(), 0);
  }

  const title = isNew ? 'New Incoming Mail Server' : server?.name || 'Incoming Mail Server';
  const busy = saving || deleting || reusing;
  const header = (
    <FormPageHeader
      listLabel="Incoming Mail Servers"
      listPath={paths.incomingMailServers}
      crumb={isNew ? 'New' : server?.name || '…'}
      title={title}
      formId={values ? 'incoming-server-form' : null}
      isNew={isNew}
      saving={saving}
      deleting={deleting}
      disabled={busy}
      onDelete={remove}
    />
  );

  if (loadError || !values || !initial) {
    return (
      <FormPageLoadState
        header={header}
        error={loadError}
        notFound="This incoming mail server does not exist (it may have been deleted)."
      />
    );
  }

  const offer =
    oauth && !sharing && reusable && reusable.username === lookupUsername
      ? reusable.items.find((c) => !declined.includes(c.mailServerId) && (c.sendUsing === 'graph') === (values.serverType === 'graph'))
      : undefined;

  /** Fields hidden by the current choices (their errors are listed as text in the summary). */
  function shown(f: FieldName): boolean {
    if (f === 'clientId' || f === 'clientSecret' || f === 'tenant') return !sharing;
    if (f === 'moveToFolder') return values?.afterFetch === 'move';
    return true;
  }

  function a11y(f: FieldName, also?: string) {
    return fieldA11y(fieldId(f), f, !!HELP[f], !!fieldErrors[f], also);
  }

  function row(f: FieldName, control: ReactNode, extra?: ReactNode) {
    return (
      <FormField id={fieldId(f)} label={LABELS[f]} help={HELP[f]} error={fieldErrors[f]} after={extra}>
        {control}
      </FormField>
    );
  }

  function text(f: TextField, props: { type?: string; placeholder?: string; autoComplete?: string } = {}) {
    return row(
      f,
      <input
        {...a11y(f)}
        type={props.type ?? 'text'}
        value={values?.[f] ?? ''}
        onChange={(e) => set(f, e.target.value)}
        placeholder={props.placeholder}
        autoComplete={props.autoComplete ?? 'off'}
        spellCheck={false}
      />,
    );
  }

  function checkbox(f: 'active', checked: boolean, onChange: (checked: boolean) => void) {
    return row(
      f,
      <input {...a11y(f)} type="checkbox" className="checkbox" checked={checked} onChange={(e) => onChange(e.target.checked)} />,
    );
  }

  const reuseNotice = offer && (
    <div className="alert alert-info reuse-offer" role="status">
      <p>
        This mailbox is already connected through the outgoing mail server "{offer.name}". One consent covers IMAP and
        SMTP.
      </p>
      <div className="button-row">
        <button
          type="button"
          className="btn btn-secondary btn-small"
          onClick={() => reuse(offer)}
          disabled={busy}
          aria-busy={reusing || undefined}
        >
          {reusing && <Spinner />}
          Reuse this connection
        </button>
      </div>
    </div>
  );

  return (
    <>
      {header}
      {notice && <Notice kind={notice.kind}>{notice.text}</Notice>}
      {formError && <ErrorAlert problem={formError} showCode={formError.status >= 500} />}
      <ErrorSummary
        errors={fieldErrors}
        message={validationMessage}
        order={FORM_ORDER}
        linkLabel={(f) => (isFieldName(f) && shown(f) ? LABELS[f] : undefined)}
        fieldId={fieldId}
      />

      {server && (
        <IncomingConnectionPanel server={server} method={methodOf(methods, server.authType)} oauth={query.get('oauth')} dirty={dirty} onServerChange={form.setServer} />
      )}
      {isNew && <GuideIntro methods={methods} />}

      <form id="incoming-server-form" className="card mail-server-form" onSubmit={submit} noValidate>
        <FormField title id={fieldId('name')} label={LABELS.name} error={fieldErrors.name}>
          <input
            {...a11y('name')}
            type="text"
            className="input-title"
            placeholder="e.g. Support inbox"
            autoComplete="off"
            value={values.name}
            onChange={(e) => set('name', e.target.value)}
          />
        </FormField>

        <div className="form-columns">
          <fieldset className="form-group">
            <legend>Account</legend>
            {row(
              'authType',
              <select {...a11y('authType')} value={values.authType} onChange={(e) => changeMethod(e.target.value)}>
                {(methods ?? []).map((m) => (
                  <option key={m.authType} value={m.authType}>
                    {m.label}
                  </option>
                ))}
                {!method && <option value={values.authType}>{values.authType}</option>}
              </select>,
            )}
            {row(
              'username',
              <input
                {...a11y('username')}
                type="email"
                value={values.username}
                onChange={(e) => set('username', e.target.value)}
                placeholder="support@contoso.com"
                autoComplete="off"
                spellCheck={false}
              />,
              reuseNotice,
            )}
            {method?.mechanism === 'password' && (
              <PasswordField
                id={fieldId('password')}
                value={values.password}
                onChange={(v) => set('password', v)}
                error={fieldErrors.password}
                passwordSet={server?.passwordSet ?? false}
              />
            )}
            {oauth && <OAuthCredentialsFields
              idPrefix="incoming-server-"
              oauth={oauth}
              values={values}
              onChange={set}
              errors={fieldErrors}
              secretSet={server?.clientSecretSet ?? false}
              replacement={
                values.tokenSourceId === null ? undefined : (
                  <FormField plainLabel id={fieldId('tokenSourceId')} label={LABELS.tokenSourceId} error={fieldErrors.tokenSourceId}>
                    <div className="shared-connection">
                      <p>
                        Uses the connection of{' '}
                        <Link to={mailServerPath(values.tokenSourceId)}>{tokenSourceName ?? 'an outgoing mail server'}</Link>
                      </p>
                      <p className="field-help">
                        The consent given for the outgoing mail server also covers reading this mailbox: no Client ID,
                        secret or second sign-in needed.
                      </p>
                      <button type="button" className="btn btn-secondary btn-small" onClick={switchToOwnCredentials} disabled={busy}>
                        Use own credentials
                      </button>
                    </div>
                  </FormField>
                )
              }
            />}
          </fieldset>

          <fieldset className="form-group">
            <legend>Reading</legend>
            {method?.graph && row(
              'serverType',
              <select {...a11y('serverType')} value={values.serverType} onChange={(e) => set('serverType', e.target.value)}>
                {SERVER_TYPE_OPTIONS.map((o) => (
                  <option key={o.value} value={o.value}>
                    {o.label}
                  </option>
                ))}
              </select>,
            )}
            {values.serverType === 'graph' && (
              <p className="field-help">
                Microsoft Graph reads the folder over HTTPS (no IMAP needed). Azure permissions: Microsoft Graph delegated Mail.ReadWrite and User.Read, plus
                offline_access, openid, profile, email. New mail is picked up at the interval below.
              </p>
            )}
            {values.serverType !== 'graph' && text('imapHost')}
            {values.serverType !== 'graph' && row(
              'imapPort',
              <input
                {...a11y('imapPort')}
                type="number"
                inputMode="numeric"
                min={1}
                max={65535}
                step={1}
                className="input-narrow"
                value={values.imapPort}
                onChange={(e) => set('imapPort', e.target.value)}
              />,
            )}
            {values.serverType !== 'graph' && row(
              'imapSecurity',
              <input
                {...a11y('imapSecurity')}
                type="checkbox"
                className="checkbox"
                checked={values.imapSecurity === 'tls'}
                onChange={(e) => setSecurity(e.target.checked)}
              />,
            )}
            {text('folder')}
            {row(
              'afterFetch',
              <select
                {...a11y('afterFetch')}
                value={values.afterFetch}
                onChange={(e) => set('afterFetch', e.target.value as AfterFetch)}
              >
                {AFTER_FETCH_OPTIONS.map((o) => (
                  <option key={o.value} value={o.value}>
                    {o.label}
                  </option>
                ))}
              </select>,
            )}
            {values.afterFetch === 'move' && text('moveToFolder', { placeholder: 'Archive' })}
            {row(
              'intervalMinutes',
              <div className="input-with-suffix">
                <input
                  {...a11y('intervalMinutes', 'incoming-server-interval-unit')}
                  type="number"
                  inputMode="numeric"
                  min={1}
                  max={1440}
                  step={1}
                  className="input-narrow"
                  value={values.intervalMinutes}
                  onChange={(e) => set('intervalMinutes', e.target.value)}
                />
                <span id="incoming-server-interval-unit" className="input-suffix">
                  minutes
                </span>
              </div>,
            )}
            {checkbox('active', values.active, (checked) => set('active', checked))}
          </fieldset>
        </div>
      </form>
    </>
  );
}
