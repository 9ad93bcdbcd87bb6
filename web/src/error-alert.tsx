import type { Problem } from './api.ts';
import { EvidenceDetails } from './evidence-details.tsx';

interface ErrorAlertProps {
  problem: Problem;
  /** Optional heading above the message. */
  title?: string;
  /** Show the error code (useful for support). */
  showCode?: boolean;
}

/** A failure: the message, the fix when the server knows one, and the raw evidence. */
export function ErrorAlert({ problem, title, showCode = false }: ErrorAlertProps) {
  return (
    <div className="alert alert-error" role="alert">
      {title && <p className="alert-title">{title}</p>}
      <p className="alert-message">{problem.message}</p>
      {problem.fix && (
        <p className="alert-fix">
          <span className="alert-fix-label">How to fix: </span>
          {problem.fix}
        </p>
      )}
      {showCode && problem.code && <p className="alert-code">Code: {problem.code}</p>}
      <EvidenceDetails evidence={problem.evidence} />
    </div>
  );
}
