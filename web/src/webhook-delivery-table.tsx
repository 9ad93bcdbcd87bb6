import { useState } from 'react';
import { asApiError, api, ApiError, type WebhookDelivery } from './api.ts';
import { DeliveryStateBadge } from './delivery-state-badge.tsx';
import { ErrorAlert } from './error-alert.tsx';
import { formatDateTime, formatDateTimeShort } from './format-date-time.ts';
import { Notice } from './notice.tsx';
import { Link } from './router.tsx';
import { incomingMessagePath, webhookPath } from './routes.ts';
import { Spinner } from './spinner.tsx';

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

function When({ iso }: { iso: string | null }) {
  if (!iso) return <span className="muted">—</span>;
  return <span title={formatDateTime(iso)}>{formatDateTimeShort(iso)}</span>;
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

  return (
    <>
      {notice && <Notice kind={notice.kind}>{notice.text}</Notice>}
      {error && <ErrorAlert problem={error} showCode={error.status >= 500} />}
      <div className="card table-card">
        <table className="list-table delivery-table">
          <thead>
            <tr>
              <th scope="col">{show === 'message' ? 'Message subject' : 'Webhook'}</th>
              <th scope="col">State</th>
              <th scope="col" className="num">
                Attempts
              </th>
              <th scope="col">Last HTTP status</th>
              <th scope="col">Last error</th>
              <th scope="col">Next attempt</th>
              <th scope="col">Delivered</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {deliveries.map((d) => {
              const labelId = `delivery-${d.id}-label`;
              return (
                <tr key={d.id}>
                  <td id={labelId} className="delivery-target">
                    {show === 'message' ? (
                      <Link to={incomingMessagePath(d.inboundMessageId)}>{d.subject || '(no subject)'}</Link>
                    ) : (
                      <Link to={webhookPath(d.webhookId)} className="delivery-url" title={`${d.webhookUrl} — delivery log`}>
                        {d.webhookUrl}
                      </Link>
                    )}
                  </td>
                  <td>
                    <DeliveryStateBadge state={d.state} />
                  </td>
                  <td className="num">
                    {d.attemptLog.length > 1 ? (
                      <details>
                        <summary>{d.attempts}</summary>
                        <ol className="attempt-log">
                          {d.attemptLog.map((a) => (
                            <li key={a.attempt}>
                              {a.redelivery && 'Redelivered: '}
                              {a.outcome === 'delivered' ? 'Delivered' : 'Failed'}
                              {a.status !== null && ` (HTTP ${a.status})`} <When iso={a.at} />
                            </li>
                          ))}
                        </ol>
                      </details>
                    ) : (
                      d.attempts
                    )}
                  </td>
                  <td>{d.lastStatus === null ? <span className="muted">—</span> : <code className="mono">{d.lastStatus}</code>}</td>
                  <td className="delivery-error">
                    {d.lastError ? (
                      <span title={d.lastError}>{d.lastError}</span>
                    ) : (
                      <span className="muted">—</span>
                    )}
                  </td>
                  <td className="nowrap">
                    <When iso={d.state === 'pending' ? d.nextAttemptAt : null} />
                  </td>
                  <td className="nowrap">
                    <When iso={d.deliveredAt} />
                  </td>
                  <td className="actions">
                    <button
                      type="button"
                      className="btn btn-secondary btn-small"
                      onClick={() => redeliver(d)}
                      disabled={busy !== null}
                      aria-busy={busy === d.id || undefined}
                      aria-describedby={labelId}
                    >
                      {busy === d.id && <Spinner />}
                      Redeliver
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </>
  );
}
