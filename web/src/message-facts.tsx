import type { ReactNode } from 'react';
import { AddressList, Fact } from './record-layout.tsx';

/** From, To, Cc (and Bcc for outgoing mail) of an email, one address a line. */
export function AddressFacts({ from, to, cc, bcc }: { from: string; to: string[]; cc: string[]; bcc?: string[] }) {
  return (
    <>
      <Fact label="From">{from || null}</Fact>
      <Fact label="To">
        <AddressList list={to} />
      </Fact>
      <Fact label="Cc">
        <AddressList list={cc} />
      </Fact>
      {bcc && (
        <Fact label="Bcc">
          <AddressList list={bcc} />
        </Fact>
      )}
    </>
  );
}

/** The text of an email, and its HTML as escaped source only: the HTML is never rendered here. */
export function MessageBody({ text, html, note }: { text: string | null; html: string | null; note?: ReactNode }) {
  return (
    <>
      {note}
      {text !== null && text !== '' ? <pre className="message-body">{text}</pre> : <p className="muted">This message has no plain-text part.</p>}
      {html !== null && html !== '' && (
        <details className="html-source">
          <summary>HTML source</summary>
          <pre className="message-body">{html}</pre>
        </details>
      )}
    </>
  );
}
