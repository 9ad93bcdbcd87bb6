import { useEffect, useState, type ReactNode } from 'react';
import type { Admin } from './api.ts';
import { technicalGroups } from './nav-links.ts';
import { Link, useLocation } from './router.tsx';
import { paths } from './routes.ts';
import { ServerProblemsBanner } from './server-problems-banner.tsx';

interface LayoutProps {
  admin: Admin;
  onLogout: () => void;
  loggingOut?: boolean;
  children: ReactNode;
}

/**
 * Frame of the logged-in pages: top bar, left sidebar, main content. On a narrow screen the sidebar
 * folds into a Menu button in the top bar that opens every page of Settings.
 */
export function Layout({ admin, onLogout, loggingOut = false, children }: LayoutProps) {
  const { pathname } = useLocation();
  const inSettings = pathname === paths.settings || pathname.startsWith(`${paths.settings}/`);
  const [menuOpen, setMenuOpen] = useState(false);

  // Opening a page closes the menu.
  useEffect(() => setMenuOpen(false), [pathname]);

  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <button
          type="button"
          className="btn btn-topbar topbar-menu"
          aria-expanded={menuOpen}
          aria-controls="main-menu"
          onClick={() => setMenuOpen((o) => !o)}
        >
          <span aria-hidden="true">☰</span> Menu
        </button>
        <span className="topbar-brand">Mailroom</span>
        <div className="topbar-user">
          <span className="topbar-email" title={`Logged in as ${admin.email}`}>
            {admin.email}
          </span>
          <button type="button" className="btn btn-topbar" onClick={onLogout} disabled={loggingOut}>
            Log out
          </button>
        </div>
      </header>
      <ServerProblemsBanner pathname={pathname} />
      <div className="shell">
        <nav id="main-menu" className={menuOpen ? 'sidebar sidebar-open' : 'sidebar'} aria-label="Main">
          <h2 className="sidebar-heading">Configuration</h2>
          <ul className="sidebar-links">
            <li>
              <Link to={paths.settings} aria-current={inSettings && !menuOpen ? 'page' : undefined}>
                Settings
              </Link>
            </li>
          </ul>
          {/* Only while the narrow-screen menu is open: on a wide screen Settings lists these pages itself. */}
          {menuOpen &&
            technicalGroups().map((g) => (
              <div key={g.heading} className="sidebar-group">
                <h3 className="sidebar-heading">{g.heading}</h3>
                <ul className="sidebar-links">
                  {g.links.map((l) => (
                    <li key={l.path}>
                      <Link to={l.path} aria-current={pathname === l.path ? 'page' : undefined}>
                        {l.label}
                      </Link>
                    </li>
                  ))}
                </ul>
              </div>
            ))}
        </nav>
        <main id="main" className="content" tabIndex={-1}>
          {children}
        </main>
      </div>
    </div>
  );
}
