// The raw server evidence behind a failure or a result (SMTP reply, IMAP response, token endpoint answer, ...).

/** Protocol text keeps its own line breaks: CRLF (real or left escaped by a JSON layer) reads as a new line. */
function readableText(s: string): string {
  return s.replace(/\\r\\n|\\n/g, '\n').replace(/\r\n?/g, '\n').replace(/\n+$/, '');
}

function lines(value: unknown, indent: string): string[] {
  if (value === null || value === undefined) return [`${indent}—`];
  if (typeof value === 'string') return readableText(value).split('\n').map((l) => indent + l);
  if (typeof value !== 'object') return [indent + String(value)];
  if (Array.isArray(value)) return value.flatMap((v) => lines(v, indent));
  const out: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    if (v !== null && typeof v === 'object') {
      out.push(`${indent}${k}:`, ...lines(v, `${indent}  `));
    } else {
      const [first = '', ...rest] = lines(v, '');
      out.push(`${indent}${k}: ${first}`, ...rest.map((l) => `${indent}  ${l}`));
    }
  }
  return out;
}

/**
 * Evidence as plain lines: a string as it came (its CRLFs as line breaks), an object as "key: value"
 * lines with nested objects indented. Never a JSON string full of "\r\n".
 */
export function formatEvidence(evidence: unknown): string {
  try {
    return lines(evidence, '').join('\n');
  } catch {
    return String(evidence);
  }
}

interface EvidenceDetailsProps {
  evidence: unknown;
  /** The summary line, e.g. "Server response" or "Remote server's answer". */
  summary?: string;
  /** Collapsed unless asked: the plain-words explanation comes first. */
  open?: boolean;
}

/** The raw evidence, collapsed under its summary; the text wraps and keeps its line breaks. */
export function EvidenceDetails({ evidence, summary = 'Server response', open = false }: EvidenceDetailsProps) {
  if (evidence === undefined || evidence === null || evidence === '') return null;
  return (
    <details className="evidence" open={open || undefined}>
      <summary>{summary}</summary>
      <pre>{formatEvidence(evidence)}</pre>
    </details>
  );
}
