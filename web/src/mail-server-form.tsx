import type { ReactNode } from 'react';
import {
  api,
  type AuthType,
  type MailServer,
  type MailServerDefaults,
  type MailServerInput,
  type SendLimitField,
  type SendUsing,
  type SmtpSecurity,
} from './api.ts';
import { SendingSummary } from './sending-summary.tsx';
import { methodOf, useAuthMethods } from './auth-methods.ts';
import { ConnectionPanel } from './connection-panel.tsx';
import { BounceWatchPanel } from './bounce-watch-panel.tsx';
import { ErrorAlert } from './error-alert.tsx';
import { ErrorSummary } from './error-summary.tsx';
import { fieldA11y } from './field-a11y.ts';
import { FormField } from './form-field.tsx';
import { FormPageLoadState } from './form-page-load-state.tsx';
import { FormPageHeader } from './form-page-header.tsx';
import { Notice } from './notice.tsx';
import { OAuthCredentialsFields } from './oauth-credentials-fields.tsx';
import { GuideIntro } from './guide-intro.tsx';
import { PasswordField } from './password-field.tsx';
import { useFlashNotice, useLocation } from './router.tsx';
import { mailServerPath, paths } from './routes.ts';
import { secretExpiryText, secretNeedsAttention } from './secret-expiry-text.ts';
import { toNullable, toNumber, useServerForm } from './use-server-form.ts';
import { useTitle } from './use-title.ts';

type FieldName =
  | 'name'
  | 'authType'
  | 'username'
  | 'clientId'
  | 'clientSecret'
  | 'password'
  | 'tenant'
  | 'smtpHost'
  | 'smtpPort'
  | 'smtpSecurity'
  | 'sendUsing'
  | 'priority'
  | 'fromFilter'
  | 'clientSecretExpiresAt'
  | SendLimitField
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
  password: 'Password',
  tenant: 'Tenant',
  smtpHost: 'SMTP Server',
  smtpPort: 'SMTP Port',
  smtpSecurity: 'Connection Security',
  sendUsing: 'Send Using',
  priority: 'Priority',
  fromFilter: 'FROM Filtering',
  clientSecretExpiresAt: 'Client Secret Expiration',
  maxConnections: 'Connections per mailbox',
  messagesPerMinute: 'Messages per minute',
  recipientsPerDay: 'Recipients per day',
  recipientsPerMessage: 'Recipients per message',
};

const LIMITS: SendLimitField[] = ['maxConnections', 'messagesPerMinute', 'recipientsPerDay', 'recipientsPerMessage'];

const HELP: Partial<Record<FieldName, string>> = {
  username: 'The mailbox to send from, e.g. sales@contoso.com; for Username/Password the login name the server expects.',
  allowAccountMismatch: 'Allow signing in with another account that has Send As rights on Username.',
  smtpPort: '587 with STARTTLS, or 465 with SSL/TLS.',
  priority: 'When several servers match, the lowest number is used first.',
  fromFilter: 'Only use this server for this address or domain',
  clientSecretExpiresAt: 'The expiry date shown in Certificates & secrets; a warning appears 30 days before.',
  maxConnections: 'SMTP connections sending at once, Test Connection and Send test email included. Exchange Online: 3.',
  messagesPerMinute: 'Exchange Online: 30. Empty: no limit.',
  recipientsPerDay: 'In any 24 hours. Exchange Online: 10,000. When it is reached, mail is held until the window allows.',
  recipientsPerMessage: 'To, Cc and Bcc together; more is refused when the message is queued. Exchange Online: 500.',
};

const SEND_USING_OPTIONS: { value: SendUsing; label: string }[] = [
  { value: 'smtp', label: 'SMTP (XOAUTH2)' },
  { value: 'graph', label: 'Microsoft Graph' },
];

/** The delegated permissions the Azure app needs for each way of sending (guide step 2). */
export const SEND_PERMISSIONS: Record<SendUsing, string> = {
  smtp: 'Office 365 Exchange Online / Microsoft Graph delegated: SMTP.Send (and IMAP.AccessAsUser.All for incoming mail), plus offline_access, openid, profile, email',
  graph: 'Microsoft Graph delegated: Mail.Send, Mail.ReadWrite (messages over 4 MB, incoming mail) and User.Read, plus offline_access, openid, profile, email',
};

const SECURITY_OPTIONS: { value: SmtpSecurity; label: string }[] = [
  { value: 'starttls', label: 'STARTTLS' },
  { value: 'tls', label: 'SSL/TLS' },
  { value: 'none', label: 'None (this machine or MAIL_PLAINTEXT_HOSTS only)' },
];

const fieldId = (f: string) => `mail-server-${f}`;
const helpId = (f: string) => `mail-server-${f}-help`;

function isFieldName(f: string): f is FieldName {
  return f in LABELS && f !== 'redirectUri';
}

/** Error summary order: the order the fields appear. */
const FORM_ORDER = Object.keys(LABELS);

