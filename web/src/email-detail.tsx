import { useEffect, useState, type ReactNode } from 'react';
import { asApiError, api, ApiError, type DeliveryReport, type Message, type MessageRecipient, type MessageState } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { formatDateTime } from './format-date-time.ts';
import { formatSize } from './format-size.ts';
import { isPending, MessageStateBadge, OUTCOME_LABELS, OutcomeBadge } from './message-state-badge.tsx';
import { Notice } from './notice.tsx';
import { receivedViaText } from './received-via-text.ts';
import { Link } from './router.tsx';
import { mailServerPath, paths } from './routes.ts';
import { Spinner } from './spinner.tsx';
import { useTitle } from './use-title.ts';

const REFRESH_MS = 5000;

const CAN_RETRY: MessageState[] = ['failed', 'held', 'cancelled'];
const CAN_CANCEL: MessageState[] = ['queued', 'held', 'failed'];

type Action = 'retry' | 'cancel';

function Fact({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}

const KIND_TEXT: Record<DeliveryReport['kind'], string> = {
  delivery_status: 'Delivery report',
  auto_reply: 'Automatic reply',
  read_receipt: 'Read receipt',
};

/** Each recipient's outcome after the 250, from the reports that came back to the sending mailbox. */
function AfterSending({ recipients, reports }: { recipients: MessageRecipient[]; reports: DeliveryReport[] }) {
  return (
    <section aria-labelledby="email-after">
      <h2 id="email-after">After sending</h2>
      <table className="list-table">
        <thead>
          <tr>
            <th scope="col">Recipient</th>
            <th scope="col">Outcome</th>
            <th scope="col">Status</th>
            <th scope="col">Reported</th>
          </tr>
        </thead>
        <tbody>
          {recipients.map((r) => (
            <tr key={r.address}>
              <td className="mono">{r.address}</td>
              <td>{r.state === 'sent' ? <span className="muted">Sent, nothing came back</span> : <OutcomeBadge outcome={r.state} />}</td>
              <td>{r.status ? <code className="mono">{r.status}</code> : <span className="muted">—</span>}</td>
              <td className="nowrap">{formatDateTime(r.reportedAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {reports.map((rep) => (
        <div className="report-card" key={rep.id}>
          <h3>
            {KIND_TEXT[rep.kind]}
            {rep.reportingMta && <span className="muted"> from {rep.reportingMta}</span>}
            <span className="muted"> — {formatDateTime(rep.reportedAt)}</span>
          </h3>
          {rep.kind === 'auto_reply' && <p>{rep.from ?? 'The recipient'} answered automatically{rep.subject ? `: “${rep.subject}”` : '.'}</p>}
          {rep.recipients.map((x) => (
            <div key={x.address} className="report-explanation">
              <p>
                <strong>{x.address}</strong>: {x.action === 'failed' ? OUTCOME_LABELS.bounced : x.action === 'delayed' ? OUTCOME_LABELS.delayed : x.action}. {x.explanation.cause}
              </p>
              {x.explanation.fix && <p className="muted">{x.explanation.fix}</p>}
              {x.diagnostic && (
                <details className="evidence" open>
                  <summary>Remote server's answer</summary>
                  <pre>{[x.status, x.diagnostic].filter(Boolean).join('\n')}</pre>
                </details>
              )}
            </div>
          ))}
          {rep.rawUrl && (
            <p>
              <a href={rep.rawUrl} download>
                Download the report as it came (.eml)
              </a>
            </p>
          )}
        </div>
      ))}
    </section>
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

function errorTitle(m: Message): string {
  if (m.state === 'sent') return 'An earlier attempt failed';
  if (m.lastError?.temporary && m.state === 'queued') {
    return m.nextAttemptAt
      ? `Last error (temporary: Mailroom tries again ${formatDateTime(m.nextAttemptAt)})`
      : 'Last error (temporary: Mailroom tries again)';
  }
  return 'Last error';
}

/** One email of the outbox: addresses, delivery state, the last error, Retry and Cancel. */
export function EmailDetail({ id }: { id: string }) {
  const [message, setMessage] = useState<Message | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState<Action | null>(null);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  useTitle(message ? message.subject || '(no subject)' : 'Email');

  useEffect(() => {
    let cancelled = false;
    api.getMessage(id).then(
      (m) => !cancelled && setMessage(m),
      (e: unknown) => !cancelled && setLoadError(asApiError(e)),
    );
    return () => {
      cancelled = true;
    };
  }, [id]);

  // Queued and sending emails change by themselves: read them again until they settle.
  const pending = message ? isPending(message.state) : false;
  useEffect(() => {
    if (!pending || busy) return;
    let stopped = false;
    let timer = 0;
    const tick = async () => {
      if (!document.hidden) {
        try {
          const m = await api.getMessage(id);
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
  }, [id, pending, busy]);

  async function act(action: Action) {
    setBusy(action);
    setActionError(null);
    setNotice(null);
    try {
      const m = action === 'retry' ? await api.retryMessage(id) : await api.cancelMessage(id);
      setMessage(m);
      setNotice(
        action === 'retry' ? 'The email is queued for another attempt.' : 'The email was cancelled: it will not be sent.',
      );
    } catch (err) {
      setActionError(asApiError(err));
      // The email probably changed state meanwhile (409): show the current one.
      try {
        setMessage(await api.getMessage(id));
      } catch {
        // The action's error is already shown.
      }
    } finally {
      setBusy(null);
    }
  }

  const subject = message ? message.subject || '(no subject)' : null;
  const canRetry = message !== null && CAN_RETRY.includes(message.state);
  const canCancel = message !== null && CAN_CANCEL.includes(message.state);

  const header = (
    <div className="page-header">
      <div>
        <p className="breadcrumb">
          <Link to={paths.emails}>Emails</Link>
          <span aria-hidden="true"> / </span>
          <span>{subject ?? '…'}</span>
        </p>
        <h1>{subject ?? 'Email'}</h1>
      </div>
      {message && (
        <div className="page-actions">
          <button
            type="button"
            className="btn btn-primary"
            onClick={() => act('retry')}
            disabled={!canRetry || busy !== null}
            aria-busy={busy === 'retry' || undefined}
            title={canRetry ? 'Queue the email again' : 'Only failed, held or cancelled emails can be retried'}
          >
            {busy === 'retry' && <Spinner />}
            Retry
          </button>
          <button
            type="button"
            className="btn btn-secondary"
            onClick={() => act('cancel')}
            disabled={!canCancel || busy !== null}
            aria-busy={busy === 'cancel' || undefined}
            title={canCancel ? 'Do not send the email' : 'Only queued, held or failed emails can be cancelled'}
          >
            {busy === 'cancel' && <Spinner />}
            Cancel
          </button>
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
            loadError.status === 404 ? { message: 'This email does not exist (it may have been deleted).' } : loadError
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
      {notice && <Notice>{notice}</Notice>}
      {actionError && <ErrorAlert problem={actionError} showCode={actionError.status >= 500} />}
      {m.lastError && <ErrorAlert problem={m.lastError} title={errorTitle(m)} showCode />}

      <div className="card email-detail">
        <section aria-labelledby="email-delivery">
          <h2 id="email-delivery">Delivery</h2>
          <dl className="facts">
            <Fact label="State">
              <MessageStateBadge state={m.state} /> <OutcomeBadge outcome={m.outcome} />
              {pending && <span className="muted refresh-note"> Refreshing every 5 seconds</span>}
            </Fact>
            <Fact label="Mail Server">
              {m.mailServerId ? (
                <Link to={mailServerPath(m.mailServerId)}>{m.mailServerName ?? m.mailServerId}</Link>
              ) : (
                (m.mailServerName ?? <span className="muted">Not chosen yet</span>)
              )}
            </Fact>
            <Fact label="Source">
              {receivedViaText(m) ? <span className="first-upper">{receivedViaText(m)}</span> : 'Sent through the API'}
            </Fact>
            <Fact label="Attempts">
              {m.attempts} of {m.maxAttempts}
            </Fact>
            <Fact label="Next attempt">{formatDateTime(m.nextAttemptAt)}</Fact>
            <Fact label="Sent">{formatDateTime(m.sentAt)}</Fact>
            <Fact label="Message-ID">
              {m.messageId ? <code className="mono">{m.messageId}</code> : <span className="muted">—</span>}
            </Fact>
            <Fact label="Created">{formatDateTime(m.createdAt)}</Fact>
            <Fact label="Updated">{formatDateTime(m.updatedAt)}</Fact>
          </dl>
        </section>

        {m.recipients && m.recipients.length > 0 && (m.outcome || (m.reports?.length ?? 0) > 0) && <AfterSending recipients={m.recipients} reports={m.reports ?? []} />}

        <section aria-labelledby="email-message">
          <h2 id="email-message">Message</h2>
          <dl className="facts">
            <Fact label="From">{m.from}</Fact>
            <Fact label="To">
              <Addresses list={m.to} />
            </Fact>
            <Fact label="Cc">
              <Addresses list={m.cc} />
            </Fact>
            <Fact label="Bcc">
              <Addresses list={m.bcc} />
            </Fact>
            <Fact label="Reply-To">{m.replyTo ?? <span className="muted">—</span>}</Fact>
            <Fact label="Subject">{m.subject || <span className="muted">(no subject)</span>}</Fact>
            <Fact label="Attachments">
              {m.attachments.length === 0 ? (
                <span className="muted">None</span>
              ) : (
                <ul className="address-list">
                  {m.attachments.map((a, i) => (
                    <li key={`${i}-${a.filename}`}>
                      {a.filename} <span className="muted">({a.contentType}, {formatSize(a.size)})</span>
                    </li>
                  ))}
                </ul>
              )}
            </Fact>
          </dl>
        </section>
      </div>
    </>
  );
}
