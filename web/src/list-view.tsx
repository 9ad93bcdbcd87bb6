import { useEffect, useRef, useState, type FormEvent, type MouseEvent, type ReactNode } from 'react';
import { asApiError, type ApiError } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';
import { Notice } from './notice.tsx';
import { navigate, useLocation } from './router.tsx';
import { Spinner } from './spinner.tsx';
import { useTitle } from './use-title.ts';

const SEARCH_DELAY_MS = 300;

/** One column of a list: its header, how an item fills its cell, and how much room it may claim. */
export interface Column<T> {
  key: string;
  /** Header text; also the label of the value when a row is shown as a card. */
  label: string;
  /** Header shown to screen readers only (e.g. an actions column). */
  hiddenLabel?: boolean;
  render: (item: T) => ReactNode;
  /**
   * 1: always shown (the default). 2: the table hides it on mid-size screens before it would scroll.
   * A card (narrow screens) shows every column.
   */
  priority?: 1 | 2;
  /** Cell class: 'num' (right-aligned), 'nowrap', 'actions', or a page's own. */
  className?: string;
}

/** A drop-down filter kept in the URL (`?name=value`), so a filtered list can be linked to. */
export interface ListFilter {
  name: string;
  label: string;
  options: { value: string; label: string }[];
  /** Option for "no filter". */
  allLabel?: string;
  /** Label of a value in the URL that no option has (e.g. a deleted server). */
  unknownLabel?: string;
  wide?: boolean;
  /**
   * Too many values to list (a thousand owners): the filter is a box that suggests the values matching
   * what is typed, asked of the API, instead of a drop-down of all of them. `options` are then the few
   * fixed choices offered beside the suggestions (e.g. "Shared mailboxes").
   */
  suggest?: (text: string) => Promise<{ value: string; label: string }[]>;
}

/** The list's filters as read from the URL, and how to change them. */
export interface ListQuery {
  values: Record<string, string>;
  /** Any filter or search set. */
  filtered: boolean;
  set: (changes: Record<string, string>) => void;
  clear: () => void;
}

/** Reads the named query parameters of `path`'s URL; changes replace the history entry. */
export function useListQuery(path: string, names: string[]): ListQuery {
  const { query } = useLocation();
  const values: Record<string, string> = {};
  for (const n of names) values[n] = query.get(n) ?? '';
  const filtered = names.some((n) => (values[n] ?? '').trim() !== '');
  function set(changes: Record<string, string>) {
    const q = new URLSearchParams(window.location.search);
    for (const [k, v] of Object.entries(changes)) {
      if (v) q.set(k, v);
      else q.delete(k);
    }
    const qs = q.toString();
    navigate(qs ? `${path}?${qs}` : path, { replace: true });
  }
  return { values, filtered, set, clear: () => navigate(path, { replace: true }) };
}

/** The items of a list and how they arrive: usePagedList answers all of it, useItems the first three. */
export interface ListSource<T> {
  items: T[] | null;
  error: ApiError | null;
  loading?: boolean;
  nextCursor?: string | null;
  loadingMore?: boolean;
  moreError?: ApiError | null;
  refreshError?: ApiError | null;
  loadMore?: () => Promise<void>;
}

export interface BulkAction<T> {
  label: string;
  run: (selected: T[]) => Promise<void> | void;
  danger?: boolean;
  /** Asked before it runs (e.g. "Disconnect 3 mailboxes?"); Cancel runs nothing. */
  confirm?: (count: number) => string;
}

/** Every item matching the filters, beyond the rows shown: "Select all N matching". */
export interface AllMatching<T> {
  total: number;
  load: () => Promise<T[]>;
}

