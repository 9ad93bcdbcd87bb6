import { useEffect, useState, type ReactNode } from 'react';
import { api, type Access, type AuthMethodChoice, type AuthType, type CertificateView, type ClientCredential, type MailServer, type SecretExpiry, type ServerBase } from './api.ts';
import { secretExpiryText, secretNeedsAttention } from './secret-expiry-text.ts';
import { methodOf, useAuthMethods } from './auth-methods.ts';
import { CertificatePanel } from './certificate-panel.tsx';
import { ErrorAlert } from './error-alert.tsx';
import { ErrorSummary } from './error-summary.tsx';
import { fieldA11y } from './field-a11y.ts';
import { FormField } from './form-field.tsx';
import { FormPageHeader } from './form-page-header.tsx';
import { FormPageLoadState } from './form-page-load-state.tsx';
import { GuideIntro } from './guide-intro.tsx';
import { Notice } from './notice.tsx';
import { OAuthCredentialsFields } from './oauth-credentials-fields.tsx';
import { PasswordField } from './password-field.tsx';
import { Link, useFlashNotice } from './router.tsx';
import { mailServerPath } from './routes.ts';
import {
  ACCESS_CHOICES,
  APPLICATION_SCOPE_NOTICE,
  APPLICATION_TENANT_HELP,
  CLIENT_CREDENTIAL_CHOICES,
  describeAuth,
  type AuthDescription,
  type Choice,
  type Direction,
} from './server-form-description.ts';
import { useServerForm, type ServerFormSpec } from './use-server-form.ts';
import { useTitle } from './use-title.ts';

/** The values every server form has, whatever its direction. */
export interface CommonValues {
  name: string;
  authType: string;
  username: string;
  clientId: string;
  clientSecret: string;
  password: string;
  tenant: string;
  clientCredential: ClientCredential;
  access: Access;
  /** The outgoing mail server whose connection is used; null: this server's own credentials. */
  tokenSourceId: string | null;
  /** The server read model has Client Credential and Access (they are sent even when back at their defaults). */
  connectionFieldsKnown: boolean;
}

type ConnectionValues = Pick<CommonValues, 'clientCredential' | 'access' | 'tokenSourceId' | 'connectionFieldsKnown'>;

/** Client Credential, Access and the connection used, as a server has them (defaults for a new one). */
export function connectionValues(s: { clientCredential?: ClientCredential; access?: Access; tokenSourceId?: string | null } | null): ConnectionValues {
  return {
    clientCredential: s?.clientCredential ?? 'secret',
    access: s?.access ?? 'delegated',
    tokenSourceId: s?.tokenSourceId ?? null,
    connectionFieldsKnown: s?.clientCredential !== undefined,
  };
}

/** The values every server form starts from: a saved server's, or empty ones with the defaults' method and tenant. */
export function commonValues(
  s: { name: string; authType: string; username: string; clientId: string | null; tenant: string | null; clientCredential?: ClientCredential; access?: Access; tokenSourceId?: string | null } | null,
  d: { authType: string; tenant: string },
): CommonValues {
  return {
    ...connectionValues(s),
    name: s?.name ?? '',
    authType: s?.authType ?? d.authType,
    username: s?.username ?? '',
    clientId: s?.clientId ?? '',
    clientSecret: '',
    password: '',
    tenant: s ? (s.tenant ?? '') : d.tenant,
  };
}

/** The API input every server has: a typed password is sent, the (write-only) client secret never here. */
export function commonInput(v: CommonValues) {
  return {
    ...(v.password !== '' && { password: v.password }),
    name: v.name.trim(),
    authType: v.authType as AuthType,
    username: v.username.trim(),
  };
}

/** Their API input: a value at its default is left out unless the server is known to read it. */
export function connectionInput(v: ConnectionValues, opts: { tokenSource: boolean }): { clientCredential?: ClientCredential; access?: Access; tokenSourceId?: string | null } {
  const known = v.connectionFieldsKnown;
  return {
    ...((known || v.clientCredential !== 'secret') && { clientCredential: v.clientCredential }),
    ...((known || v.access !== 'delegated') && { access: v.access }),
    ...(opts.tokenSource && (known || v.tokenSourceId !== null) && { tokenSourceId: v.tokenSourceId }),
  };
}

