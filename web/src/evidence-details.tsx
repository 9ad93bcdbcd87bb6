// The raw server evidence behind a failure (SMTP transcript, token endpoint response, ...).

export function formatEvidence(evidence: unknown): string {
  if (typeof evidence === 'string') return evidence;
  try {
    return JSON.stringify(evidence, null, 2);
  } catch {
    return String(evidence);
  }
}

export function EvidenceDetails({ evidence }: { evidence: unknown }) {
  if (evidence === undefined || evidence === null || evidence === '') return null;
  return (
    <details className="evidence" open>
      <summary>Server response</summary>
      <pre>{formatEvidence(evidence)}</pre>
    </details>
  );
}
