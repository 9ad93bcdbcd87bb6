import { useState, type ReactNode } from 'react';
import { asApiError, api, ApiError, type ApiKey, type ApiKeyScope, type CreatedApiKey } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { fieldA11y } from './field-a11y.ts';
import { FormField } from './form-field.tsx';
import { formatDateTime } from './format-date-time.ts';
import { ListView, type Column } from './list-view.tsx';
import { Notice } from './notice.tsx';
import { ShownOnceSecret } from './shown-once-secret.tsx';
import { Spinner } from './spinner.tsx';
import { useItems } from './use-items.ts';
import { useSecretCreate } from './use-secret-create.ts';
import { StatusBadge } from './status-badge.tsx';
import { TimeText } from './time-text.tsx';

const SCOPES: { value: ApiKeyScope; label: string; short: string }[] = [
  { value: 'send', label: 'Send — queue messages, and see, retry or cancel the ones this key queued', short: 'Send' },
  { value: 'outbox:read', label: 'Read outgoing messages — every application\'s', short: 'Read outgoing' },
  { value: 'inbound:read', label: 'Read received mail — incoming messages and their raw MIME', short: 'Read received' },
  { value: 'connect', label: 'Connect links — give people links to connect their own mailbox', short: 'Connect links' },
  { value: 'admin', label: 'Admin — everything, settings and keys included', short: 'Admin' },
];

function scopeLabel(scope: ApiKeyScope): string {
  return SCOPES.find((s) => s.value === scope)?.short ?? scope;
}

type FieldName = 'name' | 'scopes' | 'mailServerIds' | 'incomingServerIds';
const LABELS: Record<FieldName, string> = { name: 'Name', scopes: 'Scopes', mailServerIds: 'Outgoing servers', incomingServerIds: 'Incoming servers' };
const HELP: Record<FieldName, string> = {
  name: 'The application using the key, e.g. ERP production.',
  scopes: 'Give each application only what it needs: a scanner or a reporting tool that sends mail needs Send alone.',
  mailServerIds: 'The servers this key may send through and read the messages of. None ticked: every outgoing server.',
  incomingServerIds: 'The mailboxes whose received mail this key may read. None ticked: every incoming server.',
};

const fieldId = (f: string) => `api-key-${f}`;
/** One checkbox of a group: the group's first one carries the group's id (an error focuses it). */
const optionId = (f: FieldName, i: number, value: string) => (i === 0 ? fieldId(f) : `${fieldId(f)}-${value.replace(/[^\w-]/g, '-')}`);
const NEW_KEY_ID = 'api-key-new';

/** The list entry for a key just created: everything but the key itself. */
function withoutSecret(created: CreatedApiKey): ApiKey {
  const { id, name, scopes, mailServerIds, incomingServerIds, prefix, createdAt, lastUsedAt, revokedAt } = created;
  return { id, name, scopes, mailServerIds, incomingServerIds, prefix, createdAt, lastUsedAt, revokedAt };
}

const toggled = <T,>(list: T[], value: T, on: boolean) => (on ? [...list.filter((v) => v !== value), value] : list.filter((v) => v !== value));

/** "All" or the servers' names (an id when the server was deleted since). */
function serverNames(ids: string[] | null, names: Map<string, string>): string {
  return ids === null ? 'All' : ids.map((id) => names.get(id) ?? `deleted server ${id.slice(0, 8)}`).join(', ');
}

