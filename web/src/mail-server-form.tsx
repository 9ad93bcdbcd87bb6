import { useEffect, useRef, useState, type FormEvent, type ReactNode } from 'react';
import {
  api,
  ApiError,
  type AuthType,
  type MailServer,
  type MailServerDefaults,
  type MailServerInput,
  type SmtpSecurity,
} from './api.ts';
import { AUTH_TYPE_LABELS } from './auth-type-label.ts';
import { ConnectionPanel } from './connection-panel.tsx';
import { CopyButton } from './copy-button.tsx';
import { ErrorAlert } from './error-alert.tsx';
import { Notice } from './notice.tsx';
import { RedirectCheck } from './redirect-check.tsx';
import { rememberGuideServer } from './remember-guide-server.ts';
import { Link, navigate, useFlashNotice, useLocation } from './router.tsx';
import { mailServerPath, paths } from './routes.ts';
import { secretExpiryText, secretNeedsAttention } from './secret-expiry-text.ts';
import { Spinner } from './spinner.tsx';
import { useTitle } from './use-title.ts';

type FieldName =
  | 'name'
  | 'authType'
  | 'username'
  | 'clientId'
  | 'clientSecret'
  | 'tenant'
  | 'smtpHost'
  | 'smtpPort'
  | 'smtpSecurity'
  | 'priority'
  | 'fromFilter'
  | 'clientSecretExpiresAt'
  | 'allowAccountMismatch';

type TextField = Exclude<FieldName, 'allowAccountMismatch'>;

type FormValues = Record<TextField, string> & { allowAccountMismatch: boolean };

const LABELS: Record<FieldName | 'redirectUri', string> = {
  name: 'Mail Server Description',
  authType: 'Authenticate Using',
  username: 'Username',
  allowAccountMismatch: 'Send as a shared mailbox',
  redirectUri: 'OAuth2 Redirect Url',
  clientId: 'Client ID',
  clientSecret: 'Client Secret',
  tenant: 'Tenant',
  smtpHost: 'SMTP Server',
  smtpPort: 'SMTP Port',
  smtpSecurity: 'Connection Security',
  priority: 'Priority',
  fromFilter: 'FROM Filtering',
  clientSecretExpiresAt: 'Client Secret Expiration',
};

const HELP: Partial<Record<FieldName | 'redirectUri', string>> = {
  username: 'The Microsoft 365 mailbox to send from, e.g. sales@contoso.com.',
  allowAccountMismatch: 'Allow signing in with another account that has Send As rights on Username.',
  redirectUri:
    'Add this URL as a Web redirect URI of the app registration (Microsoft Entra admin center → App registrations → Authentication).',
  clientId: 'Application (client) ID of the app registration.',
  clientSecret: 'The secret’s Value (not its Secret ID), from Certificates & secrets.',
  tenant: 'common, organizations, consumers, a tenant ID or a domain',
  smtpPort: 'Microsoft 365 uses 587 with STARTTLS.',
  priority: 'When several servers match, the lowest number is used first.',
  fromFilter: 'Only use this server for this address or domain',
  clientSecretExpiresAt: 'The expiry date shown in Certificates & secrets; a warning appears 30 days before.',
};

const SECURITY_OPTIONS: { value: SmtpSecurity; label: string }[] = [
  { value: 'starttls', label: 'STARTTLS' },
  { value: 'tls', label: 'SSL/TLS' },
];

const SECRET_SET_PLACEHOLDER = '•••••••• (set — leave empty to keep)';

const fieldId = (f: string) => `mail-server-${f}`;
const helpId = (f: string) => `mail-server-${f}-help`;
const errorId = (f: string) => `mail-server-${f}-error`;

function isFieldName(f: string): f is FieldName {
  return f in LABELS && f !== 'redirectUri';
}

const FORM_ORDER = Object.keys(LABELS);

/** Error summary entries in the order the fields appear; fields the form does not show go last. */
function sortByFormOrder(entries: [string, string][]): [string, string][] {
  const rank = (f: string) => (FORM_ORDER.includes(f) ? FORM_ORDER.indexOf(f) : FORM_ORDER.length);
  return [...entries].sort((a, b) => rank(a[0]) - rank(b[0]));
}