export interface ListViewProps<T> {
  title: string;
  /** Defaults to "Settings / Technical". */
  breadcrumb?: ReactNode;
  /** Buttons at the right of the header. */
  actions?: ReactNode;
  /** Shown between the header and the list (a notice, an explanation, a create form). */
  intro?: ReactNode;
  columns: Column<T>[];
  source: ListSource<T>;
  rowKey?: (item: T) => string;
  /** The whole row opens this page (links and buttons inside keep their own click). */
  rowHref?: (item: T) => string;
  rowClass?: (item: T) => string | undefined;
  /** A line under the row spanning every column (e.g. the error of a failed email). */
  rowDetail?: (item: T) => ReactNode;
  /** Filters and search, kept in the URL through `query`. */
  query?: ListQuery;
  filters?: ListFilter[];
  search?: { label?: string; placeholder: string };
  /** Accessible name of the filter bar, e.g. "Filter emails". */
  filterLabel?: string;
  /** Right of the filters: e.g. "Refreshing every 5 seconds while …". */
  status?: ReactNode;
  /** What to say and offer when there is nothing yet (no filter set). */
  empty: ReactNode;
  /** The noun for the count: ['email', 'emails']. */
  noun: [string, string];
  /** Ticking rows offers these actions on the ticked ones. */
  bulkActions?: BulkAction<T>[];
  /** With bulk actions: offers to select every matching item when more match than are shown. */
  allMatching?: AllMatching<T>;
  /** Extra class of the table (column widths of one page). */
  tableClass?: string;
  /** Extra class of each row's group (a row and its detail line). */
  groupClass?: string;
}

const defaultKey = (item: unknown) => (item as { id: string }).id;

/**
 * The one list page: header, filters and search (in the URL), the table, its empty and loading states,
 * "Load more", an optional bulk selection. On a narrow screen each row becomes a card of label/value
 * lines; a table that still has to scroll says so and never widens the page.
 */
export function ListView<T>(props: ListViewProps<T>) {
  useTitle(props.title);
  const { source, columns, query, rowKey = defaultKey } = props;
  const { items } = source;
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [bulkBusy, setBulkBusy] = useState(false);
  const [bulkError, setBulkError] = useState<ApiError | null>(null);
  // "Select all N matching": every matching item, loaded; dropped when the rows or the ticks change.
  const [everyMatching, setEveryMatching] = useState<T[] | null>(null);
  const bulk = props.bulkActions && props.bulkActions.length > 0 ? props.bulkActions : null;
  useEffect(() => setEveryMatching(null), [items]);

  const shownChosen = items ? items.filter((i) => selected.has(rowKey(i))) : [];
  const chosen = everyMatching ?? shownChosen;
  const allShownChosen = !!items && items.length > 0 && shownChosen.length === items.length;
  const more = props.allMatching && allShownChosen && !everyMatching && props.allMatching.total > items!.length ? props.allMatching : null;
  async function runBulk(action: BulkAction<T>) {
    if (action.confirm && !window.confirm(action.confirm(chosen.length))) return;
    setBulkBusy(true);
    try {
      await action.run(chosen);
      setSelected(new Set());
      setEveryMatching(null);
    } finally {
      setBulkBusy(false);
    }
  }
  async function selectEveryMatching(all: AllMatching<T>) {
    setBulkBusy(true);
    setBulkError(null);
    try {
      setEveryMatching(await all.load());
    } catch (e) {
      setBulkError(asApiError(e));
    } finally {
      setBulkBusy(false);
    }
  }
  const toggle = (key: string, on: boolean) => {
    setEveryMatching(null);
    setSelected((s) => {
      const next = new Set(s);
      if (on) next.add(key);
      else next.delete(key);
      return next;
    });
  };

  const hasFilters = !!query && ((props.filters?.length ?? 0) > 0 || !!props.search);

  return (
    <>
      <div className="page-header">
        <div>
          <p className="breadcrumb">{props.breadcrumb ?? 'Settings / Technical'}</p>
          <h1>{props.title}</h1>
        </div>
        {props.actions && <div className="page-actions">{props.actions}</div>}
      </div>
      {props.intro}

      {hasFilters && query && (
        <FilterBar
          query={query}
          filters={props.filters ?? []}
          search={props.search}
          label={props.filterLabel ?? `Filter ${props.title.toLowerCase()}`}
          status={
            <>
              {source.loading && items && (
                <span className="muted">
                  <Spinner /> Loading…
                </span>
              )}
              {!source.loading && props.status}
            </>
          }
        />
      )}
      {!hasFilters && props.status && <p className="muted refresh-line">{props.status}</p>}

      {source.error && <ErrorAlert problem={source.error} />}
      {source.refreshError && !source.error && (
        <Notice kind="warning">Automatic refresh failed: {source.refreshError.message} The list may be out of date.</Notice>
      )}
      {!items && !source.error && <p className="loading">Loading…</p>}

      {items && items.length === 0 && !query?.filtered && <div className="card empty-state">{props.empty}</div>}
      {items && items.length === 0 && query?.filtered && (
        <div className="card empty-state">
          <p className="empty-title">No {props.noun[1]} match these filters.</p>
          <button type="button" className="btn btn-secondary" onClick={query.clear}>
            Clear filters
          </button>
        </div>
      )}

      {items && items.length > 0 && (
        <>
          {bulk && chosen.length > 0 && (
            <div className="bulk-bar" role="region" aria-label="Selected">
              <span>{everyMatching ? `All ${chosen.length} matching selected` : `${chosen.length} selected`}</span>
              {more && (
                <button type="button" className="btn btn-small btn-secondary" disabled={bulkBusy} onClick={() => void selectEveryMatching(more)}>
                  Select all {more.total} matching
                </button>
              )}
              {bulk.map((a) => (
                <button
                  key={a.label}
                  type="button"
                  className={`btn btn-small ${a.danger ? 'btn-danger' : 'btn-secondary'}`}
                  disabled={bulkBusy}
                  onClick={() => void runBulk(a)}
                >
                  {a.label}
                </button>
              ))}
              {bulkBusy && <Spinner />}
            </div>
          )}
          {bulkError && <ErrorAlert problem={bulkError} />}
          <ListTable
            columns={columns}
            items={items}
            rowKey={rowKey}
            rowHref={props.rowHref}
            rowClass={props.rowClass}
            rowDetail={props.rowDetail}
            tableClass={props.tableClass}
            groupClass={props.groupClass}
            busy={source.loading}
            selection={
              bulk
                ? {
                    selected,
                    toggle,
                    setAll: (on) => {
                      setEveryMatching(null);
                      setSelected(new Set(on ? items.map(rowKey) : []));
                    },
                  }
                : undefined
            }
          />
          <ListFooter source={source} count={items.length} noun={props.noun} />
        </>
      )}
    </>
  );
}

