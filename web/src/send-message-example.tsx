/** A copy-and-paste example of queueing a message with an API key (Authorization: Bearer). */
export function SendMessageExample({ from }: { from?: string | undefined }) {
  const body = JSON.stringify({
    from: from || 'sales@contoso.com',
    to: ['customer@example.com'],
    subject: 'Your invoice INV/2026/0042',
    text: 'Hello, please find your invoice attached.',
  });
  const example = [
    `curl -X POST ${window.location.origin}/api/v1/messages \\`,
    `  -H 'Authorization: Bearer YOUR_API_KEY' \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -d '${body}'`,
  ].join('\n');
  return (
    <pre className="code-example">
      <code>{example}</code>
    </pre>
  );
}