/** The server read model fields the shared form reads. */
export interface CommonServer {
  id: string;
  name: string;
  authType: string;
  redirectUri: string | null;
  clientSecretSet: boolean;
  passwordSet: boolean;
  certificate?: CertificateView | null;
  /** A personal mailbox: the server whose app registration it signs in with. */
  appSourceId?: string | null;
  /** Outgoing servers: where the client secret stands against its expiry date. */
  clientSecretExpiry?: SecretExpiry;
}

/** One described field of a section: the form renders its control, label, help and error. */
export interface FieldSpec {
  name: string;
  label: string;
  kind: 'text' | 'email' | 'date' | 'number' | 'select' | 'checkbox';
  help?: ReactNode;
  placeholder?: string;
  options?: Choice<string>[];
  min?: number;
  max?: number;
  /** A unit after a number, e.g. "minutes". */
  suffix?: string;
  /** For checkboxes bound to something other than a boolean value. */
  checked?: boolean;
  onChange?: (value: string | boolean) => void;
  /** Shown right below the control. */
  extra?: ReactNode;
  /** Shown after the help and the error. */
  after?: ReactNode;
  /** Extra ids describing the control. */
  describedBy?: string;
}

export interface SectionSpec {
  legend: string;
  /** Shown before the fields (e.g. the sending summary). */
  intro?: ReactNode;
  fields: FieldSpec[];
}

/** What the shared form is given to render one kind of server. */
export interface ServerFormContext<S, V> {
  isNew: boolean;
  server: S | null;
  values: V;
  initial: V;
  set: <K extends keyof V>(field: K, value: V[K]) => void;
  auth: AuthDescription | null;
  methods: AuthMethodChoice[] | null;
  setServer: (s: S) => void;
  keepSaved: (saved: Partial<V>) => void;
  dirty: boolean;
}

export interface ServerKindSpec<S extends CommonServer, D extends { redirectUri: string; authMethods: AuthMethodChoice[] }, V extends CommonValues, I extends { clientSecret?: string }>
  extends ServerFormSpec<S, D, V, I> {
  direction: Direction;
  base: ServerBase;
  /** Element ids: "mail-server-" gives "mail-server-username". */
  idPrefix: string;
  formId: string;
  /** "Mail Server", "Incoming Mail Server" */
  title: string;
  listLabel: string;
  namePlaceholder: string;
  nameLabel: string;
  notFound: string;
  /** The method's own hosts and defaults when Authenticate Using changes. */
  methodChanged: (ctx: ServerFormContext<S, V>, m: AuthMethodChoice) => void;
  /** The sections after Account. */
  sections: (ctx: ServerFormContext<S, V>) => SectionSpec[];
  /** The Connection panel of a saved server. */
  panel: (ctx: ServerFormContext<S, V> & { server: S }) => ReactNode;
  /** Shown below Username (e.g. an offer to reuse a connection). */
  usernameAfter?: (ctx: ServerFormContext<S, V>) => ReactNode;
  /** Shown below the Account fields (e.g. the bounce watch). */
  aboveForm?: (ctx: ServerFormContext<S, V>) => ReactNode;
}

/** Outgoing servers whose connection this one may use: same method, own credentials, application access or the same mailbox. */
function useConnectionSources(enabled: boolean, selfId: string | undefined, authType: string, username: string): MailServer[] {
  const [all, setAll] = useState<MailServer[]>([]);
  useEffect(() => {
    if (!enabled) return;
    let cancelled = false;
    api.listMailServers().then(
      (r) => !cancelled && setAll(r.items),
      () => undefined,
    );
    return () => {
      cancelled = true;
    };
  }, [enabled]);
  const mailbox = username.trim().toLowerCase();
  return all.filter(
    (s) =>
      s.id !== selfId &&
      s.authType === authType &&
      (s.tokenSourceId ?? null) === null &&
      ((s.access ?? 'delegated') === 'application' || (mailbox !== '' && s.username.toLowerCase() === mailbox)),
  );
}