/** Under a list: how many are shown and "Load more" while there are more pages. */
export function ListFooter({ source, count, noun }: { source: ListSource<unknown>; count: number; noun: [string, string] }) {
  return (
    <>
      {source.moreError && <ErrorAlert problem={source.moreError} />}
      <div className="list-footer">
        <span className="muted">
          {count} {count === 1 ? noun[0] : noun[1]}
          {source.nextCursor ? ' shown' : ''}
        </span>
        {source.nextCursor && source.loadMore && (
          <button
            type="button"
            className="btn btn-secondary"
            onClick={() => void source.loadMore?.()}
            disabled={source.loadingMore}
            aria-busy={source.loadingMore || undefined}
          >
            {source.loadingMore && <Spinner />}
            Load more
          </button>
        )}
      </div>
    </>
  );
}

export interface ListTableProps<T> {
  columns: Column<T>[];
  items: T[];
  rowKey?: (item: T) => string;
  /** The whole row opens this page (links and buttons inside keep their own click). */
  rowHref?: (item: T) => string;
  rowClass?: (item: T) => string | undefined;
  /** A line under the row spanning every column (e.g. the error of a failed email). */
  rowDetail?: (item: T) => ReactNode;
  tableClass?: string;
  groupClass?: string;
  busy?: boolean;
  /** Ticking rows (ListView's bulk actions). */
  selection?: { selected: Set<string>; toggle: (key: string, on: boolean) => void; setAll: (on: boolean) => void };
}

/**
 * The table of a list, also on its own inside a record (deliveries, attachments): a card per row on a
 * narrow screen, secondary columns dropped on a mid-size one, a scroll hint when it still does not fit.
 */
