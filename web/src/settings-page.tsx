import { Link } from './router.tsx';
import { technicalGroups } from './nav-links.ts';
import { useTitle } from './use-title.ts';

export function SettingsPage() {
  useTitle('Settings');
  const groups = technicalGroups();
  return (
    <>
      <div className="page-header">
        <h1>Settings</h1>
      </div>
      <section className="card settings-section" aria-labelledby="settings-technical">
        <h2 id="settings-technical">Technical</h2>
        <div className="settings-groups">
          {groups.map((g) => {
            const id = `settings-group-${g.heading.toLowerCase().replace(/\W+/g, '-')}`;
            return (
              <section key={g.heading} className="settings-group" aria-labelledby={id}>
                <h3 id={id}>{g.heading}</h3>
                <ul className="settings-links">
                  {g.links.map((l) => (
                    <li key={l.path}>
                      <Link to={l.path}>{l.label}</Link>
                      <span className="settings-link-description">{l.description}</span>
                    </li>
                  ))}
                </ul>
              </section>
            );
          })}
        </div>
      </section>
    </>
  );
}
