import { useState } from 'react';
import { asApiError, api, ApiError, type WebhookDelivery } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { ListTable, type Column } from './list-view.tsx';
import { Notice } from './notice.tsx';
import { Link } from './router.tsx';
import { incomingMessagePath, webhookPath } from './routes.ts';
import { Spinner } from './spinner.tsx';
import { StatusBadge } from './status-badge.tsx';
import { TimeText } from './time-text.tsx';

interface WebhookDeliveryTableProps {
  deliveries: WebhookDelivery[];
  /** First column: the incoming message (a webhook's log) or the webhook (a message's deliveries). */
  show: 'message' | 'webhook';
  onRedelivered: (delivery: WebhookDelivery) => void;
}

function outcomeText(d: WebhookDelivery): string {
  if (d.state === 'delivered') return 'Delivered.';
  if (d.state === 'failed') return `The delivery failed${d.lastError ? `: ${d.lastError}` : '.'}`;
  return 'Queued for redelivery.';
}

/** Webhook deliveries with their attempts and last answer, each with a Redeliver button. */
export function WebhookDeliveryTable({ deliveries, show, onRedelivered }: WebhookDeliveryTableProps) {
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState<{ kind: 'success' | 'warning'; text: string } | null>(null);

  async function redeliver(d: WebhookDelivery) {
    setBusy(d.id);
    setError(null);
    setNotice(null);
    try {
      const updated = await api.redeliverWebhookDelivery(d.id);
      onRedelivered(updated);
      setNotice({ kind: updated.state === 'failed' ? 'warning' : 'success', text: outcomeText(updated) });
    } catch (err) {
      setError(asApiError(err));
    } finally {
      setBusy(null);
    }
  }

  const columns: Column<WebhookDelivery>[] = [
    {
      key: 'target',
      label: show === 'message' ? 'Message subject' : 'Webhook',
      className: 'delivery-target',
      render: (d) =>
        show === 'message' ? (
          <Link id={`delivery-${d.id}-label`} to={incomingMessagePath(d.inboundMessageId)}>
            {d.subject || '(no subject)'}
          </Link>
        ) : (
          <Link id={`delivery-${d.id}-label`} to={webhookPath(d.webhookId)} className="delivery-url" title={`${d.webhookUrl} — delivery log`}>
            {d.webhookUrl}
          </Link>
        ),
    },
    { key: 'state', label: 'State', render: (d) => <StatusBadge kind="delivery" state={d.state} /> },
    {
      key: 'attempts',
      label: 'Attempts',
      className: 'num',
      render: (d) =>
        d.attemptLog.length > 1 ? (
          <details>
            <summary>{d.attempts}</summary>
            <ol className="attempt-log">
              {d.attemptLog.map((a) => (
                <li key={a.attempt}>
                  {a.redelivery && 'Redelivered: '}
                  {a.outcome === 'delivered' ? 'Delivered' : 'Failed'}
                  {a.status !== null && ` (HTTP ${a.status})`} <TimeText iso={a.at} format="short" />
                </li>
              ))}
            </ol>
          </details>
        ) : (
          d.attempts
        ),
    },
    {
      key: 'status',
      label: 'Last HTTP status',
      priority: 2,
      render: (d) => (d.lastStatus === null ? <span className="muted">—</span> : <code className="mono">{d.lastStatus}</code>),
    },
    {
      key: 'error',
      label: 'Last error',
      className: 'delivery-error',
      render: (d) => (d.lastError ? <span title={d.lastError}>{d.lastError}</span> : <span className="muted">—</span>),
    },
    {
      key: 'next',
      label: 'Next attempt',
      priority: 2,
      className: 'nowrap',
      render: (d) => <TimeText iso={d.state === 'pending' ? d.nextAttemptAt : null} format="short" />,
    },
    { key: 'delivered', label: 'Delivered', className: 'nowrap', render: (d) => <TimeText iso={d.deliveredAt} format="short" /> },
    {
      key: 'actions',
      label: 'Actions',
      hiddenLabel: true,
      className: 'actions',
      render: (d) => (
        <button
          type="button"
          className="btn btn-secondary btn-small"
          onClick={() => redeliver(d)}
          disabled={busy !== null}
          aria-busy={busy === d.id || undefined}
          aria-describedby={`delivery-${d.id}-label`}
        >
          {busy === d.id && <Spinner />}
          Redeliver
        </button>
      ),
    },
  ];

  return (
    <>
      {notice && <Notice kind={notice.kind}>{notice.text}</Notice>}
      {error && <ErrorAlert problem={error} showCode={error.status >= 500} />}
      <ListTable columns={columns} items={deliveries} tableClass="delivery-table" />
    </>
  );
}
