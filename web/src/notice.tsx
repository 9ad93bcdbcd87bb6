import type { ReactNode } from 'react';

/** A polite status message (success or information). */
export function Notice({ kind = 'success', children }: { kind?: 'success' | 'info' | 'warning'; children: ReactNode }) {
  return (
    <div className={`alert alert-${kind}`} role="status">
      {children}
    </div>
  );
}
