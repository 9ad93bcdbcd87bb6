import { useCallback, useEffect, useState } from 'react';
import { asApiError, api, ApiError, type Webhook, type WebhookDelivery } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { formatDateTime } from './format-date-time.ts';
import { Notice } from './notice.tsx';
import { Link } from './router.tsx';
import { paths } from './routes.ts';
import { Spinner } from './spinner.tsx';
import { usePagedList } from './use-paged-list.ts';
import { useTitle } from './use-title.ts';
import { WebhookDeliveryTable } from './webhook-delivery-table.tsx';

const anyPending = (items: WebhookDelivery[]) => items.some((d) => d.state === 'pending');

/** A webhook's delivery log, newest first, with Redeliver per delivery. */
export function WebhookDetail({ id }: { id: string }) {
  const [webhook, setWebhook] = useState<Webhook | null>(null);
  const [webhookError, setWebhookError] = useState<ApiError | null>(null);

  const fetchPage = useCallback((cursor: string | null) => api.listWebhookDeliveries(id, cursor), [id]);
  const list = usePagedList(fetchPage, id, anyPending);
  const items = list.items;
  const pending = items ? anyPending(items) : false;

  useTitle(webhook ? `Delivery log · ${webhook.url}` : 'Delivery log');

  useEffect(() => {
    let cancelled = false;
    api.listWebhooks().then(
      (r) => {
        if (cancelled) return;
        const found = r.items.find((w) => w.id === id);
        if (found) setWebhook(found);
        else setWebhookError(new ApiError(404, { message: 'This webhook does not exist (it may have been deleted).' }));
      },
      (e: unknown) => !cancelled && setWebhookError(asApiError(e)),
    );
    return () => {
      cancelled = true;
    };
  }, [id]);

  // Deliveries of a deleted webhook may still be listed: only a missing webhook with no log is "not found".
  const notFound = webhookError?.status === 404 && (list.error?.status === 404 || (items !== null && items.length === 0));

  const header = (
    <div className="page-header">
      <div>
        <p className="breadcrumb">
          <Link to={paths.webhooks}>Webhooks</Link>
          <span aria-hidden="true"> / </span>
          <span>{webhook?.url ?? '…'}</span>
        </p>
        <h1>Delivery log</h1>
      </div>
    </div>
  );

  if (notFound) {
    return (
      <>
        {header}
        <ErrorAlert problem={{ message: 'This webhook does not exist (it may have been deleted).' }} />
      </>
    );
  }

  return (
    <>
      {header}
      {webhook && (
        <div className="card webhook-summary">
          <dl className="facts">
            <div>
              <dt>URL</dt>
              <dd>
                <code className="mono">{webhook.url}</code>
              </dd>
            </div>
            <div>
              <dt>Description</dt>
              <dd>{webhook.description ?? <span className="muted">—</span>}</dd>
            </div>
            <div>
              <dt>Status</dt>
              <dd>
                {webhook.active ? (
                  <span className="badge badge-active">Active</span>
                ) : (
                  <span className="badge badge-revoked">Disabled</span>
                )}
              </dd>
            </div>
            <div>
              <dt>Created</dt>
              <dd>{formatDateTime(webhook.createdAt)}</dd>
            </div>
          </dl>
        </div>
      )}
      {webhookError && webhookError.status !== 404 && <ErrorAlert problem={webhookError} />}

      {list.error && <ErrorAlert problem={list.error} />}
      {list.refreshError && !list.error && (
        <Notice kind="warning">
          Automatic refresh failed: {list.refreshError.message} The log may be out of date.
        </Notice>
      )}
      {!items && !list.error && <p className="loading">Loading…</p>}
      {items && items.length === 0 && (
        <div className="card empty-state">
          <p className="empty-title">No deliveries yet.</p>
          <p className="muted">Each message fetched by an incoming mail server while this webhook is active is posted to it and listed here.</p>
        </div>
      )}
      {items && items.length > 0 && (
        <>
          {pending && <p className="muted refresh-line">Refreshing every 5 seconds while deliveries are pending.</p>}
          <WebhookDeliveryTable deliveries={items} show="message" onRedelivered={list.replace} />
          {list.moreError && <ErrorAlert problem={list.moreError} />}
          <div className="list-footer">
            <span className="muted">
              {items.length} {items.length === 1 ? 'delivery' : 'deliveries'}
              {list.nextCursor ? ' shown' : ''}
            </span>
            {list.nextCursor && (
              <button
                type="button"
                className="btn btn-secondary"
                onClick={list.loadMore}
                disabled={list.loadingMore}
                aria-busy={list.loadingMore || undefined}
              >
                {list.loadingMore && <Spinner />}
                Load more
              </button>
            )}
          </div>
        </>
      )}
    </>
  );
}
