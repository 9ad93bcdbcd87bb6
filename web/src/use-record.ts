import { useCallback, useEffect, useRef, useState } from 'react';
import { asApiError, type ApiError } from './api.ts';

const REFRESH_MS = 5000;

/**
 * One record for a detail page: read when the page opens, read again every 5 seconds while
 * `refreshWhile(record)` holds (states that change by themselves) and `paused` is false.
 */
export function useRecord<T>(load: (id: string) => Promise<T>, id: string, refreshWhile: (record: T) => boolean, paused = false) {
  const [record, setRecord] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    let cancelled = false;
    loadRef.current(id).then(
      (r) => !cancelled && setRecord(r),
      (e: unknown) => !cancelled && setError(asApiError(e)),
    );
    return () => {
      cancelled = true;
    };
  }, [id]);

  const changing = record !== null && refreshWhile(record);
  useEffect(() => {
    if (!changing || paused) return;
    let stopped = false;
    let timer = 0;
    const tick = async () => {
      if (!document.hidden) {
        try {
          const r = await loadRef.current(id);
          if (!stopped) setRecord(r);
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
  }, [id, changing, paused]);

  /** Read the record again now (after an action); a failure keeps what is shown. */
  const reload = useCallback(async () => {
    try {
      setRecord(await loadRef.current(id));
    } catch {
      // The action's own error is what the page shows.
    }
  }, [id]);

  return { record, error, setRecord, reload, refreshing: changing };
}
