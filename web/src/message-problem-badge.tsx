import type { MessageProblem, MessageProblemCode } from './api.ts';

const LABELS: Record<MessageProblemCode, string> = {
  too_large: 'Too large',
  too_many_parts: 'Too many parts',
  too_deep: 'Nested too deep',
  malformed: 'Unreadable',
};

export function messageProblemLabel(code: MessageProblemCode): string {
  return LABELS[code] ?? 'Unreadable';
}

/** A received message that could not be read whole: amber, what is wrong in the tooltip. */
export function MessageProblemBadge({ problem }: { problem: MessageProblem }) {
  return (
    <span className="badge badge-message-held" title={problem.message}>
      {messageProblemLabel(problem.code)}
    </span>
  );
}
