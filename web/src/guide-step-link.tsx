import type { Problem } from './api.ts';
import { Link } from './router.tsx';
import { guideStepPath, hasGuide } from './routes.ts';

function validStep(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 7 ? v : null;
}

/** The guide step (1–7) of a failure: its own `guideStep`, else `evidence.guideStep`; null when it has none. */
export function guideStepOf(problem: Problem): number | null {
  const own = validStep(problem.guideStep);
  if (own !== null) return own;
  const ev: unknown = problem.evidence;
  return typeof ev === 'object' && ev !== null && 'guideStep' in ev ? validStep(ev.guideStep) : null;
}

/** The provider whose guide explains a failure: the evidence's own provider (e.g. "gmail"), if any. */
export function guideOf(problem: Problem): string | null {
  const ev: unknown = problem.evidence;
  return typeof ev === 'object' && ev !== null && 'provider' in ev && typeof ev.provider === 'string' && hasGuide(ev.provider) ? ev.provider : null;
}

/** "See step N of the guide": opens the provider's How to connect guide (default Outlook's) at that step. */
export function GuideStepLink({ step, guide }: { step: number; guide?: string | null }) {
  return (
    <p className="guide-step-link">
      <Link to={guideStepPath(step, guide)}>{`See step ${step} of the guide`}</Link>
    </p>
  );
}
