import type { ChecklistItem } from './api.ts';
import { Link } from './router.tsx';
import { guideStepPath } from './routes.ts';

const MARKS: Record<ChecklistItem['state'], { icon: string; text: string }> = {
  done: { icon: '✓', text: 'Done' },
  failed: { icon: '✗', text: 'Failed' },
  todo: { icon: '○', text: 'To do' },
};

interface ServerChecklistProps {
  items: ChecklistItem[];
  /** Smaller, for the Connection panel. */
  compact?: boolean;
  /** On the guide page itself: link to the step's anchor on this page instead of opening the guide. */
  inPage?: boolean;
  /** id of the heading or label that names the list. */
  labelledBy?: string;
  /** The provider whose guide the step links open (default Outlook's). */
  guide?: string | null;
}

/** "3/4": how many checklist items are done. */
export function checklistSummary(items: ChecklistItem[]): string {
  return `${items.filter((i) => i.state === 'done').length}/${items.length}`;
}

/** A server's live checklist: ✓ done, ✗ failed, ○ to do, each open item with a link to its guide step. */
export function ServerChecklist({ items, compact = false, inPage = false, labelledBy, guide }: ServerChecklistProps) {
  return (
    <ul className={compact ? 'checklist checklist-compact' : 'checklist'} aria-labelledby={labelledBy}>
      {items.map((item) => {
        const mark = MARKS[item.state] ?? MARKS.todo;
        const step = `Step ${item.guideStep}`;
        return (
          <li key={item.key} className={`checklist-item checklist-${item.state}`}>
            <span className="checklist-icon" aria-hidden="true">
              {mark.icon}
            </span>
            <span className="visually-hidden">{`${mark.text}: `}</span>
            <span className="checklist-text">
              <span className="checklist-label">{item.label}</span>
              {item.detail && <span className="checklist-detail">{item.detail}</span>}
            </span>
            {item.state !== 'done' &&
              item.guideStep !== null &&
              (inPage ? (
                <a className="checklist-step" href={`#step-${item.guideStep}`}>
                  {step}
                </a>
              ) : (
                <Link className="checklist-step" to={guideStepPath(item.guideStep, guide)}>
                  {step}
                </Link>
              ))}
          </li>
        );
      })}
    </ul>
  );
}
