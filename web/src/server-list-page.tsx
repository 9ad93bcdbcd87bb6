import type { MouseEvent, ReactNode } from 'react';
import type { ApiError } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { Notice } from './notice.tsx';
import { navigate, useFlashNotice } from './router.tsx';
import { useTitle } from './use-title.ts';

/**
 * Settings › Technical list page of mail servers: header with Add, the flash notice, loading and error
 * states, an empty state, and a table whose rows open the server's form.
 */
export function ServerListPage<T extends { id: string }>(props: {
  title: string;
  addPath: string;
  pathOf: (id: string) => string;
  items: T[] | null;
  error: ApiError | null;
  empty: ReactNode;
  /** The header cells. */
  head: ReactNode;
  /** The cells of one row. */
  cells: (item: T) => ReactNode;
  rowClass?: (item: T) => string;
}) {
  useTitle(props.title);
  const [notice] = useFlashNotice();
  const { items, error } = props;

  function openRow(e: MouseEvent<HTMLTableRowElement>, id: string) {
    // Let links, text selection and modified clicks behave normally.
    if ((e.target as HTMLElement).closest('a, button') || window.getSelection()?.toString()) return;
    navigate(props.pathOf(id));
  }

  return (
    <>
      <div className="page-header">
        <div>
          <p className="breadcrumb">Settings / Technical</p>
          <h1>{props.title}</h1>
        </div>
        <div className="page-actions">
          <button type="button" className="btn btn-primary" onClick={() => navigate(props.addPath)}>
            Add
          </button>
        </div>
      </div>
      {notice && <Notice>{notice}</Notice>}
      {error && <ErrorAlert problem={error} />}
      {!items && !error && <p className="loading">Loading…</p>}
      {items && items.length === 0 && <div className="card empty-state">{props.empty}</div>}
      {items && items.length > 0 && (
        <div className="card table-card">
          <table className="list-table">
            <thead>
              <tr>{props.head}</tr>
            </thead>
            <tbody>
              {items.map((s) => (
                <tr key={s.id} className={props.rowClass?.(s) ?? 'clickable'} onClick={(e) => openRow(e, s.id)}>
                  {props.cells(s)}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