function valuesFromDefaults(d: MailServerDefaults): FormValues {
  return {
    name: '',
    authType: d.authType,
    username: '',
    clientId: '',
    clientSecret: '',
    tenant: d.tenant,
    smtpHost: d.smtpHost,
    smtpPort: String(d.smtpPort),
    smtpSecurity: d.smtpSecurity,
    priority: String(d.priority),
    fromFilter: '',
    clientSecretExpiresAt: '',
    allowAccountMismatch: false,
  };
}

function valuesFromServer(s: MailServer): FormValues {
  return {
    name: s.name,
    authType: s.authType,
    username: s.username,
    clientId: s.clientId,
    clientSecret: '',
    tenant: s.tenant,
    smtpHost: s.smtpHost,
    smtpPort: String(s.smtpPort),
    smtpSecurity: s.smtpSecurity,
    priority: String(s.priority),
    fromFilter: s.fromFilter ?? '',
    clientSecretExpiresAt: s.clientSecretExpiresAt ?? '',
    allowAccountMismatch: s.allowAccountMismatch,
  };
}

const toNumber = (s: string): number | null => (s.trim() === '' ? null : Number(s));
const toNullable = (s: string): string | null => (s.trim() === '' ? null : s.trim());

/** The API input for the form values, without the (write-only) client secret. */
function toInput(v: FormValues): Omit<MailServerInput, 'clientSecret'> {
  return {
    name: v.name.trim(),
    authType: v.authType as AuthType,
    username: v.username.trim(),
    clientId: v.clientId.trim(),
    tenant: v.tenant.trim(),
    smtpHost: v.smtpHost.trim(),
    smtpPort: toNumber(v.smtpPort),
    smtpSecurity: v.smtpSecurity as SmtpSecurity,
    priority: toNumber(v.priority),
    fromFilter: toNullable(v.fromFilter),
    clientSecretExpiresAt: toNullable(v.clientSecretExpiresAt),
    allowAccountMismatch: v.allowAccountMismatch,
  };
}

function changedFields(before: FormValues, after: FormValues): Partial<MailServerInput> {
  const a = toInput(before);
  const b = toInput(after);
  const patch: Record<string, unknown> = {};
  for (const k of Object.keys(b) as (keyof typeof b)[]) {
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) patch[k] = b[k];
  }
  if (after.clientSecret !== '') patch.clientSecret = after.clientSecret;
  return patch as Partial<MailServerInput>;
}

function asApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError(0, { message: String(e) });
}

