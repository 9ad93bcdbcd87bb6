import type { ReactNode } from 'react';
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

/** A guide page's header: its place under Settings and its title. */
export function GuidePageHeader({ title }: { title: string }) {
  return (
    <div className="page-header">
      <div>
        <p className="breadcrumb">Settings / Technical / Mail Server</p>
        <h1>{title}</h1>
      </div>
    </div>
  );
}

/** One numbered step of a connection guide; `active` is the step the address points at. */
export function GuideStep({ n, title, active, children }: { n: number; title: string; active: string; children: ReactNode }) {
  const id = `step-${n}`;
  return (
    <section id={id} className={active === id ? 'card guide-step guide-step-active' : 'card guide-step'} aria-labelledby={`${id}-heading`}>
      <h2 id={`${id}-heading`}>
        <span className="guide-step-number" aria-hidden="true">
          {n}
        </span>
        <span className="visually-hidden">{`Step ${n}: `}</span>
        {title}
      </h2>
      <div className="guide-step-body">{children}</div>
    </section>
  );
}
