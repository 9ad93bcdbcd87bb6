import { useState } from 'react';
import { asApiError, api, ApiError, type DeliveryReport, type Message, type MessageRecipient, type MessageState } from './api.ts';
import { attemptsText } from './email-list.tsx';
import { ErrorAlert } from './error-alert.tsx';
import { EvidenceDetails } from './evidence-details.tsx';
import { formatDateTime } from './format-date-time.ts';
import { formatSize } from './format-size.ts';
import { ListTable } from './list-view.tsx';
import { Notice } from './notice.tsx';
import { receivedViaText } from './received-via-text.ts';
import { AddressFacts, MessageBody } from './message-facts.tsx';
import { Fact, Facts, RecordLayout, RecordSection } from './record-layout.tsx';
import { Link } from './router.tsx';
import { mailServerPath, paths } from './routes.ts';
import { Spinner } from './spinner.tsx';
import { messageIsPending, StatusBadge, statusLabel } from './status-badge.tsx';
import { TimeText } from './time-text.tsx';
import { useRecord } from './use-record.ts';

const CAN_RETRY: MessageState[] = ['failed', 'held', 'cancelled'];
const CAN_CANCEL: MessageState[] = ['queued', 'held', 'failed'];

type Action = 'retry' | 'cancel';

const KIND_TEXT: Record<DeliveryReport['kind'], string> = {
  delivery_status: 'Delivery report',
  auto_reply: 'Automatic reply',
  read_receipt: 'Read receipt',
};

