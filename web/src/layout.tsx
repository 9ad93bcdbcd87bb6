import type { ReactNode } from 'react';
import type { Admin } from './api.ts';
import { Link, useLocation } from './router.tsx';
import { paths } from './routes.ts';
import { ServerProblemsBanner } from './server-problems-banner.tsx';

interface LayoutProps {
  admin: Admin;
  onLogout: () => void;
  loggingOut?: boolean;
  children: ReactNode;
}

/** Frame of the logged-in pages: top bar, left sidebar, main content. */
export function Layout({ admin, onLogout, loggingOut = false, children }: LayoutProps) {
  const { pathname } = useLocation();
  const inSettings = pathname === paths.settings || pathname.startsWith(`${paths.settings}/`);
  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <span className="topbar-brand">Mailroom</span>
        <div className="topbar-user">
          <span className="topbar-email" title="Logged in as">
            {admin.email}
          </span>
          <button type="button" className="btn btn-topbar" onClick={onLogout} disabled={loggingOut}>
            Log out
          </button>
        </div>
      </header>
      <ServerProblemsBanner pathname={pathname} />
      <div className="shell">
        <nav className="sidebar" aria-label="Main">
          <h2 className="sidebar-heading">Configuration</h2>
          <ul className="sidebar-links">
            <li>
              <Link to={paths.settings} aria-current={inSettings ? 'page' : undefined}>
                Settings
              </Link>
            </li>
          </ul>
        </nav>
        <main id="main" className="content" tabIndex={-1}>
          {children}
        </main>
      </div>
    </div>
  );
}
