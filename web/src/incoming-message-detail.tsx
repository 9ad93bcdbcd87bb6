import { useEffect, useState } from 'react';
import { api, inboundAttachmentUrl, inboundMessageRawUrl, type InboundAttachment, type InboundMessageDetail, type WebhookDelivery } from './api.ts';
import { formatSize } from './format-size.ts';
import { ListTable } from './list-view.tsx';
import { Notice } from './notice.tsx';
import { AddressFacts, MessageBody } from './message-facts.tsx';
import { AddressList, Fact, Facts, RecordLayout, RecordSection } from './record-layout.tsx';
import { Link } from './router.tsx';
import { emailPath, incomingMailServerPath, paths } from './routes.ts';
import { StatusBadge } from './status-badge.tsx';
import { TimeText } from './time-text.tsx';
import { useRecord } from './use-record.ts';
import { WebhookDeliveryTable } from './webhook-delivery-table.tsx';

function MessageId({ value }: { value: string | null }) {
  return value ? <code className="mono">{value}</code> : <span className="muted">—</span>;
}

/** The subject of the email this message answers (read from the outbox), linked to it. */
function ReplyTo({ outboxId }: { outboxId: string }) {
  const [subject, setSubject] = useState<string | null>(null);
  useEffect(() => {
    let cancelled = false;
    api.getMessage(outboxId).then(
      (m) => !cancelled && setSubject(m.subject || '(no subject)'),
      () => !cancelled && setSubject(''),
    );
    return () => {
      cancelled = true;
    };
  }, [outboxId]);
  return <Link to={emailPath(outboxId)}>{subject === null ? '…' : subject || 'An email sent through Mailroom'}</Link>;
}

/** One incoming message: headers, attachments, the text (HTML only as escaped source) and its webhook deliveries. */
export function IncomingMessageDetail({ id }: { id: string }) {
  const pendingDeliveries = (m: InboundMessageDetail) => m.deliveries.some((d) => d.state === 'pending');
  const { record: message, error, setRecord: setMessage, reload, refreshing: pending } = useRecord(api.getInboundMessage, id, pendingDeliveries);

  function redelivered(d: WebhookDelivery) {
    setMessage((m) => m && { ...m, deliveries: m.deliveries.map((x) => (x.id === d.id ? d : x)) });
    // The message's overall delivery state follows its deliveries.
    void reload();
  }

  const m = message;
  const attachments: (InboundAttachment & { index: number })[] = m ? m.attachments.map((a, index) => ({ ...a, index })) : [];
  return (
    <RecordLayout
      title={m ? m.subject || '(no subject)' : null}
      fallbackTitle="Incoming Message"
      crumbs={[{ label: 'Incoming Messages', to: paths.incomingMessages }]}
      status={m && <StatusBadge kind="delivery" state={m.delivery.state} />}
      actions={
        m &&
        m.rawUrl !== null && (
          <a className="btn btn-secondary" href={inboundMessageRawUrl(m.id)} target="_blank" rel="noopener noreferrer">
            View raw
          </a>
        )
      }
      error={error}
      notFound="This incoming message does not exist (it may have been deleted)."
      loading={!m}
      notices={
        m?.problem && (
          <Notice kind="warning">
            <StatusBadge kind="problem" state={m.problem.code} title={m.problem.message} /> This message could not be read whole:{' '}
            {m.problem.message}{' '}
            {m.rawUrl !== null
              ? 'It was imported with what could be read; the message exactly as received is under View raw.'
              : 'It was imported with what could be read; the message itself is still in the mailbox.'}
          </Notice>
        )
      }
    >
      {m && (
        <>
          <div className="card email-detail">
            <RecordSection id="incoming-headers" title="Headers" card={false}>
              <Facts>
                <AddressFacts from={m.from} to={m.to} cc={m.cc} />
                <Fact label="Date">
                  <TimeText iso={m.date} />
                </Fact>
                <Fact label="Subject">{m.subject || <span className="muted">(no subject)</span>}</Fact>
                <Fact label="Message-ID">
                  <MessageId value={m.messageId} />
                </Fact>
                <Fact label="In-Reply-To">
                  <MessageId value={m.inReplyTo} />
                </Fact>
                <Fact label="References">
                  <AddressList list={m.references} code />
                </Fact>
              </Facts>
            </RecordSection>

            <RecordSection id="incoming-received" title="Received" card={false}>
              <Facts>
                <Fact label="Server">
                  <Link to={incomingMailServerPath(m.serverId)}>{m.serverName || m.serverId}</Link>
                </Fact>
                <Fact label="Folder">{m.folder}</Fact>
                <Fact label="Received">
                  <TimeText iso={m.receivedAt} />
                </Fact>
                <Fact label="Size">{formatSize(m.size)}</Fact>
                <Fact label="Webhook delivery">
                  <StatusBadge kind="delivery" state={m.delivery.state} />
                  {pending && <span className="muted refresh-note"> Refreshing every 5 seconds</span>}
                </Fact>
                {m.inReplyToOutboxId && (
                  <Fact label="Reply to">
                    <ReplyTo outboxId={m.inReplyToOutboxId} />
                  </Fact>
                )}
              </Facts>
            </RecordSection>
          </div>

          <RecordSection id="incoming-attachments" title="Attachments">
            {attachments.length === 0 ? (
              <p className="muted">None</p>
            ) : (
              <ListTable
                items={attachments}
                rowKey={(a) => String(a.index)}
                tableClass="attachment-table"
                columns={[
                  {
                    key: 'name',
                    label: 'Name',
                    render: (a) => (
                      <>
                        {m.rawUrl !== null ? (
                          <a href={inboundAttachmentUrl(m.id, a.index)} download={a.filename || true}>
                            {a.filename || '(no name)'}
                          </a>
                        ) : (
                          a.filename || <span className="muted">(no name)</span>
                        )}
                        {a.originalFilename !== undefined && (
                          <span className="muted" title={`Named by the sender: ${JSON.stringify(a.originalFilename)}`}>
                            {' '}
                            (renamed: the sender's name was not safe)
                          </span>
                        )}
                      </>
                    ),
                  },
                  { key: 'type', label: 'Type', render: (a) => <code className="mono">{a.contentType}</code> },
                  { key: 'size', label: 'Size', className: 'num nowrap', render: (a) => formatSize(a.size) },
                ]}
              />
            )}
            {attachments.length > 0 && m.rawUrl === null && (
              <p className="muted">The message as fetched was not kept, so its attachments cannot be downloaded here; they are still in the mailbox.</p>
            )}
          </RecordSection>

          <RecordSection id="incoming-body" title="Text">
            <MessageBody
              text={m.text}
              html={m.html}
              note={
                m.truncated && (
                  <p className="muted">
                    Only the beginning of this message's {m.textTruncated && m.htmlTruncated ? 'text and HTML' : m.textTruncated ? 'text' : 'HTML'} is shown (1 MB).
                    {m.rawUrl !== null && ' The whole message is under View raw.'}
                  </p>
                )
              }
            />
          </RecordSection>

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
      )}
    </RecordLayout>
  );
}