/** Settings › Technical › API Keys: keys for applications using the API, created and revoked here. */
export function ApiKeyList() {
  const { items, error: loadError, setItems, reload: load } = useItems(api.listApiKeys);
  const { items: outgoing } = useItems(api.listMailServers);
  const { items: incoming } = useItems(api.listIncomingServers);
  const names = new Map([...(outgoing ?? []), ...(incoming ?? [])].map((s) => [s.id, s.name]));

  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<ApiKeyScope[]>(['send']);
  const [mailServerIds, setMailServerIds] = useState<string[]>([]);
  const [incomingServerIds, setIncomingServerIds] = useState<string[]>([]);
  const isAdmin = scopes.includes('admin');
  // Server limits apply to the scopes that use them; an admin key cannot be limited.
  const limitsOutgoing = !isAdmin && (scopes.includes('send') || scopes.includes('outbox:read'));
  const limitsIncoming = !isAdmin && scopes.includes('inbound:read');
  const [revoking, setRevoking] = useState<string | null>(null);
  const [revokeError, setRevokeError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const { creating, fieldErrors, formError, created, setCreated, create } = useSecretCreate({
    labels: LABELS,
    fieldId,
    required: { field: 'name', value: name, message: 'Enter a name, e.g. the application using the key' },
    onStart: () => {
      setNotice(null);
      setRevokeError(null);
    },
    send: () =>
      api.createApiKey({
        name: name.trim(),
        scopes,
        ...(limitsOutgoing && mailServerIds.length > 0 && { mailServerIds }),
        ...(limitsIncoming && incomingServerIds.length > 0 && { incomingServerIds }),
      }),
    onCreated: (key) => {
      setName('');
      setScopes(['send']);
      setMailServerIds([]);
      setIncomingServerIds([]);
      const listed = withoutSecret(key);
      setItems((list) => (list ? [listed, ...list.filter((k) => k.id !== key.id)] : [listed]));
      void load();
    },
  });

  async function revoke(key: ApiKey) {
    if (
      !window.confirm(
        `Revoke the API key “${key.name}”? Applications using it stop working immediately. This cannot be undone.`,
      )
    ) {
      return;
    }
    setRevoking(key.id);
    setRevokeError(null);
    setNotice(null);
    try {
      await api.revokeApiKey(key.id);
      if (created?.id === key.id) setCreated(null);
      setNotice(`API key “${key.name}” revoked.`);
      setItems((list) =>
        list ? list.map((k) => (k.id === key.id ? { ...k, revokedAt: new Date().toISOString() } : k)) : list,
      );
      await load();
    } catch (err) {
      setRevokeError(asApiError(err));
    } finally {
      setRevoking(null);
    }
  }

  const a11y = (f: FieldName) => fieldA11y(fieldId(f), f, true, !!fieldErrors[f]);
  const field = (f: FieldName, control: ReactNode) => (
    <FormField id={fieldId(f)} label={LABELS[f]} help={HELP[f]} error={fieldErrors[f]}>
      {control}
    </FormField>
  );
  /** A group of checkboxes, each with its own <label for>; the group is named by its label. */
  const checkboxes = <T extends string>(f: FieldName, options: { value: T; label: string }[], checked: T[], set: (v: T[]) => void) => (
    <FormField id={`${fieldId(f)}-group`} label={<span id={`${fieldId(f)}-label`}>{LABELS[f]}</span>} plainLabel help={HELP[f]} error={fieldErrors[f]}>
      <div role="group" aria-labelledby={`${fieldId(f)}-label`} aria-describedby={`${fieldId(f)}-group-help`}>
        {options.map((o, i) => (
          <div className="checkbox-line" key={o.value}>
            <input
              id={optionId(f, i, o.value)}
              name={f}
              type="checkbox"
              className="checkbox"
              aria-invalid={fieldErrors[f] ? true : undefined}
              aria-describedby={fieldErrors[f] ? `${fieldId(f)}-group-error` : undefined}
              checked={checked.includes(o.value)}
              onChange={(e) => set(toggled(checked, o.value, e.target.checked))}
            />
            <label htmlFor={optionId(f, i, o.value)}>{o.label}</label>
          </div>
        ))}
      </div>
    </FormField>
  );

  const columns: Column<ApiKey>[] = [
    { key: 'name', label: 'Name', className: 'strong', render: (k) => <span id={`api-key-row-${k.id}`}>{k.name}</span> },
    { key: 'scopes', label: 'Scopes', render: (k) => (k.scopes.length ? k.scopes.map(scopeLabel).join(', ') : <span className="muted">None</span>) },
    {
      key: 'servers',
      label: 'Servers',
      render: (k) =>
        k.scopes.includes('admin') ? (
          <span className="muted">All</span>
        ) : (
          <>
            {(k.scopes.includes('send') || k.scopes.includes('outbox:read')) && <div>Outgoing: {serverNames(k.mailServerIds, names)}</div>}
            {k.scopes.includes('inbound:read') && <div>Incoming: {serverNames(k.incomingServerIds, names)}</div>}
          </>
        ),
    },
    { key: 'key', label: 'Key', priority: 2, render: (k) => <code className="mono">{k.prefix}…</code> },
    { key: 'created', label: 'Created', className: 'nowrap', priority: 2, render: (k) => <TimeText iso={k.createdAt} format="short" /> },
    { key: 'used', label: 'Last used', className: 'nowrap', render: (k) => <TimeText iso={k.lastUsedAt} format="relative" empty="Never" /> },
    {
      key: 'status',
      label: 'Status',
      render: (k) =>
        k.revokedAt ? (
          <StatusBadge kind="active" state="revoked" title={`Revoked ${formatDateTime(k.revokedAt)}`} />
        ) : (
          <StatusBadge kind="active" state="active" />
        ),
    },
    {
      key: 'actions',
      label: 'Actions',
      hiddenLabel: true,
      className: 'actions',
      render: (k) =>
        !k.revokedAt && (
          <button
            type="button"
            className="btn btn-danger btn-small"
            onClick={() => revoke(k)}
            disabled={revoking !== null}
            aria-busy={revoking === k.id || undefined}
            aria-describedby={`api-key-row-${k.id}`}
          >
            {revoking === k.id && <Spinner />}
            Revoke
          </button>
        ),
    },
  ];

  return (
    <ListView
      title="API Keys"
      intro={
        <>
            {notice && <Notice>{notice}</Notice>}
            {revokeError && <ErrorAlert problem={revokeError} />}

            <section className="card api-key-create" aria-labelledby="api-key-create-heading">
              <h2 id="api-key-create-heading">Create an API key</h2>
              {formError && <ErrorAlert problem={formError} showCode={formError.status >= 500} />}
              <form className="api-key-form" onSubmit={create} noValidate>
                {field(
                  'name',
                  <input
                    {...a11y('name')}
                    type="text"
                    autoComplete="off"
                    placeholder="e.g. ERP production"
                    maxLength={200}
                    value={name}
                    onChange={(e) => setName(e.target.value)}
                  />,
                )}
                {checkboxes('scopes', SCOPES, scopes, setScopes)}
                {limitsOutgoing &&
                  outgoing &&
                  outgoing.length > 0 &&
                  checkboxes(
                    'mailServerIds',
                    outgoing.map((s) => ({ value: s.id, label: s.name })),
                    mailServerIds,
                    setMailServerIds,
                  )}
                {limitsIncoming &&
                  incoming &&
                  incoming.length > 0 &&
                  checkboxes(
                    'incomingServerIds',
                    incoming.map((s) => ({ value: s.id, label: s.name })),
                    incomingServerIds,
                    setIncomingServerIds,
                  )}
                <div className="field field-actions">
                  <div className="field-control">
                    <button type="submit" className="btn btn-primary" disabled={creating} aria-busy={creating || undefined}>
                      {creating && <Spinner />}
                      Create API key
                    </button>
                  </div>
                </div>
              </form>

              {created && (
                <ShownOnceSecret
                  message={<>API key “{created.name}” created.</>}
                  inputId={NEW_KEY_ID}
                  label="New API key"
                  secret={created.key}
                  onDone={() => setCreated(null)}
                />
              )}
            </section>
        </>
      }
      columns={columns}
      source={{ items, error: loadError }}
      rowClass={(k) => (k.revokedAt ? 'revoked' : undefined)}
      noun={['key', 'keys']}
      empty={
        <>
          <p className="empty-title">No API keys yet.</p>
          <p className="muted">Create one key per application that sends mail through Mailroom.</p>
        </>
      }
    />
  );
}
