import { useCallback } from 'react';
import { api, ApiError, type WebhookDelivery } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { ListFooter } from './list-view.tsx';
import { Notice } from './notice.tsx';
import { Fact, Facts, RecordLayout } from './record-layout.tsx';
import { paths } from './routes.ts';
import { StatusBadge } from './status-badge.tsx';
import { TimeText } from './time-text.tsx';
import { useItems } from './use-items.ts';
import { usePagedList } from './use-paged-list.ts';
import { WebhookDeliveryTable } from './webhook-delivery-table.tsx';

const anyPending = (items: WebhookDelivery[]) => items.some((d) => d.state === 'pending');
const NOT_FOUND = 'This webhook does not exist (it may have been deleted).';

/** A webhook's delivery log, newest first, with Redeliver per delivery. */
export function WebhookDetail({ id }: { id: string }) {
  const hooks = useItems(api.listWebhooks);
  const webhook = hooks.items?.find((w) => w.id === id) ?? null;
  const webhookError = hooks.error ?? (hooks.items && !webhook ? new ApiError(404, { message: NOT_FOUND }) : null);

  const fetchPage = useCallback((cursor: string | null) => api.listWebhookDeliveries(id, cursor), [id]);
  const list = usePagedList(fetchPage, id, anyPending);
  const items = list.items;
  const pending = items ? anyPending(items) : false;

  // Deliveries of a deleted webhook may still be listed: only a missing webhook with no log is "not found".
  const notFound = webhookError?.status === 404 && (list.error?.status === 404 || (items !== null && items.length === 0));

  return (
    <RecordLayout
      title="Delivery log"
      fallbackTitle="Delivery log"
      crumb={webhook?.url ?? null}
      crumbs={[{ label: 'Webhooks', to: paths.webhooks }]}
      status={webhook && <StatusBadge kind="active" state={webhook.active ? 'active' : 'disabled'} />}
      error={notFound ? webhookError : null}
      notFound={NOT_FOUND}
      loading={false}
    >
      {webhook && (
        <div className="card webhook-summary">
          <Facts>
            <Fact label="URL">
              <code className="mono">{webhook.url}</code>
            </Fact>
            <Fact label="Description">{webhook.description}</Fact>
            <Fact label="Status">
              <StatusBadge kind="active" state={webhook.active ? 'active' : 'disabled'} />
            </Fact>
            <Fact label="Created">
              <TimeText iso={webhook.createdAt} />
            </Fact>
          </Facts>
        </div>
      )}
      {webhookError && webhookError.status !== 404 && <ErrorAlert problem={webhookError} />}

      {list.error && <ErrorAlert problem={list.error} />}
      {list.refreshError && !list.error && (
        <Notice kind="warning">Automatic refresh failed: {list.refreshError.message} The log may be out of date.</Notice>
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
          <ListFooter source={list} count={items.length} noun={['delivery', 'deliveries']} />
        </>
      )}
    </RecordLayout>
  );
}
