import { useEffect, useState, type ReactNode } from 'react';
import { asApiError, api, ApiError, inboundMessageRawUrl, type InboundMessageDetail, type WebhookDelivery } from './api.ts';
import { DeliveryStateBadge } from './delivery-state-badge.tsx';
import { ErrorAlert } from './error-alert.tsx';
import { formatDateTime } from './format-date-time.ts';
import { formatSize } from './format-size.ts';
import { MessageProblemBadge } from './message-problem-badge.tsx';
import { Notice } from './notice.tsx';
import { Link } from './router.tsx';
import { emailPath, incomingMailServerPath, paths } from './routes.ts';
import { useTitle } from './use-title.ts';
import { WebhookDeliveryTable } from './webhook-delivery-table.tsx';

const REFRESH_MS = 5000;

function Fact({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}

function Addresses({ list }: { list: string[] }) {
  if (list.length === 0) return <span className="muted">—</span>;
  return (
    <ul className="address-list">
      {list.map((a, i) => (
        <li key={`${i}-${a}`}>{a}</li>
      ))}
    </ul>
  );
}

function MessageId({ value }: { value: string | null }) {
  return value ? <code className="mono">{value}</code> : <span className="muted">—</span>;
}

/** One incoming message: headers, attachments, the text (HTML only as escaped source) and its webhook deliveries. */
export function IncomingMessageDetail({ id }: { id: string }) {
  const [message, setMessage] = useState<InboundMessageDetail | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);

  useTitle(message ? message.subject || '(no subject)' : 'Incoming Message');

  useEffect(() => {
    let cancelled = false;
    api.getInboundMessage(id).then(
      (m) => !cancelled && setMessage(m),
      (e: unknown) => !cancelled && setLoadError(asApiError(e)),
    );
    return () => {
      cancelled = true;
    };
  }, [id]);

  // Deliveries on their way change by themselves: read the message again until they settle.
  const pending = message?.deliveries.some((d) => d.state === 'pending') ?? false;
  useEffect(() => {
    if (!pending) return;
    let stopped = false;
    let timer = 0;
    const tick = async () => {
      if (!document.hidden) {
        try {
          const m = await api.getInboundMessage(id);
          if (!stopped) setMessage(m);
        } catch {
          // Keep showing what we have; the next tick tries again.
        }
      }
      if (!stopped) timer = window.setTimeout(tick, REFRESH_MS);
    };
    timer = window.setTimeout(tick, REFRESH_MS);
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [id, pending]);

  function redelivered(d: WebhookDelivery) {
    setMessage((m) => m && { ...m, deliveries: m.deliveries.map((x) => (x.id === d.id ? d : x)) });
    // The message's overall delivery state follows its deliveries.
    api.getInboundMessage(id).then(
      (m) => setMessage(m),
      () => undefined,
    );
  }

  const subject = message ? message.subject || '(no subject)' : null;
  const header = (
    <div className="page-header">
      <div>
        <p className="breadcrumb">
          <Link to={paths.incomingMessages}>Incoming Messages</Link>
          <span aria-hidden="true"> / </span>
          <span>{subject ?? '…'}</span>
        </p>
        <h1>{subject ?? 'Incoming Message'}</h1>
      </div>
      {message && message.rawUrl !== null && (
        <div className="page-actions">
          <a className="btn btn-secondary" href={inboundMessageRawUrl(message.id)} target="_blank" rel="noopener noreferrer">
            View raw
          </a>
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
              ? { message: 'This incoming message does not exist (it may have been deleted).' }
              : loadError
          }
        />
      </>
    );
  }
  if (!message) {
    return (
      <>
        {header}
        <p className="loading">Loading…</p>
      </>
    );
  }

  const m = message;
  return (
    <>
      {header}
      {m.problem && (
        <Notice kind="warning">
          <MessageProblemBadge problem={m.problem} /> This message could not be read whole: {m.problem.message}{' '}
          {m.rawUrl !== null
            ? 'It was imported with what could be read; the message exactly as received is under View raw.'
            : 'It was imported with what could be read; the message itself is still in the mailbox.'}
        </Notice>
      )}
      <div className="card email-detail">
        <section aria-labelledby="incoming-headers">
          <h2 id="incoming-headers">Headers</h2>
          <dl className="facts">
            <Fact label="From">{m.from || <span className="muted">—</span>}</Fact>
            <Fact label="To">
              <Addresses list={m.to} />
            </Fact>
            <Fact label="Cc">
              <Addresses list={m.cc} />
            </Fact>
            <Fact label="Date">{formatDateTime(m.date)}</Fact>
            <Fact label="Subject">{m.subject || <span className="muted">(no subject)</span>}</Fact>
            <Fact label="Message-ID">
              <MessageId value={m.messageId} />
            </Fact>
            <Fact label="In-Reply-To">
              <MessageId value={m.inReplyTo} />
            </Fact>
            <Fact label="References">
              {m.references.length === 0 ? (
                <span className="muted">—</span>
              ) : (
                <ul className="address-list">
                  {m.references.map((r, i) => (
                    <li key={`${i}-${r}`}>
                      <code className="mono">{r}</code>
                    </li>
                  ))}
                </ul>
              )}
            </Fact>
          </dl>
        </section>

        <section aria-labelledby="incoming-received">
          <h2 id="incoming-received">Received</h2>
          <dl className="facts">
            <Fact label="Server">
              <Link to={incomingMailServerPath(m.serverId)}>{m.serverName || m.serverId}</Link>
            </Fact>
            <Fact label="Folder">{m.folder}</Fact>
            <Fact label="Received">{formatDateTime(m.receivedAt)}</Fact>
            <Fact label="Size">{formatSize(m.size)}</Fact>
            <Fact label="Webhook delivery">
              <DeliveryStateBadge state={m.delivery.state} />
              {pending && <span className="muted refresh-note"> Refreshing every 5 seconds</span>}
            </Fact>
            {m.inReplyToOutboxId && (
              <Fact label="Reply to">
                <Link to={emailPath(m.inReplyToOutboxId)}>An email sent through Mailroom</Link>
              </Fact>
            )}
          </dl>
        </section>
      </div>

      <section className="card" aria-labelledby="incoming-attachments">
        <h2 id="incoming-attachments" className="card-heading">
          Attachments
        </h2>
        {m.attachments.length === 0 ? (
          <p className="muted">None</p>
        ) : (
          <table className="list-table attachment-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Type</th>
                <th scope="col" className="num">
                  Size
                </th>
              </tr>
            </thead>
            <tbody>
              {m.attachments.map((a, i) => (
                <tr key={`${i}-${a.filename}`}>
                  <td>
                    {a.filename || <span className="muted">(no name)</span>}
                    {a.originalFilename !== undefined && (
                      <span className="muted" title={`Named by the sender: ${JSON.stringify(a.originalFilename)}`}>
                        {' '}
                        (renamed: the sender's name was not safe)
                      </span>
                    )}
                  </td>
                  <td>
                    <code className="mono">{a.contentType}</code>
                  </td>
                  <td className="num nowrap">{formatSize(a.size)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>

      <section className="card" aria-labelledby="incoming-body">
        <h2 id="incoming-body" className="card-heading">
          Text
        </h2>
        {m.truncated && (
          <p className="muted">
            Only the beginning of this message's {m.textTruncated && m.htmlTruncated ? 'text and HTML' : m.textTruncated ? 'text' : 'HTML'} is shown (1 MB).
            {m.rawUrl !== null && ' The whole message is under View raw.'}
          </p>
        )}
        {m.text !== null && m.text !== '' ? (
          <pre className="message-body">{m.text}</pre>
        ) : (
          <p className="muted">This message has no plain-text part.</p>
        )}
        {m.html !== null && m.html !== '' && (
          // Shown as escaped source only: the HTML of a received message is never rendered.
          <details className="html-source">
            <summary>HTML source</summary>
            <pre className="message-body">{m.html}</pre>
          </details>
        )}
      </section>

      <section aria-labelledby="incoming-deliveries">
        <h2 id="incoming-deliveries" className="section-heading">
          Webhook deliveries
        </h2>
        {m.deliveries.length === 0 ? (
          <div className="card">
            <p className="muted">
              None: no <Link to={paths.webhooks}>webhook</Link> was active when this message arrived.
            </p>
          </div>
        ) : (
          <WebhookDeliveryTable deliveries={m.deliveries} show="webhook" onRedelivered={redelivered} />
        )}
      </section>
    </>
  );
}
