const EXAMPLE = `import { createHmac, timingSafeEqual } from 'node:crypto';

// rawBody: the request body exactly as received (a string or Buffer, before JSON.parse).
function isFromMailroom(rawBody, signatureHeader, secret) {
  const parts = Object.fromEntries(signatureHeader.split(',').map((p) => p.split('=', 2)));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > 300) return false; // replayed or stale
  const expected = createHmac('sha256', secret).update(\`\${parts.t}.\${rawBody}\`).digest('hex');
  const given = Buffer.from(String(parts.v1 ?? ''), 'utf8');
  return given.length === expected.length && timingSafeEqual(given, Buffer.from(expected, 'utf8'));
}

// isFromMailroom(body, req.headers['x-mailroom-signature'], process.env.MAILROOM_WEBHOOK_SECRET)`;

/** How a receiver checks the X-Mailroom-Signature header of a webhook delivery, with a Node.js example. */
export function WebhookSignatureExample() {
  return (
    <div className="signature-help">
      <p>
        Every delivery is an HTTP POST with a JSON body and the header{' '}
        <code className="mono">X-Mailroom-Signature: t=&lt;unix time&gt;,v1=&lt;signature&gt;</code>. The signature is
        the hex HMAC-SHA256, keyed with the signing secret, of the timestamp, a dot and the raw request body:{' '}
        <code className="mono">&lt;t&gt;.&lt;raw body&gt;</code>. Compute it over the body exactly as received, compare
        in constant time and reject old timestamps. Answer with a 2xx status once the message is stored; other answers
        are retried.
      </p>
      <pre className="code-example">
        <code>{EXAMPLE}</code>
      </pre>
    </div>
  );
}