/**
 * Create or edit a server of either direction, rendered from descriptions: the Authenticate Using
 * option's (fields, wording, guide, connection choices) and the kind's sections.
 */
export function ServerForm<S extends CommonServer, D extends { redirectUri: string; authMethods: AuthMethodChoice[] }, V extends CommonValues, I extends { clientSecret?: string }>({
  id,
  kind,
}: {
  id?: string;
  kind: ServerKindSpec<S, D, V, I>;
}) {
  const [flash] = useFlashNotice();
  const form = useServerForm(id, flash, kind);
  const { isNew, server, initial, values, set, loadError, saving, deleting, fieldErrors, validationMessage, formError, notice, submit, remove, dirty } = form;
  const title = isNew ? `New ${kind.title}` : server?.name || kind.title;
  useTitle(title);
  const methods = useAuthMethods(kind.loadDefaults);
  const method = values ? methodOf(methods, values.authType) : undefined;
  const auth = method ? describeAuth(method, kind.direction) : null;
  const oauth = auth?.credentials === 'oauth' ? method!.oauth : null;
  const sources = useConnectionSources(!!oauth, server?.id, values?.authType ?? '', values?.username ?? '');

  const header = (
    <FormPageHeader
      listLabel={kind.listLabel}
      listPath={kind.listPath}
      crumb={isNew ? 'New' : server?.name || '…'}
      title={title}
      formId={values ? kind.formId : null}
      isNew={isNew}
      saving={saving}
      deleting={deleting}
      disabled={saving || deleting}
      onDelete={remove}
    />
  );
  if (loadError || !values || !initial) {
    return <FormPageLoadState header={header} error={loadError} notFound={kind.notFound} />;
  }

  const ctx: ServerFormContext<S, V> = { isNew, server, values, initial, set, auth, methods, setServer: form.setServer, keepSaved: form.keepSaved, dirty };
  const fieldId = (f: string) => `${kind.idPrefix}${f}`;
  const sharing = values.tokenSourceId !== null;
  const application = !!auth?.connectionChoices && values.access === 'application';
  const certificate = !!auth?.connectionChoices && values.clientCredential === 'certificate';

  function changeMethod(authType: string) {
    const m = methodOf(methods, authType);
    set('authType', authType);
    if (!m) return;
    if (!m.oauth) set('tokenSourceId', null);
    if (!describeAuth(m, kind.direction).connectionChoices) {
      set('access', 'delegated');
      set('clientCredential', 'secret');
    }
    kind.methodChanged(ctx, m);
  }

  function control(f: FieldSpec): ReactNode {
    const value = (values as unknown as Record<string, unknown>)[f.name];
    const change = f.onChange ?? ((v: string | boolean) => set(f.name as keyof V, v as V[keyof V]));
    const a11y = fieldA11y(fieldId(f.name), f.name, !!f.help, !!fieldErrors[f.name], f.describedBy ?? (f.suffix ? `${fieldId(f.name)}-unit` : null));
    if (f.kind === 'select') {
      const options = f.options ?? [];
      return (
        <select {...a11y} value={String(value ?? '')} onChange={(e) => change(e.target.value)}>
          {options.map((o) => (
            <option key={o.value} value={o.value}>
              {o.label}
            </option>
          ))}
          {!options.some((o) => o.value === value) && <option value={String(value ?? '')}>{String(value ?? '')}</option>}
        </select>
      );
    }
    if (f.kind === 'checkbox') {
      return <input {...a11y} type="checkbox" className="checkbox" checked={f.checked ?? value === true} onChange={(e) => change(e.target.checked)} />;
    }
    const input = (
      <input
        {...a11y}
        type={f.kind}
        className={f.kind === 'number' ? 'input-narrow' : undefined}
        {...(f.kind === 'number' && { inputMode: 'numeric' as const, min: f.min, max: f.max, step: 1 })}
        value={String(value ?? '')}
        onChange={(e) => change(e.target.value)}
        placeholder={f.placeholder}
        autoComplete="off"
        spellCheck={false}
      />
    );
    if (!f.suffix) return input;
    return (
      <div className="input-with-suffix">
        {input}
        <span id={`${fieldId(f.name)}-unit`} className="input-suffix">
          {f.suffix}
        </span>
      </div>
    );
  }

  function row(f: FieldSpec): ReactNode {
    return (
      <FormField key={f.name} id={fieldId(f.name)} label={f.label} help={f.help} error={fieldErrors[f.name]} after={f.after}>
        {control(f)}
        {f.extra}
      </FormField>
    );
  }

  const methodChoices: Choice<string>[] = (methods ?? []).map((m) => ({ value: m.authType, label: m.label }));
  const sourceChoices: Choice<string>[] = [
    { value: '', label: 'This server’s own credentials' },
    ...sources.map((s) => ({ value: s.id, label: `${s.name} (${s.username})` })),
  ];
  const sourceName = sources.find((s) => s.id === values.tokenSourceId)?.name ?? (server as { tokenSourceName?: string | null } | null)?.tokenSourceName ?? null;

  // The Account section, from the Authenticate Using option's description.
  const account: FieldSpec[] = [
    { name: 'authType', label: 'Authenticate Using', kind: 'select', options: methodChoices, onChange: (v) => changeMethod(String(v)) },
    { name: 'username', label: 'Username', kind: 'email', help: auth?.username.help, placeholder: auth?.username.placeholder, after: kind.usernameAfter?.(ctx) },
  ];
  if (auth?.sharedMailbox) account.push({ name: 'allowAccountMismatch', label: auth.sharedMailbox.label, kind: 'checkbox', help: auth.sharedMailbox.help });
  if (oauth && (sources.length > 0 || sharing)) {
    account.push({
      name: 'tokenSourceId',
      label: 'Use the connection of',
      kind: 'select',
      options: sharing && !sources.some((s) => s.id === values.tokenSourceId) ? [...sourceChoices, { value: values.tokenSourceId!, label: sourceName ?? 'an outgoing mail server' }] : sourceChoices,
      onChange: (v) => set('tokenSourceId', (v === '' ? null : String(v)) as V['tokenSourceId']),
      help: sharing
        ? undefined
        : 'A connection made on another outgoing mail server: the same mailbox, or any mailbox for an application connection.',
      after: sharing && (
        <div className="shared-connection">
          <p>
            Uses the connection of <Link to={mailServerPath(values.tokenSourceId!)}>{sourceName ?? 'an outgoing mail server'}</Link>
          </p>
          <p className="field-help">Its consent covers this mailbox too: no Client ID, secret or second sign-in needed.</p>
        </div>
      ),
    });
  }
  if (oauth && !sharing && auth?.connectionChoices) {
    account.push({
      name: 'access',
      label: 'Access',
      kind: 'select',
      options: ACCESS_CHOICES,
      after: application && (
        <div className="alert alert-warning application-notice" role="note">
          {APPLICATION_SCOPE_NOTICE}
        </div>
      ),
    });
    account.push({ name: 'clientCredential', label: 'Client Credential', kind: 'select', options: CLIENT_CREDENTIAL_CHOICES });
  }

  // The server's reading of the saved expiry date, hidden while the date is being changed.
  const expiryKey = 'clientSecretExpiresAt' as keyof V;
  const expiry = server && values[expiryKey] === initial[expiryKey] ? server.clientSecretExpiry : null;
  const expiryText = secretExpiryText(expiry);
  const expiryStateId = fieldId('clientSecretExpiresAt-state');
  const expiryField: FieldSpec | null =
    auth?.secretExpiry && !certificate
      ? {
          name: 'clientSecretExpiresAt',
          label: auth.secretExpiry.label,
          kind: 'date',
          help: auth.secretExpiry.help,
          ...(expiryText && {
            describedBy: expiryStateId,
            extra: (
              <p id={expiryStateId} className={secretNeedsAttention(expiry) ? 'secret-expiry secret-expiry-warning' : 'secret-expiry'}>
                {expiryText}
              </p>
            ),
          }),
        }
      : null;
  const sections = kind.sections(ctx);
  const labels: Record<string, string> = { name: kind.nameLabel };
  for (const f of [...account, ...sections.flatMap((s) => s.fields)]) labels[f.name] = f.label;
  if (oauth && !sharing) Object.assign(labels, { clientId: 'Client ID', ...(!certificate && { clientSecret: 'Client Secret' }), ...(oauth.tenant && { tenant: 'Tenant' }) });
  if (expiryField) labels[expiryField.name] = expiryField.label;
  if (auth?.credentials === 'password') labels.password = 'Password';

  return (
    <>
      {header}
      {notice && <Notice kind={notice.kind}>{notice.text}</Notice>}
      {formError && <ErrorAlert problem={formError} showCode={formError.status >= 500} />}
      <ErrorSummary errors={fieldErrors} message={validationMessage} order={Object.keys(labels)} linkLabel={(f) => labels[f]} fieldId={fieldId} />

      {server && kind.panel({ ...ctx, server })}
      {isNew && <GuideIntro methods={methods} />}
      {kind.aboveForm?.(ctx)}

      <form id={kind.formId} className="card mail-server-form" onSubmit={submit} noValidate>
        <FormField title id={fieldId('name')} label={kind.nameLabel} error={fieldErrors.name}>
          <input
            {...fieldA11y(fieldId('name'), 'name', false, !!fieldErrors.name)}
            type="text"
            className="input-title"
            placeholder={kind.namePlaceholder}
            autoComplete="off"
            value={values.name}
            // A long description is cut on a narrow screen: its whole text is the page title and the tooltip.
            title={values.name}
            data-full-value=""
            onChange={(e) => set('name', e.target.value)}
          />
        </FormField>

        <div className="form-columns">
          <fieldset className="form-group form-group-account">
            <legend>Account</legend>
            {account.map(row)}
            {oauth && !sharing && server?.appSourceId && (
              <p className="field-help" data-testid="app-source-note">
                Signs in with the app registration of <Link to={mailServerPath(server.appSourceId)}>the mail server it was made from</Link>: its Client ID
                and its client secret or certificate. Renew the secret or roll the certificate there; that serves every mailbox made from it.
              </p>
            )}
            {oauth && !sharing && !server?.appSourceId && (
              <OAuthCredentialsFields
                idPrefix={kind.idPrefix}
                oauth={oauth}
                values={values}
                onChange={(f, v) => set(f, v as V[typeof f])}
                errors={fieldErrors}
                secretSet={server?.clientSecretSet ?? false}
                withSecret={!certificate}
                tenantHelp={application ? APPLICATION_TENANT_HELP : undefined}
                afterSecret={expiryField && row(expiryField)}
              />
            )}
            {oauth && !sharing && certificate && !server?.appSourceId && (
              <CertificatePanel base={kind.base} server={server} onServerChange={(s) => form.setServer(s as S)} />
            )}
            {auth?.credentials === 'password' && (
              <PasswordField
                id={fieldId('password')}
                value={values.password}
                onChange={(v) => set('password', v)}
                error={fieldErrors.password}
                passwordSet={server?.passwordSet ?? false}
              />
            )}
            {auth?.note && <p className="field-help">{auth.note}</p>}
          </fieldset>

          {sections.map((s) => (
            <fieldset key={s.legend} className="form-group">
              <legend>{s.legend}</legend>
              {s.intro}
              {s.fields.map(row)}
            </fieldset>
          ))}
        </div>
      </form>
    </>
  );
}
