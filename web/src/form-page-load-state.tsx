import type { ReactNode } from 'react';
import type { ApiError } from './api.ts';
import { ErrorAlert } from './error-alert.tsx';

interface FormPageLoadStateProps {
  header: ReactNode;
  /** The record could not be read; null while it is being read. */
  error: ApiError | null;
  /** Shown when the record does not exist (404). */
  notFound: string;
}

/** An edit page before its form can be shown: the header with "Loading…" or why the record could not be read. */
export function FormPageLoadState({ header, error, notFound }: FormPageLoadStateProps) {
  return (
    <>
      {header}
      {error ? (
        <ErrorAlert problem={error.status === 404 ? { message: notFound } : error} />
      ) : (
        <p className="loading">Loading…</p>
      )}
    </>
  );
}
