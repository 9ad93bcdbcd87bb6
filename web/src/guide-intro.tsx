import type { AuthMethodChoice } from './api.ts';
import { guideLabel } from './auth-methods.ts';
import { Link } from './router.tsx';
import { guidePath } from './routes.ts';

/** Under a new server's form: a guide per OAuth provider, through its console with this installation's values. */
export function GuideIntro({ methods }: { methods: AuthMethodChoice[] | null }) {
  const guides = (methods ?? []).flatMap((m) => (m.oauth ? [m.oauth] : []));
  if (guides.length === 0) return null;
  return (
    <p className="guide-intro">
      First mailbox with OAuth?{' '}
      {guides.map((o, i) => (
        <span key={o.id}>
          {i > 0 && ' · '}
          <Link to={guidePath(o.id)}>{guideLabel(o)}</Link>
        </span>
      ))}{' '}
      walks through the provider’s console with this installation’s values.
    </p>
  );
}