/** Each recipient's outcome after the 250, from the reports that came back to the sending mailbox. */
function AfterSending({ recipients, reports }: { recipients: MessageRecipient[]; reports: DeliveryReport[] }) {
  return (
    <RecordSection id="email-after" title="After sending" card={false}>
      <ListTable
        rowKey={(r) => r.address}
        items={recipients}
        columns={[
          { key: 'recipient', label: 'Recipient', className: 'mono', render: (r) => r.address },
          {
            key: 'outcome',
            label: 'Outcome',
            render: (r) => (r.state === 'sent' ? <span className="muted">Sent, nothing came back</span> : <StatusBadge kind="outcome" state={r.state} />),
          },
          { key: 'status', label: 'Status', render: (r) => (r.status ? <code className="mono">{r.status}</code> : <span className="muted">—</span>) },
          { key: 'reported', label: 'Reported', className: 'nowrap', render: (r) => <TimeText iso={r.reportedAt} /> },
        ]}
      />
      {reports.map((rep) => (
        <div className="report-card" key={rep.id}>
          <h3>
            {KIND_TEXT[rep.kind]}
            {rep.reportingMta && <span className="muted"> from {rep.reportingMta}</span>}
            <span className="muted">
              {' '}
              — <TimeText iso={rep.reportedAt} />
            </span>
          </h3>
          {rep.kind === 'auto_reply' && <p>{rep.from ?? 'The recipient'} answered automatically{rep.subject ? `: “${rep.subject}”` : '.'}</p>}
          {rep.recipients.map((x) => (
            <div key={x.address} className="report-explanation">
              <p>
                <strong>{x.address}</strong>:{' '}
                {x.action === 'failed' ? statusLabel('outcome', 'bounced') : x.action === 'delayed' ? statusLabel('outcome', 'delayed') : x.action}.{' '}
                {x.explanation.cause}
              </p>
              {x.explanation.fix && <p className="muted">{x.explanation.fix}</p>}
              <EvidenceDetails open summary="Remote server's answer" evidence={[x.status, x.diagnostic].filter(Boolean).join('\n')} />
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
    </RecordSection>
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

/** The body and the custom headers as queued (HTML only as escaped source: it is never rendered here). */
function Content({ message: m }: { message: Message }) {
  const c = m.content;
  if (c === undefined) return null;
  if (c === null) {
    return (
      <RecordSection id="email-content" title="Content">
        <p className="muted">This email was handed to the SMTP listener as a complete message and goes out exactly as it came.</p>
      </RecordSection>
    );
  }
  const headers = Object.entries(c.headers);
  return (
    <RecordSection id="email-content" title="Content">
      <Facts>
        <Fact label="Custom headers">
          {headers.length === 0 ? (
            <span className="muted">None</span>
          ) : (
            <ul className="address-list">
              {headers.map(([name, value]) => (
                <li key={name}>
                  <code className="mono">
                    {name}: {value}
                  </code>
                </li>
              ))}
            </ul>
          )}
        </Fact>
      </Facts>
      <MessageBody text={c.text} html={c.html} note={c.truncated && <p className="muted">Only the beginning of the body is shown (1 MB).</p>} />
    </RecordSection>
  );
}

/** One email of the outbox: addresses, delivery state, the server's reply or last error, the content, Retry and Cancel. */
export function EmailDetail({ id }: { id: string }) {
  const [busy, setBusy] = useState<Action | null>(null);
  const { record: message, error: loadError, setRecord: setMessage, reload, refreshing: pending } = useRecord(
    api.getMessage,
    id,
    (m) => messageIsPending(m.state),
    busy !== null,
  );
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  async function act(action: Action) {
    setBusy(action);
    setActionError(null);
    setNotice(null);
    try {
      const m = action === 'retry' ? await api.retryMessage(id) : await api.cancelMessage(id);
      setMessage(m);
      setNotice(action === 'retry' ? 'The email is queued for another attempt.' : 'The email was cancelled: it will not be sent.');
    } catch (err) {
      setActionError(asApiError(err));
      // The email probably changed state meanwhile (409): show the current one.
      await reload();
    } finally {
      setBusy(null);
    }
  }

  const m = message;
  const canRetry = m !== null && CAN_RETRY.includes(m.state);
  const canCancel = m !== null && CAN_CANCEL.includes(m.state);

  return (
    <RecordLayout
      title={m ? m.subject || '(no subject)' : null}
      fallbackTitle="Email"
      crumbs={[{ label: 'Emails', to: paths.emails }]}
      status={
        m && (
          <>
            <StatusBadge kind="message" state={m.state} /> {m.outcome && <StatusBadge kind="outcome" state={m.outcome} />}
          </>
        )
      }
      actions={
        m && (
          <>
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
          </>
        )
      }
      error={loadError}
      notFound="This email does not exist (it may have been deleted)."
      loading={!m}
      notices={
        m && (
          <>
            {notice && <Notice>{notice}</Notice>}
            {actionError && <ErrorAlert problem={actionError} showCode={actionError.status >= 500} />}
            {m.lastError && <ErrorAlert problem={m.lastError} title={errorTitle(m)} showCode />}
          </>
        )
      }
    >
      {m && (
        <>
          <div className="card email-detail">
            <RecordSection id="email-delivery" title="Delivery" card={false}>
              <Facts>
                <Fact label="State">
                  <StatusBadge kind="message" state={m.state} /> {m.outcome && <StatusBadge kind="outcome" state={m.outcome} />}
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
                <Fact label="Attempts">{attemptsText(m)}</Fact>
                {m.state === 'queued' && (
                  <Fact label="Next attempt">
                    <TimeText iso={m.nextAttemptAt} />
                  </Fact>
                )}
                <Fact label="Sent">
                  <TimeText iso={m.sentAt} />
                </Fact>
                {m.smtpResponse && (
                  <Fact label="Server reply">
                    <code className="mono server-reply-text">{m.smtpResponse}</code>
                  </Fact>
                )}
                <Fact label="Message-ID">{m.messageId && <code className="mono">{m.messageId}</code>}</Fact>
                <Fact label="Created">
                  <TimeText iso={m.createdAt} />
                </Fact>
                <Fact label="Updated">
                  <TimeText iso={m.updatedAt} />
                </Fact>
              </Facts>
            </RecordSection>

            {m.recipients && m.recipients.length > 0 && (m.outcome || (m.reports?.length ?? 0) > 0) && (
              <AfterSending recipients={m.recipients} reports={m.reports ?? []} />
            )}

            <RecordSection id="email-message" title="Message" card={false}>
              <Facts>
                <AddressFacts from={m.from} to={m.to} cc={m.cc} bcc={m.bcc} />
                <Fact label="Reply-To">{m.replyTo}</Fact>
                <Fact label="Subject">{m.subject || <span className="muted">(no subject)</span>}</Fact>
                <Fact label="Attachments">
                  {m.attachments.length === 0 ? (
                    <span className="muted">None</span>
                  ) : (
                    <ul className="address-list">
                      {m.attachments.map((a, i) => (
                        <li key={`${i}-${a.filename}`}>
                          {a.filename}{' '}
                          <span className="muted">
                            ({a.contentType}, {formatSize(a.size)})
                          </span>
                        </li>
                      ))}
                    </ul>
                  )}
                </Fact>
              </Facts>
            </RecordSection>
          </div>
          <Content message={m} />
        </>
      )}
    </RecordLayout>
  );
}
