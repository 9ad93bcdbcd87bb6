import { Link } from './router.tsx';
import { Spinner } from './spinner.tsx';

interface FormPageHeaderProps {
  /** The list the breadcrumb leads back to, e.g. "Mail Servers". */
  listLabel: string;
  listPath: string;
  /** The Settings group the list belongs to (default "Mail Server"). */
  group?: string;
  /** The breadcrumb's last part: "New", the saved name, or "…" while loading. */
  crumb: string;
  title: string;
  /** id of the form the Create/Save button submits; no buttons until the form is shown. */
  formId: string | null;
  isNew: boolean;
  saving: boolean;
  deleting: boolean;
  /** The buttons are disabled (something is being saved or deleted). */
  disabled: boolean;
  onDelete: () => void;
}

/** The title of a create/edit page with its breadcrumb and the Create or Save and Delete buttons. */
export function FormPageHeader(p: FormPageHeaderProps) {
  return (
    <div className="page-header">
      <div>
        <nav aria-label="Breadcrumb">
          <p className="breadcrumb">
            <span>Settings</span>
            <span aria-hidden="true"> / </span>
            <span>Technical</span>
            <span aria-hidden="true"> / </span>
            <span>{p.group ?? 'Mail Server'}</span>
            <span aria-hidden="true"> / </span>
            <Link to={p.listPath}>{p.listLabel}</Link>
            <span aria-hidden="true"> / </span>
            <span>{p.crumb}</span>
          </p>
        </nav>
        <h1>{p.title}</h1>
      </div>
      {p.formId !== null && (
        <div className="page-actions">
          <button type="submit" form={p.formId} className="btn btn-primary" disabled={p.disabled}>
            {p.saving && <Spinner />}
            {p.isNew ? 'Create' : 'Save'}
          </button>
          {!p.isNew && (
            <button type="button" className="btn btn-danger" onClick={p.onDelete} disabled={p.disabled}>
              {p.deleting && <Spinner />}
              Delete
            </button>
          )}
        </div>
      )}
    </div>
  );
}