/** Create (id undefined) or edit a mail server. */
export function MailServerForm({ id }: { id?: string }) {
  const isNew = id === undefined;
  const { query } = useLocation();
  const [flash] = useFlashNotice();
  const [notice, setNotice] = useState<{ kind: 'success' | 'info'; text: string } | null>(() =>
    flash ? { kind: 'success', text: flash } : null,
  );

  const [server, setServer] = useState<MailServer | null>(null);
  const [redirectUri, setRedirectUri] = useState('');
  const [initial, setInitial] = useState<FormValues | null>(null);
  const [values, setValues] = useState<FormValues | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);

  const [saving, setSaving] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [validationMessage, setValidationMessage] = useState<string | null>(null);
  const [formError, setFormError] = useState<ApiError | null>(null);
  const summaryRef = useRef<HTMLDivElement>(null);

  useTitle(isNew ? 'New Mail Server' : server?.name || 'Mail Server');

  useEffect(() => {
    let cancelled = false;
    const load = async () => {
      try {
        if (id === undefined) {
          const d = await api.mailServerDefaults();
          if (cancelled) return;
          const v = valuesFromDefaults(d);
          setRedirectUri(d.redirectUri);
          setInitial(v);
          setValues(v);
        } else {
          const s = await api.getMailServer(id);
          if (cancelled) return;
          applyServer(s);
          rememberGuideServer(s.id);
        }
      } catch (e) {
        if (!cancelled) setLoadError(asApiError(e));
      }
    };
    void load();
    return () => {
      cancelled = true;
    };
  }, [id]);

  useEffect(() => {
    if (Object.keys(fieldErrors).length > 0) summaryRef.current?.focus();
  }, [fieldErrors]);

  function applyServer(s: MailServer) {
    const v = valuesFromServer(s);
    setServer(s);
    setRedirectUri(s.redirectUri);
    setInitial(v);
    setValues(v);
  }

  /** Server state changed outside the form (token status after a test): keep the user's edits. */
  function refreshServer(s: MailServer) {
    setServer(s);
  }

  /** A setting was saved from the Connection panel (shared mailbox): the form follows, other edits stay. */
  function settingsSaved(s: MailServer) {
    setServer(s);
    const keep = { allowAccountMismatch: s.allowAccountMismatch };
    setInitial((v) => (v ? { ...v, ...keep } : v));
    setValues((v) => (v ? { ...v, ...keep } : v));
  }

  function set(field: TextField, value: string) {
    setValues((v) => (v ? { ...v, [field]: value } : v));
  }

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (!values || !initial) return;
    // Empty number inputs would be read as 0 by the API: ask for a value here.
    const local: Record<string, string> = {};
    if (values.smtpPort.trim() === '') local.smtpPort = 'Enter a port number (587 for STARTTLS)';
    if (values.priority.trim() === '') local.priority = 'Enter a priority, e.g. 10';
    if (Object.keys(local).length > 0) {
      setFieldErrors(local);
      setValidationMessage(null);
      setFormError(null);
      setNotice(null);
      return;
    }
    setSaving(true);
    setFieldErrors({});
    setValidationMessage(null);
    setFormError(null);
    setNotice(null);
    try {
      if (isNew) {
        const input: MailServerInput = { ...toInput(values) };
        if (values.clientSecret !== '') input.clientSecret = values.clientSecret;
        const created = await api.createMailServer(input);
        navigate(mailServerPath(created.id), { state: { notice: 'Mail server created.' } });
        return;
      }
      if (!server) return;
      const patch = changedFields(initial, values);
      if (Object.keys(patch).length === 0) {
        setNotice({ kind: 'info', text: 'No changes to save.' });
      } else {
        const updated = await api.updateMailServer(server.id, patch);
        applyServer(updated);
        setNotice({ kind: 'success', text: 'Saved.' });
      }
    } catch (err) {
      const apiErr = asApiError(err);
      if (apiErr.hasFieldErrors) {
        setFieldErrors(apiErr.fields);
        setValidationMessage(apiErr.message);
      } else {
        setFormError(apiErr);
        window.scrollTo({ top: 0 });
      }
    } finally {
      setSaving(false);
    }
  }

  async function remove() {
    if (!server) return;
    if (!window.confirm(`Delete the mail server “${server.name}”? This cannot be undone.`)) return;
    setDeleting(true);
    setFormError(null);
    try {
      await api.deleteMailServer(server.id);
      navigate(paths.mailServers, { state: { notice: `Mail server “${server.name}” deleted.` } });
    } catch (err) {
      setFormError(asApiError(err));
      setDeleting(false);
    }
  }

  const title = isNew ? 'New Mail Server' : server?.name || 'Mail Server';
  const header = (
    <div className="page-header">
      <div>
        <p className="breadcrumb">
          <Link to={paths.mailServers}>Mail Servers</Link>
          <span aria-hidden="true"> / </span>
          <span>{isNew ? 'New' : server?.name || '…'}</span>
        </p>
        <h1>{title}</h1>
      </div>
      {values && (
        <div className="page-actions">
          <button type="submit" form="mail-server-form" className="btn btn-primary" disabled={saving || deleting}>
            {saving && <Spinner />}
            {isNew ? 'Create' : 'Save'}
          </button>
          {!isNew && (
            <button type="button" className="btn btn-danger" onClick={remove} disabled={saving || deleting}>
              {deleting && <Spinner />}
              Delete
            </button>
          )}
        </div>
      )}
    </div>
  );

  if (loadError) {
    return (
      <>
        {header}
        <ErrorAlert
          problem={
            loadError.status === 404
              ? { message: 'This mail server does not exist (it may have been deleted).' }
              : loadError
          }
        />
      </>
    );
  }
  if (!values || !initial) {
    return (
      <>
        {header}
        <p className="loading">Loading…</p>
      </>
    );
  }

  const dirty = Object.keys(changedFields(initial, values)).length > 0;
  const fieldMessages = Object.values(fieldErrors);
  // The API's overall message, unless it only repeats a field message (e.g. "<first field message> (and 2 more)").
  const summaryExtra =
    validationMessage && !fieldMessages.some((m) => validationMessage.includes(m)) ? validationMessage : null;

  function a11y(f: FieldName) {
    const describedBy = [
      f === 'clientSecretExpiresAt' && expiryText ? 'mail-server-clientSecretExpiresAt-state' : null,
      HELP[f] ? helpId(f) : null,
      fieldErrors[f] ? errorId(f) : null,
    ]
      .filter(Boolean)
      .join(' ');
    return {
      id: fieldId(f),
      name: f,
      'aria-invalid': fieldErrors[f] ? true : undefined,
      'aria-describedby': describedBy || undefined,
    };
  }

  function row(f: FieldName | 'redirectUri', control: ReactNode, extra?: ReactNode) {
    const err = f === 'redirectUri' ? undefined : fieldErrors[f];
    return (
      <div className={err ? 'field has-error' : 'field'}>
        <label htmlFor={fieldId(f)}>{LABELS[f]}</label>
        <div className="field-control">
          {control}
          {extra}
          {HELP[f] && (
            <p id={helpId(f)} className="field-help">
              {HELP[f]}
            </p>
          )}
          {err && (
            <p id={errorId(f)} className="field-error">
              {err}
            </p>
          )}
        </div>
      </div>
    );
  }

  function text(
    f: TextField,
    props: { type?: string; placeholder?: string; autoComplete?: string } = {},
    extra?: ReactNode,
  ) {
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
      extra,
    );
  }

  function number(f: TextField, min: number, max: number) {
    return row(
      f,
      <input
        {...a11y(f)}
        type="number"
        inputMode="numeric"
        min={min}
        max={max}
        step={1}
        className="input-narrow"
        value={values?.[f] ?? ''}
        onChange={(e) => set(f, e.target.value)}
      />,
    );
  }

  // The server's reading of the saved expiry date (hidden while the date is being changed).
  const expiry = server && values.clientSecretExpiresAt === initial.clientSecretExpiresAt ? server.clientSecretExpiry : null;
  const expiryText = secretExpiryText(expiry);
  const expiryNote = expiryText && (
    <p
      id="mail-server-clientSecretExpiresAt-state"
      className={secretNeedsAttention(expiry) ? 'secret-expiry secret-expiry-warning' : 'secret-expiry'}
    >
      {expiryText}
    </p>
  );

  return (
    <>
      {header}
      {notice && <Notice kind={notice.kind}>{notice.text}</Notice>}
      {formError && <ErrorAlert problem={formError} showCode={formError.status >= 500} />}
      {fieldMessages.length > 0 && (
        <div className="alert alert-error" role="alert" tabIndex={-1} ref={summaryRef}>
          <p className="alert-title">
            {summaryExtra ??
              (fieldMessages.length === 1 ? 'One field needs attention:' : `${fieldMessages.length} fields need attention:`)}
          </p>
          <ul className="error-summary">
            {sortByFormOrder(Object.entries(fieldErrors)).map(([f, msg]) =>
              isFieldName(f) ? (
                <li key={f}>
                  <a
                    href={`#${fieldId(f)}`}
                    onClick={(e) => {
                      e.preventDefault();
                      document.getElementById(fieldId(f))?.focus();
                    }}
                  >
                    {LABELS[f]}
                  </a>
                </li>
              ) : (
                <li key={f}>{msg}</li>
              ),
            )}
          </ul>
        </div>
      )}

      {server && (
        <ConnectionPanel
          server={server}
          oauth={query.get('oauth')}
          dirty={dirty}
          onServerChange={refreshServer}
          onSettingsSaved={settingsSaved}
        />
      )}
      {isNew && (
        <p className="guide-intro">
          First Microsoft 365 mailbox? <Link to={paths.outlookGuide}>How to connect Outlook</Link> walks through the
          Azure app registration with this installation's values.
        </p>
      )}

      <form id="mail-server-form" className="card mail-server-form" onSubmit={submit} noValidate>
        <div className="field field-title">
          <label htmlFor={fieldId('name')}>{LABELS.name}</label>
          <div className="field-control">
            <input
              {...a11y('name')}
              type="text"
              className="input-title"
              placeholder="e.g. Sales mailbox (Microsoft 365)"
              autoComplete="off"
              value={values.name}
              onChange={(e) => set('name', e.target.value)}
            />
            {fieldErrors.name && (
              <p id={errorId('name')} className="field-error">
                {fieldErrors.name}
              </p>
            )}
          </div>
        </div>

        <div className="form-columns">
          <fieldset className="form-group">
            <legend>Microsoft 365 account</legend>
            {row(
              'authType',
              <select {...a11y('authType')} value={values.authType} onChange={(e) => set('authType', e.target.value)}>
                {Object.entries(AUTH_TYPE_LABELS).map(([value, label]) => (
                  <option key={value} value={value}>
                    {label}
                  </option>
                ))}
              </select>,
            )}
            {text('username', { type: 'email', placeholder: 'sales@contoso.com' })}
            <div className="field field-checkbox">
              <span aria-hidden="true" />
              <div className="field-control">
                <div className="checkbox-line">
                  <input
                    {...a11y('allowAccountMismatch')}
                    type="checkbox"
                    className="checkbox"
                    checked={values.allowAccountMismatch}
                    onChange={(e) => {
                      const checked = e.target.checked;
                      setValues((v) => (v ? { ...v, allowAccountMismatch: checked } : v));
                    }}
                  />
                  <label htmlFor={fieldId('allowAccountMismatch')}>{LABELS.allowAccountMismatch}</label>
                </div>
                <p id={helpId('allowAccountMismatch')} className="field-help">
                  {HELP.allowAccountMismatch}
                </p>
              </div>
            </div>
            <RedirectCheck redirectUri={redirectUri} />
            {row(
              'redirectUri',
              <div className="input-with-button">
                <input
                  id={fieldId('redirectUri')}
                  type="text"
                  readOnly
                  value={redirectUri}
                  aria-describedby={helpId('redirectUri')}
                  onFocus={(e) => e.currentTarget.select()}
                />
                <CopyButton text={redirectUri} inputId={fieldId('redirectUri')} />
              </div>,
            )}
            {text('clientId', { placeholder: '00000000-0000-0000-0000-000000000000' })}
            {text('clientSecret', {
              type: 'password',
              autoComplete: 'new-password',
              placeholder: server?.clientSecretSet ? SECRET_SET_PLACEHOLDER : undefined,
            })}
            {text('clientSecretExpiresAt', { type: 'date' }, expiryNote)}
            {text('tenant')}
          </fieldset>

          <fieldset className="form-group">
            <legend>Sending (SMTP)</legend>
            {text('smtpHost')}
            {number('smtpPort', 1, 65535)}
            {row(
              'smtpSecurity',
              <select
                {...a11y('smtpSecurity')}
                value={values.smtpSecurity}
                onChange={(e) => set('smtpSecurity', e.target.value)}
              >
                {SECURITY_OPTIONS.map((o) => (
                  <option key={o.value} value={o.value}>
                    {o.label}
                  </option>
                ))}
              </select>,
            )}
            {number('priority', 0, 1000000)}
            {text('fromFilter', { placeholder: 'contoso.com' })}
          </fieldset>
        </div>
      </form>
    </>
  );
}
