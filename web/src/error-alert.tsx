import type { ReactNode } from 'react';
import type { Problem } from './api.ts';
import { EvidenceDetails } from './evidence-details.tsx';
import { GuideStepLink, guideOf, guideStepOf } from './guide-step-link.tsx';

interface ErrorAlertProps {
  problem: Problem;
  /** Optional heading above the message. */
  title?: string;
  /** Show the error code (useful for support). */
  showCode?: boolean;
  /** Extra actions below the fix (e.g. a button that applies it). */
  children?: ReactNode;
  /** The provider whose guide the step link opens; false: no link (servers without OAuth have no guide). */
  guide?: string | false | null;
}

/** A failure: the message, the fix when the server knows one, the guide step, and the raw evidence. */
export function ErrorAlert({ problem, title, showCode = false, children, guide }: ErrorAlertProps) {
  const step = guideStepOf(problem);
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
      {step !== null && guide !== false && <GuideStepLink step={step} guide={guide ?? guideOf(problem)} />}
      {children}
      {showCode && problem.code && <p className="alert-code">Code: {problem.code}</p>}
      <EvidenceDetails evidence={problem.evidence} />
    </div>
  );
}
