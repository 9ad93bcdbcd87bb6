import { Link } from './router.tsx';
import { paths } from './routes.ts';

/** Under a new server's form: where to start with a first Microsoft 365 mailbox. */
export function OutlookGuideIntro() {
  return (
    <p className="guide-intro">
      First Microsoft 365 mailbox? <Link to={paths.outlookGuide}>How to connect Outlook</Link> walks through the Azure
      app registration with this installation's values.
    </p>
  );
}
