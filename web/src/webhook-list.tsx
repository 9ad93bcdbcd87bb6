import { useState, type ReactNode } from 'react';
import { asApiError, api, ApiError, type CreatedWebhook, type Webhook } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { fieldA11y } from './field-a11y.ts';
import { FormField } from './form-field.tsx';
import { ListView, type Column } from './list-view.tsx';
import { Notice } from './notice.tsx';
import { Link, useFlashNotice } from './router.tsx';
import { webhookPath } from './routes.ts';
import { ShownOnceSecret } from './shown-once-secret.tsx';
import { Spinner } from './spinner.tsx';
import { useItems } from './use-items.ts';
import { useSecretCreate } from './use-secret-create.ts';
import { StatusBadge } from './status-badge.tsx';
import { TimeText } from './time-text.tsx';
import { WebhookSignatureExample } from './webhook-signature-example.tsx';

type FieldName = 'url' | 'description';
const LABELS: Record<FieldName, string> = { url: 'URL', description: 'Description' };
const HELP: Record<FieldName, string> = {
  url: 'Your application’s endpoint: each incoming message is POSTed to it as JSON, e.g. https://erp.example.com/mailroom/inbound.',
  description: 'Optional, e.g. ERP production.',
};

const fieldId = (f: string) => `webhook-${f}`;
const SECRET_ID = 'webhook-secret';

/** The list entry for a webhook just created: everything but the secret. */
function withoutSecret(created: CreatedWebhook): Webhook {
  const { id, url, description, active, createdAt } = created;
  return { id, url, description, active, createdAt };
}