export function ListTable<T>(props: ListTableProps<T>) {
  const { columns, items, rowKey = defaultKey, selection } = props;
  const colCount = columns.length + (selection ? 1 : 0);

  function openRow(e: MouseEvent<HTMLElement>, item: T) {
    if (!props.rowHref) return;
    // Let links, buttons, disclosures, text selection and modified clicks behave normally.
    if ((e.target as HTMLElement).closest('a, button, input, label, summary, details') || window.getSelection()?.toString()) return;
    navigate(props.rowHref(item));
  }

  return (
    <TableScroll>
      <table
        className={`list-table list-view${props.rowDetail ? ' with-detail' : ''}${props.tableClass ? ` ${props.tableClass}` : ''}`}
        aria-busy={props.busy || undefined}
      >
        <thead>
          <tr>
            {selection && (
              <th scope="col" className="select-cell">
                <input
                  type="checkbox"
                  className="checkbox"
                  aria-label="Select all"
                  checked={items.length > 0 && items.every((i) => selection.selected.has(rowKey(i)))}
                  onChange={(e) => selection.setAll(e.target.checked)}
                />
              </th>
            )}
            {columns.map((c) => (
              <th key={c.key} scope="col" className={cellClass(c)}>
                {c.hiddenLabel ? <span className="visually-hidden">{c.label}</span> : c.label}
              </th>
            ))}
          </tr>
        </thead>
        {items.map((item) => {
          const key = rowKey(item);
          const detail = props.rowDetail?.(item);
          const extra = props.rowClass?.(item);
          const cls = [props.rowHref ? 'clickable' : '', extra ?? ''].filter(Boolean).join(' ') || undefined;
          const open = props.rowHref ? (e: MouseEvent<HTMLElement>) => openRow(e, item) : undefined;
          return (
            <tbody key={key} className={props.groupClass ? `list-row ${props.groupClass}` : 'list-row'}>
              <tr className={cls} onClick={open}>
                {selection && (
                  <td className="select-cell">
                    <input
                      type="checkbox"
                      className="checkbox"
                      aria-label="Select"
                      checked={selection.selected.has(key)}
                      onChange={(e) => selection.toggle(key, e.target.checked)}
                    />
                  </td>
                )}
                {columns.map((c) => (
                  <td key={c.key} className={cellClass(c)} data-label={c.hiddenLabel ? undefined : c.label}>
                    <div className="cell-value">{c.render(item)}</div>
                  </td>
                ))}
              </tr>
              {detail && (
                <tr className={`row-detail${cls ? ` ${cls}` : ''}`} onClick={open}>
                  <td colSpan={colCount}>{detail}</td>
                </tr>
              )}
            </tbody>
          );
        })}
      </table>
    </TableScroll>
  );
}

function cellClass<T>(c: Column<T>): string | undefined {
  const parts = [c.className, c.priority === 2 ? 'col-secondary' : undefined].filter(Boolean);
  return parts.length ? parts.join(' ') : undefined;
}

function FilterBar(props: {
  query: ListQuery;
  filters: ListFilter[];
  search?: { label?: string; placeholder: string };
  label: string;
  status: ReactNode;
}) {
  const { query } = props;
  const q = query.values.q ?? '';
  const [search, setSearch] = useState(q);
  const idBase = props.label.toLowerCase().replace(/\W+/g, '-');

  // The URL changed underneath (Clear filters, back button): the box follows.
  useEffect(() => {
    setSearch((s) => (s.trim() === q.trim() ? s : q));
  }, [q]);

  // Typing in Search filters after a short pause.
  useEffect(() => {
    if (search.trim() === q.trim()) return;
    const t = window.setTimeout(() => query.set({ q: search.trim() }), SEARCH_DELAY_MS);
    return () => window.clearTimeout(t);
  }, [search, q]);

  function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (search.trim() !== q.trim()) query.set({ q: search.trim() });
  }

  return (
    <form className="card filters" role="search" aria-label={props.label} onSubmit={submit}>
      {props.search && (
        <div className="filter filter-wide">
          <label htmlFor={`${idBase}-search`}>{props.search.label ?? 'Search'}</label>
          <input
            id={`${idBase}-search`}
            type="search"
            placeholder={props.search.placeholder}
            autoComplete="off"
            spellCheck={false}
            value={search}
            onChange={(e) => setSearch(e.target.value)}
          />
        </div>
      )}
      {props.filters.map((f) => {
        const value = query.values[f.name] ?? '';
        if (f.suggest) return <SuggestFilter key={f.name} filter={f} id={`${idBase}-${f.name.replace(/\W+/g, '-').toLowerCase()}`} value={value} onChange={(v) => query.set({ [f.name]: v })} />;
        const unknown = value !== '' && !f.options.some((o) => o.value === value);
        const id = `${idBase}-${f.name.replace(/\W+/g, '-').toLowerCase()}`;
        return (
          <div key={f.name} className={f.wide ? 'filter filter-medium' : 'filter'}>
            <label htmlFor={id}>{f.label}</label>
            <select id={id} value={value} onChange={(e) => query.set({ [f.name]: e.target.value })}>
              <option value="">{f.allLabel ?? 'All'}</option>
              {unknown && <option value={value}>{f.unknownLabel ?? value}</option>}
              {f.options.map((o) => (
                <option key={o.value} value={o.value}>
                  {o.label}
                </option>
              ))}
            </select>
          </div>
        );
      })}
      <div className="filter-status" aria-live="polite">
        {props.status}
      </div>
    </form>
  );
}

