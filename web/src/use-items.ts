import { useEffect, useState } from 'react';
import { type ApiError, asApiError } from './api.ts';

/**
 * Loads a list when the page opens: its items, or the error that kept them away. `reload` asks again
 * (after a change); `setItems` shows a change at once.
 */
export function useItems<T>(load: () => Promise<{ items: T[] }>) {
  const [items, setItems] = useState<T[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    let cancelled = false;
    load().then(
      (r) => !cancelled && setItems(r.items),
      (e: unknown) => !cancelled && setError(asApiError(e)),
    );
    return () => {
      cancelled = true;
    };
  }, []);
  const reload = () =>
    load().then(
      (r) => {
        setItems(r.items);
        setError(null);
      },
      (e: unknown) => setError(asApiError(e)),
    );
  return { items, error, setItems, reload };
}
