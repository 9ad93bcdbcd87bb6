import { Link } from './router.tsx';
import { paths } from './routes.ts';
import { useTitle } from './use-title.ts';

export function NotFoundPage() {
  useTitle('Page not found');
  return (
    <>
      <div className="page-header">
        <h1>Page not found</h1>
      </div>
      <div className="card">
        <p>
          This page does not exist. <Link to={paths.settings}>Go to the start page</Link>.
        </p>
      </div>
    </>
  );
}
