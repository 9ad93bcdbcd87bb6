import { useCallback, useEffect, useRef, useState } from 'react';
import { asApiError, ApiError, type Page } from './api.ts';

const REFRESH_MS = 5000;

export interface PagedList<T> {
  /** null until the first page arrives. */
  items: T[] | null;
  nextCursor: string | null;
  /** The first page is being read (for new filters). */
  loading: boolean;
  error: ApiError | null;
  loadingMore: boolean;
  moreError: ApiError | null;
  refreshError: ApiError | null;
  loadMore: () => Promise<void>;
  /** Read the pages loaded so far again. */
  refresh: () => Promise<void>;
  /** Replace one item in place (after an action on it). */
  replace: (item: T) => void;
}

interface Loaded<T> {
  items: T[];
  nextCursor: string | null;
  /** Pages loaded so far ("Load more" adds one); a refresh reads the same number again. */
  pages: number;
}

/** Append `more` to `items`, skipping entries already listed (pages shift when new entries arrive). */
function mergeById<T extends { id: string }>(items: T[], more: T[]): T[] {
  const seen = new Set(items.map((m) => m.id));
  return [...items, ...more.filter((m) => !seen.has(m.id))];
}

/**
 * A cursor-paged list, newest first: the first page for `key` (filters), "Load more", and an automatic
 * refresh every 5 seconds while `refreshWhile(items)` holds (entries that change by themselves).
 */
export function usePagedList<T extends { id: string }>(
  fetchPage: (cursor: string | null) => Promise<Page<T>>,
  key: string,
  refreshWhile: (items: T[]) => boolean,
): PagedList<T> {
  const [list, setList] = useState<Loaded<T> | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ApiError | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [moreError, setMoreError] = useState<ApiError | null>(null);
  const [refreshError, setRefreshError] = useState<ApiError | null>(null);

  const fetchRef = useRef(fetchPage);
  fetchRef.current = fetchPage;
  // Answers to requests made for other filters, or after the page closed, are dropped.
  const generation = useRef(0);
  // A refresh started before "Load more" finished would drop the new page: it is discarded instead.
  const pageVersion = useRef(0);
  const listRef = useRef(list);
  listRef.current = list;

  useEffect(() => {
    const g = ++generation.current;
    setLoading(true);
    setLoadingMore(false);
    setMoreError(null);
    fetchRef.current(null).then(
      (page) => {
        if (g !== generation.current) return;
        pageVersion.current++;
        setList({ items: page.items, nextCursor: page.nextCursor, pages: 1 });
        setError(null);
        setRefreshError(null);
        setLoading(false);
      },
      (e: unknown) => {
        if (g !== generation.current) return;
        setError(asApiError(e));
        setLoading(false);
      },
    );
    return () => {
      generation.current++;
    };
  }, [key]);

  const refresh = useCallback(async () => {
    const current = listRef.current;
    if (!current) return;
    const g = generation.current;
    const version = pageVersion.current;
    try {
      let items: T[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: Page<T> = await fetchRef.current(cursor);
        items = mergeById(items, page.items);
        cursor = page.nextCursor;
        pages++;
      } while (cursor && pages < current.pages);
      if (g !== generation.current || version !== pageVersion.current) return;
      setList({ items, nextCursor: cursor, pages });
      setRefreshError(null);
    } catch (e) {
      if (g === generation.current) setRefreshError(asApiError(e));
    }
  }, []);

  const changing = list ? refreshWhile(list.items) : false;

  useEffect(() => {
    if (!changing) return;
    let stopped = false;
    let timer = 0;
    const tick = async () => {
      if (!document.hidden) await refresh();
      if (!stopped) timer = window.setTimeout(tick, REFRESH_MS);
    };
    timer = window.setTimeout(tick, REFRESH_MS);
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [changing, key, refresh]);

  const loadMore = useCallback(async () => {
    const cursor = listRef.current?.nextCursor;
    if (!cursor) return;
    const g = generation.current;
    setLoadingMore(true);
    setMoreError(null);
    try {
      const page = await fetchRef.current(cursor);
      if (g !== generation.current) return;
      pageVersion.current++;
      setList((l) => l && { items: mergeById(l.items, page.items), nextCursor: page.nextCursor, pages: l.pages + 1 });
    } catch (e) {
      if (g === generation.current) setMoreError(asApiError(e));
    } finally {
      if (g === generation.current) setLoadingMore(false);
    }
  }, []);

  const replace = useCallback((item: T) => {
    // A refresh already on its way may predate this change: let it be discarded.
    pageVersion.current++;
    setList((l) => l && { ...l, items: l.items.map((m) => (m.id === item.id ? item : m)) });
  }, []);

  return {
    items: list?.items ?? null,
    nextCursor: list?.nextCursor ?? null,
    loading,
    error,
    loadingMore,
    moreError,
    refreshError,
    loadMore,
    refresh,
    replace,
  };
}