function valuesFromDefaults(d: MailServerDefaults): FormValues {
  return {
    name: '',
    authType: d.authType,
    username: '',
    clientId: '',
    clientSecret: '',
    password: '',
    tenant: d.tenant,
    smtpHost: d.smtpHost,
    smtpPort: String(d.smtpPort),
    smtpSecurity: d.smtpSecurity,
    sendUsing: d.sendUsing,
    priority: String(d.priority),
    fromFilter: '',
    clientSecretExpiresAt: '',
    allowAccountMismatch: false,
    ...limitValues(d),
  };
}

const limitValues = (l: Pick<MailServerDefaults, SendLimitField>): Record<SendLimitField, string> => ({
  maxConnections: l.maxConnections === null ? '' : String(l.maxConnections),
  messagesPerMinute: l.messagesPerMinute === null ? '' : String(l.messagesPerMinute),
  recipientsPerDay: l.recipientsPerDay === null ? '' : String(l.recipientsPerDay),
  recipientsPerMessage: l.recipientsPerMessage === null ? '' : String(l.recipientsPerMessage),
});

function valuesFromServer(s: MailServer): FormValues {
  return {
    name: s.name,
    authType: s.authType,
    username: s.username,
    clientId: s.clientId,
    clientSecret: '',
    password: '',
    tenant: s.tenant,
    smtpHost: s.smtpHost,
    smtpPort: String(s.smtpPort),
    smtpSecurity: s.smtpSecurity,
    sendUsing: s.sendUsing,
    priority: String(s.priority),
    fromFilter: s.fromFilter ?? '',
    clientSecretExpiresAt: s.clientSecretExpiresAt ?? '',
    allowAccountMismatch: s.allowAccountMismatch,
    ...limitValues(s),
  };
}

/** The API input for the form values, without the (write-only) client secret; a typed password is sent. */
function toInput(v: FormValues): Omit<MailServerInput, 'clientSecret'> {
  return {
    ...(v.password !== '' && { password: v.password }),
    name: v.name.trim(),
    authType: v.authType as AuthType,
    username: v.username.trim(),
    clientId: v.clientId.trim(),
    tenant: v.tenant.trim(),
    smtpHost: v.smtpHost.trim(),
    smtpPort: toNumber(v.smtpPort),
    smtpSecurity: v.smtpSecurity as SmtpSecurity,
    sendUsing: v.sendUsing as SendUsing,
    priority: toNumber(v.priority),
    fromFilter: toNullable(v.fromFilter),
    clientSecretExpiresAt: toNullable(v.clientSecretExpiresAt),
    allowAccountMismatch: v.allowAccountMismatch,
    maxConnections: toNumber(v.maxConnections),
    messagesPerMinute: toNumber(v.messagesPerMinute),
    recipientsPerDay: toNumber(v.recipientsPerDay),
    recipientsPerMessage: toNumber(v.recipientsPerMessage),
  };
}

