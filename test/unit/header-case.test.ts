import assert from 'node:assert/strict';
import { test } from 'node:test';
import nodemailer from 'nodemailer';
import { buildMime } from '../../src/graph/graph-sender.ts';
import { withHeaderCase } from '../../src/smtp/header-case.ts';

const msg = {
  from: 'sales@contoso.example',
  to: ['customer@fabrikam.example'],
  subject: 'Invoice',
  text: 'Attached.',
  headers: { 'X-ERP-Document': 'INV-42', 'In-Reply-To': '<order-41@erp.example>' },
};

test('over SMTP a custom header keeps the case it was given', async () => {
  const transport = nodemailer.createTransport({ streamTransport: true, buffer: true });
  const info = await transport.sendMail(withHeaderCase(msg));
  const mime = (info.message as Buffer).toString('utf8');
  assert.match(mime, /^X-ERP-Document: INV-42$/m);
  assert.doesNotMatch(mime, /X-Erp-Document/);
  // Mailroom's own headers keep nodemailer's spelling.
  assert.match(mime, /^Content-Type: text\/plain/m);
  assert.match(mime, /^In-Reply-To: <order-41@erp\.example>$/m);
});

test('through Graph (MIME) a custom header keeps the case it was given', async () => {
  const mime = (await buildMime(msg)).toString('utf8');
  assert.match(mime, /^X-ERP-Document: INV-42$/m);
});
