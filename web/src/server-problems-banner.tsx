import { useEffect, useState, type ReactNode } from 'react';
import { api, type ServerHealth } from './api.ts';
import { Link } from './router.tsx';
import { paths, serverFormPath } from './routes.ts';

/** How often the servers are read again while a page stays open. */
const REFRESH_MS = 60_000;
/** Lines shown; the rest is "and N more" on the health page. */
const MAX_LINES = 3;

interface Line {
  key: string;
  /** Lower sorts first: what has stopped mail before what will. */
  rank: number;
  content: ReactNode;
}

const days = (n: number) => `${n} day${n === 1 ? '' : 's'}`;

function linesFor(s: ServerHealth): Line[] {
  const name = <Link to={serverFormPath(s.direction, s.id)}>{`"${s.name || s.username}"`}</Link>;
  const out: Line[] = [];
  const e = s.clientSecretExpiry;
  if (e?.state === 'expired') {
    out.push({ key: `${s.id}:secret`, rank: 0, content: <>The client secret of {name} has expired: mail has stopped.</> });
  }
  if (s.tokenStatus === 'reconnect_needed') {
    out.push({ key: `${s.id}:token`, rank: 1, content: <>{name} must be reconnected.</> });
  }
  if (e?.state === 'expiring' && e.daysLeft !== null) {
    const when = e.daysLeft <= 0 ? 'today' : `in ${days(e.daysLeft)}`;
    out.push({
      key: `${s.id}:secret`,
      rank: 2 + e.daysLeft / 1000,
      content: (
        <>
          The client secret of {name} expires {when}.
        </>
      ),
    });
  }
  return out;
}

/**
 * One compact bar on every logged-in page while a server needs attention: an expiring or expired client
 * secret, or a connection to reconnect. Read on each navigation and every minute.
 */
export function ServerProblemsBanner({ pathname }: { pathname: string }) {
  const [servers, setServers] = useState<ServerHealth[]>([]);

  useEffect(() => {
    let stopped = false;
    const load = () =>
      api.serverHealth().then(
        (r) => !stopped && setServers(r.items),
        // Not worth an error of its own: the page shows its own failures (and 401 goes to the login).
        () => undefined,
      );
    void load();
    const timer = window.setInterval(() => {
      if (!document.hidden) void load();
    }, REFRESH_MS);
    return () => {
      stopped = true;
      window.clearInterval(timer);
    };
  }, [pathname]);

  const lines = servers.flatMap(linesFor).sort((a, b) => a.rank - b.rank);
  if (lines.length === 0) return null;
  const shown = lines.slice(0, MAX_LINES);
  const more = lines.length - shown.length;
  const stopped = lines.some((l) => l.rank < 2);

  return (
    <section
      className={stopped ? 'problems-banner problems-banner-stopped' : 'problems-banner'}
      aria-label="Mail server warnings"
    >
      <ul>
        {shown.map((l, i) => (
          <li key={l.key}>
            {l.content}
            {more > 0 && i === shown.length - 1 && (
              <>
                {' '}
                <Link to={paths.health}>{`and ${more} more`}</Link>
              </>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}