/** Settings › Technical › Webhooks: where incoming messages are posted, with a signing secret each. */
export function WebhookList() {
  const [flash] = useFlashNotice();
  const { items, error: loadError, setItems, reload: load } = useItems(api.listWebhooks);

  const [url, setUrl] = useState('');
  const [description, setDescription] = useState('');
  const [busy, setBusy] = useState<string | null>(null);
  const [rowError, setRowError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState<string | null>(flash);

  const { creating, fieldErrors, formError, created, setCreated, create } = useSecretCreate({
    labels: LABELS,
    fieldId,
    required: { field: 'url', value: url, message: 'Enter the URL that receives the messages, e.g. https://erp.example.com/mailroom/inbound' },
    onStart: () => {
      setNotice(null);
      setRowError(null);
    },
    send: () => {
      const input: { url: string; description?: string } = { url: url.trim() };
      if (description.trim() !== '') input.description = description.trim();
      return api.createWebhook(input);
    },
    onCreated: (hook) => {
      setUrl('');
      setDescription('');
      const listed = withoutSecret(hook);
      setItems((list) => (list ? [listed, ...list.filter((w) => w.id !== hook.id)] : [listed]));
      void load();
    },
  });

  async function toggle(w: Webhook) {
    setBusy(w.id);
    setRowError(null);
    setNotice(null);
    try {
      const updated = await api.updateWebhook(w.id, { active: !w.active });
      setItems((list) => (list ? list.map((x) => (x.id === w.id ? updated : x)) : list));
      setNotice(
        updated.active
          ? `Webhook ${updated.url} enabled: new incoming messages are posted to it.`
          : `Webhook ${updated.url} disabled: no new messages are posted to it until it is enabled again.`,
      );
    } catch (err) {
      setRowError(asApiError(err));
    } finally {
      setBusy(null);
    }
  }

  async function remove(w: Webhook) {
    if (!window.confirm(`Delete the webhook ${w.url}? Incoming messages are no longer posted to it. This cannot be undone.`)) {
      return;
    }
    setBusy(w.id);
    setRowError(null);
    setNotice(null);
    try {
      await api.deleteWebhook(w.id);
      if (created?.id === w.id) setCreated(null);
      setItems((list) => (list ? list.filter((x) => x.id !== w.id) : list));
      setNotice(`Webhook ${w.url} deleted.`);
      await load();
    } catch (err) {
      setRowError(asApiError(err));
    } finally {
      setBusy(null);
    }
  }

  const a11y = (f: FieldName) => fieldA11y(fieldId(f), f, true, !!fieldErrors[f]);
  const field = (f: FieldName, control: ReactNode) => (
    <FormField id={fieldId(f)} label={LABELS[f]} help={HELP[f]} error={fieldErrors[f]}>
      {control}
    </FormField>
  );

  const columns: Column<Webhook>[] = [
    {
      key: 'url',
      label: 'URL',
      className: 'webhook-url',
      render: (w) => (
        <Link id={`webhook-row-${w.id}`} to={webhookPath(w.id)} title={`${w.url} — delivery log`}>
          {w.url}
        </Link>
      ),
    },
    { key: 'description', label: 'Description', render: (w) => w.description ?? <span className="muted">—</span> },
    { key: 'active', label: 'Active', render: (w) => <StatusBadge kind="active" state={w.active ? 'active' : 'disabled'} /> },
    { key: 'created', label: 'Created', className: 'nowrap', priority: 2, render: (w) => <TimeText iso={w.createdAt} format="short" /> },
    {
      key: 'actions',
      label: 'Actions',
      hiddenLabel: true,
      className: 'actions',
      render: (w) => (
        <div className="row-actions">
          <Link to={webhookPath(w.id)} className="btn btn-secondary btn-small" aria-describedby={`webhook-row-${w.id}`}>
            Delivery log
          </Link>
          <button
            type="button"
            className="btn btn-secondary btn-small"
            onClick={() => toggle(w)}
            disabled={busy !== null}
            aria-busy={busy === w.id || undefined}
            aria-describedby={`webhook-row-${w.id}`}
          >
            {w.active ? 'Disable' : 'Enable'}
          </button>
          <button
            type="button"
            className="btn btn-danger btn-small"
            onClick={() => remove(w)}
            disabled={busy !== null}
            aria-describedby={`webhook-row-${w.id}`}
          >
            Delete
          </button>
        </div>
      ),
    },
  ];

  return (
    <ListView
      title="Webhooks"
      intro={
        <>
            {notice && <Notice>{notice}</Notice>}
            {rowError && <ErrorAlert problem={rowError} showCode={rowError.status >= 500} />}

            <section className="card api-key-create" aria-labelledby="webhook-create-heading">
              <h2 id="webhook-create-heading">Add a webhook</h2>
              {formError && <ErrorAlert problem={formError} showCode={formError.status >= 500} />}
              <form className="api-key-form webhook-form" onSubmit={create} noValidate>
                {field(
                  'url',
                  <input
                    {...a11y('url')}
                    type="url"
                    inputMode="url"
                    autoComplete="off"
                    spellCheck={false}
                    placeholder="https://erp.example.com/mailroom/inbound"
                    value={url}
                    onChange={(e) => setUrl(e.target.value)}
                  />,
                )}
                {field(
                  'description',
                  <input
                    {...a11y('description')}
                    type="text"
                    autoComplete="off"
                    maxLength={200}
                    value={description}
                    onChange={(e) => setDescription(e.target.value)}
                  />,
                )}
                <div className="field field-actions">
                  <div className="field-control">
                    <button type="submit" className="btn btn-primary" disabled={creating} aria-busy={creating || undefined}>
                      {creating && <Spinner />}
                      Add webhook
                    </button>
                  </div>
                </div>
              </form>

              {created ? (
                <ShownOnceSecret
                  className="webhook-secret"
                  message={<>Webhook {created.url} added.</>}
                  inputId={SECRET_ID}
                  label="Signing secret"
                  secret={created.secret}
                  onDone={() => setCreated(null)}
                >
                  <WebhookSignatureExample />
                </ShownOnceSecret>
              ) : (
                <details className="signature-details">
                  <summary>How your application checks that a delivery comes from Mailroom</summary>
                  <WebhookSignatureExample />
                </details>
              )}
            </section>
        </>
      }
      columns={columns}
      source={{ items, error: loadError }}
      rowClass={(w) => (w.active ? undefined : 'revoked')}
      noun={['webhook', 'webhooks']}
      empty={
        <>
          <p className="empty-title">No webhooks yet.</p>
          <p className="muted">Add one to have every incoming message posted to your application.</p>
        </>
      }
    />
  );
}