/**
 * A filter with too many values for a drop-down: a text box whose suggestions (a datalist) are the
 * values matching what is typed, asked of the API after a short pause. Picking a suggestion, Enter or
 * leaving the box applies what it holds; an empty box is no filter. A fixed choice is shown and typed
 * by its label ("Shared mailboxes"), any other value as itself.
 */
function SuggestFilter({ filter, id, value, onChange }: { filter: ListFilter; id: string; value: string; onChange: (value: string) => void }) {
  const labelOf = (v: string) => filter.options.find((o) => o.value === v)?.label ?? v;
  const [text, setText] = useState(labelOf(value));
  const [suggestions, setSuggestions] = useState<{ value: string; label: string }[]>([]);

  // The URL changed underneath (Clear filters, back button): the box follows.
  useEffect(() => setText(labelOf(value)), [value]);

  useEffect(() => {
    let cancelled = false;
    const t = window.setTimeout(() => {
      filter.suggest!(text.trim()).then(
        (found) => !cancelled && setSuggestions(found),
        () => undefined,
      );
    }, SEARCH_DELAY_MS);
    return () => {
      cancelled = true;
      window.clearTimeout(t);
    };
  }, [text]);

  const valueOf = (typed: string) => filter.options.find((o) => o.label === typed.trim())?.value ?? typed.trim();
  const apply = (typed: string) => {
    const v = valueOf(typed);
    if (v !== value) onChange(v);
  };
  const choices = [...filter.options, ...suggestions.filter((s) => !filter.options.some((o) => o.value === s.value))];
  return (
    <div className={filter.wide ? 'filter filter-medium' : 'filter'}>
      <label htmlFor={id}>{filter.label}</label>
      <input
        id={id}
        type="search"
        list={`${id}-choices`}
        placeholder={filter.allLabel ?? 'All'}
        autoComplete="off"
        spellCheck={false}
        value={text}
        onChange={(e) => {
          setText(e.target.value);
          // A suggestion picked from the list (not typed: "ann" may be on its way to "anna") or an emptied box applies at once.
          const typed = (e.nativeEvent as InputEvent).inputType?.startsWith('insert') && (e.nativeEvent as InputEvent).inputType !== 'insertReplacementText';
          if (e.target.value === '' || (!typed && choices.some((c) => (filter.options.includes(c) ? c.label : c.value) === e.target.value))) apply(e.target.value);
        }}
        onKeyDown={(e) => {
          if (e.key !== 'Enter') return;
          e.preventDefault();
          apply(text);
        }}
        onBlur={() => apply(text)}
      />
      <datalist id={`${id}-choices`}>
        {choices.map((c) => (
          <option key={c.value} value={filter.options.includes(c) ? c.label : c.value}>
            {filter.options.includes(c) ? undefined : c.label}
          </option>
        ))}
      </datalist>
    </div>
  );
}

/**
 * A card holding a table wider than itself: it scrolls inside the card (the page never widens) and
 * says so with a visible hint and a shadow on the side that has more.
 */
export function TableScroll({ children, className }: { children: ReactNode; className?: string }) {
  const ref = useRef<HTMLDivElement>(null);
  const [more, setMore] = useState<{ left: boolean; right: boolean }>({ left: false, right: false });

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const measure = () => {
      const left = el.scrollLeft > 1;
      const right = el.scrollLeft + el.clientWidth < el.scrollWidth - 1;
      setMore((m) => (m.left === left && m.right === right ? m : { left, right }));
    };
    measure();
    el.addEventListener('scroll', measure, { passive: true });
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    if (el.firstElementChild) ro.observe(el.firstElementChild);
    return () => {
      el.removeEventListener('scroll', measure);
      ro.disconnect();
    };
  }, []);

  const scrolls = more.left || more.right;
  return (
    <div className={`card table-card table-scroll${className ? ` ${className}` : ''}`}>
      {scrolls && (
        <p className="scroll-hint" data-testid="scroll-hint">
          <span aria-hidden="true">↔</span> The table is wider than the screen: scroll sideways for more columns.
        </p>
      )}
      <div
        ref={ref}
        className={`table-scroll-area${more.left ? ' more-left' : ''}${more.right ? ' more-right' : ''}`}
        tabIndex={scrolls ? 0 : undefined}
        role={scrolls ? 'region' : undefined}
        aria-label={scrolls ? 'Table, scrolls sideways' : undefined}
      >
        {children}
      </div>
    </div>
  );
}