/** Create (id undefined) or edit a mail server. */
export function MailServerForm({ id }: { id?: string }) {
  const { query } = useLocation();
  const [flash] = useFlashNotice();
  const form = useServerForm(id, flash, {
    noun: 'mail server',
    listPath: paths.mailServers,
    pathOf: mailServerPath,
    loadDefaults: api.mailServerDefaults,
    load: api.getMailServer,
    create: api.createMailServer,
    update: api.updateMailServer,
    remove: api.deleteMailServer,
    fromDefaults: valuesFromDefaults,
    fromServer: valuesFromServer,
    toInput,
    check: (v) => {
      const local: Record<string, string> = {};
      if (v.smtpPort.trim() === '') local.smtpPort = 'Enter a port number (587 for STARTTLS)';
      if (v.priority.trim() === '') local.priority = 'Enter a priority, e.g. 10';
      return local;
    },
  });
  const { isNew, server, initial, values, set, loadError, saving, deleting, fieldErrors, validationMessage, formError, notice, submit, remove, dirty } = form;

  useTitle(isNew ? 'New Mail Server' : server?.name || 'Mail Server');
  const methods = useAuthMethods(api.mailServerDefaults);
  const method = values ? methodOf(methods, values.authType) : undefined;

  /**
   * Authenticate Using changed: a new server takes the method's own hosts (smtp.gmail.com:587 STARTTLS),
   * or none for Username/Password and None; Microsoft Graph stays only where the method allows it.
   */
  function changeMethod(authType: string) {
    const m = methodOf(methods, authType);
    set('authType', authType);
    if (m && !m.graph) set('sendUsing', 'smtp');
    if (!isNew || !m || !initial || !values) return;
    const providerHosts = new Set((methods ?? []).flatMap((x) => (x.smtp ? [x.smtp.host] : [])));
    if (m.smtp) {
      set('smtpHost', m.smtp.host);
      set('smtpPort', String(m.smtp.port));
      set('smtpSecurity', m.smtp.security);
    } else if (providerHosts.has(values.smtpHost)) {
      set('smtpHost', '');
    }
    // The defaults' sending limits are those of the default method's mail host (Exchange Online).
    for (const f of LIMITS) set(f, authType === initial.authType ? initial[f] : '');
  }

  /** A setting was saved from the Connection panel (shared mailbox): the form follows, other edits stay. */
  function settingsSaved(s: MailServer) {
    form.setServer(s);
    form.keepSaved({ allowAccountMismatch: s.allowAccountMismatch, sendUsing: s.sendUsing });
  }

  const title = isNew ? 'New Mail Server' : server?.name || 'Mail Server';
  const header = (
    <FormPageHeader
      listLabel="Mail Servers"
      listPath={paths.mailServers}
      crumb={isNew ? 'New' : server?.name || '…'}
      title={title}
      formId={values ? 'mail-server-form' : null}
      isNew={isNew}
      saving={saving}
      deleting={deleting}
      disabled={saving || deleting}
      onDelete={remove}
    />
  );

  const oauth = method?.oauth ?? null;
  if (loadError || !values || !initial) {
    return (
      <FormPageLoadState
        header={header}
        error={loadError}
        notFound="This mail server does not exist (it may have been deleted)."
      />
    );
  }

  function a11y(f: FieldName) {
    const state = f === 'clientSecretExpiresAt' && expiryText ? 'mail-server-clientSecretExpiresAt-state' : null;
    return fieldA11y(fieldId(f), f, !!HELP[f], !!fieldErrors[f], state);
  }

  function row(f: FieldName, control: ReactNode, extra?: ReactNode) {
    return (
      <FormField id={fieldId(f)} label={LABELS[f]} help={f === 'username' && oauth ? oauth.help.username : HELP[f]} error={fieldErrors[f]}>
        {control}
        {extra}
      </FormField>
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
      <ErrorSummary
        errors={fieldErrors}
        message={validationMessage}
        order={FORM_ORDER}
        linkLabel={(f) => (isFieldName(f) ? LABELS[f] : undefined)}
        fieldId={fieldId}
      />

      {server && (
        <ConnectionPanel
          server={server}
          method={methodOf(methods, server.authType)}
          oauth={query.get('oauth')}
          dirty={dirty}
          onServerChange={form.setServer}
          onSettingsSaved={settingsSaved}
        />
      )}
      {isNew && <GuideIntro methods={methods} />}
      {server && server.authType !== 'none' && <BounceWatchPanel serverId={server.id} username={server.username} />}

      <form id="mail-server-form" className="card mail-server-form" onSubmit={submit} noValidate>
        <FormField title id={fieldId('name')} label={LABELS.name} error={fieldErrors.name}>
          <input
            {...a11y('name')}
            type="text"
            className="input-title"
            placeholder="e.g. Sales mailbox"
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
            {text('username', { type: 'email', placeholder: 'sales@contoso.com' })}
            {oauth && <div className="field field-checkbox">
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
                      set('allowAccountMismatch', checked);
                    }}
                  />
                  <label htmlFor={fieldId('allowAccountMismatch')}>{LABELS.allowAccountMismatch}</label>
                </div>
                <p id={helpId('allowAccountMismatch')} className="field-help">
                  {HELP.allowAccountMismatch}
                </p>
              </div>
            </div>}
            {oauth && (
              <OAuthCredentialsFields
                idPrefix="mail-server-"
                oauth={oauth}
                values={values}
                onChange={set}
                errors={fieldErrors}
                secretSet={server?.clientSecretSet ?? false}
                afterSecret={text('clientSecretExpiresAt', { type: 'date' }, expiryNote)}
              />
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
            {method?.mechanism === 'none' && (
              <p className="field-help">No credentials: the server must accept mail from this machine without authentication (a relay).</p>
            )}
          </fieldset>

          <fieldset className="form-group">
            <legend>Sending</legend>
            {method?.graph && row(
              'sendUsing',
              <select {...a11y('sendUsing')} value={values.sendUsing} onChange={(e) => set('sendUsing', e.target.value)}>
                {SEND_USING_OPTIONS.map((o) => (
                  <option key={o.value} value={o.value}>
                    {o.label}
                  </option>
                ))}
              </select>,
            )}
            {method?.graph && (
              <p className="field-help" id={helpId('sendUsing')}>
                Azure permissions for this choice: {SEND_PERMISSIONS[values.sendUsing as SendUsing]}.
                {values.sendUsing === 'graph' && ' Graph sends over HTTPS: SMTP AUTH can stay switched off for the tenant.'}
              </p>
            )}
            {values.sendUsing !== 'graph' && (
              <>
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
              </>
            )}
            {number('priority', 0, 1000000)}
            {text('fromFilter', { placeholder: 'contoso.com' })}
          </fieldset>

          <fieldset className="form-group">
            <legend>Sending limits</legend>
            {server?.sending && <SendingSummary sending={server.sending} />}
            {LIMITS.map((f) => (
              <div key={f}>{number(f, 1, 100_000_000)}</div>
            ))}
          </fieldset>
        </div>
      </form>
    </>
  );
}
