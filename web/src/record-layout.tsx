import type { ReactNode } from 'react';
import type { Problem } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { Link } from './router.tsx';
import { useTitle } from './use-title.ts';

export interface Crumb {
  label: string;
  /** Omitted for the last crumb (this page). */
  to?: string;
}

interface RecordLayoutProps {
  /** The page title once the record is loaded; `fallbackTitle` before. */
  title: string | null;
  fallbackTitle: string;
  /** The last crumb when it is not the title (e.g. the webhook's URL above "Delivery log"). */
  crumb?: string | null;
  /** The trail above the title, e.g. Settings / Technical / Emails; this record is added last. */
  crumbs: Crumb[];
  /** The record's state (a StatusBadge), beside the title. */
  status?: ReactNode;
  /** Buttons at the right of the header. */
  actions?: ReactNode;
  /** Why the record could not be read; a 404 reads as `notFound`. */
  error?: (Problem & { status?: number }) | null;
  notFound: string;
  loading: boolean;
  /** Notices and errors above the sections. */
  notices?: ReactNode;
  children?: ReactNode;
}

/**
 * The one detail page: breadcrumb, title with its status badge and actions, then the record's sections.
 * While loading or when the record is missing the header stays and says so.
 */
export function RecordLayout(props: RecordLayoutProps) {
  const title = props.title ?? props.fallbackTitle;
  useTitle(title);
  const header = (
    <div className="page-header record-header">
      <div className="record-heading">
        <p className="breadcrumb">
          {props.crumbs.map((c) => (
            <span key={c.label}>
              {c.to ? <Link to={c.to}>{c.label}</Link> : c.label}
              <span aria-hidden="true"> / </span>
            </span>
          ))}
          <span>{(props.crumb === undefined ? props.title : props.crumb) ?? '…'}</span>
        </p>
        <div className="record-title">
          <h1>{title}</h1>
          {props.status && <span className="record-status">{props.status}</span>}
        </div>
      </div>
      {props.actions && <div className="page-actions">{props.actions}</div>}
    </div>
  );
  if (props.error) {
    return (
      <>
        {header}
        <ErrorAlert problem={props.error.status === 404 ? { message: props.notFound } : props.error} />
      </>
    );
  }
  if (props.loading) {
    return (
      <>
        {header}
        <p className="loading">Loading…</p>
      </>
    );
  }
  return (
    <>
      {header}
      {props.notices}
      {props.children}
    </>
  );
}

interface RecordSectionProps {
  id: string;
  title: string;
  /** In a card of its own (the default) or plain, inside a card shared with other sections. */
  card?: boolean;
  actions?: ReactNode;
  children: ReactNode;
}

/** One titled section of a record. */
export function RecordSection({ id, title, card = true, actions, children }: RecordSectionProps) {
  return (
    <section className={card ? 'card record-section' : 'record-section'} aria-labelledby={id}>
      <div className="record-section-header">
        <h2 id={id} className="card-heading">
          {title}
        </h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

/** A label/value list of a record's facts. */
export function Facts({ children, className }: { children: ReactNode; className?: string }) {
  return <dl className={className ? `facts ${className}` : 'facts'}>{children}</dl>;
}

export function Fact({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div>
      <dt>{label}</dt>
      <dd>{children ?? <span className="muted">—</span>}</dd>
    </div>
  );
}

/** Addresses one per line, "—" when there are none. */
export function AddressList({ list, code = false }: { list: string[]; code?: boolean }) {
  if (list.length === 0) return <span className="muted">—</span>;
  return (
    <ul className="address-list">
      {list.map((a, i) => (
        <li key={`${i}-${a}`}>{code ? <code className="mono">{a}</code> : a}</li>
      ))}
    </ul>
  );
}
