import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/config.ts';
import { authMethodChoices } from '../../src/servers/mail-server-service.ts';
import { connectButtonLabel, describeAuth, describeTransport, TRANSPORTS } from '../../web/src/server-form-description.ts';
import type { AuthMethodChoice } from '../../web/src/api.ts';

// The form's descriptions, built on the Authenticate Using options exactly as the API lists them.
const choices = authMethodChoices(loadConfig({ BASE_URL: 'https://mailroom.contoso.com', DATA_DIR: '/nonexistent' })) as AuthMethodChoice[];
const of = (authType: string) => choices.find((c) => c.authType === authType)!;
const MICROSOFT_WORDS = /Certificates & secrets|Exchange Online|shared mailbox|Send As/;

test('Outlook OAuth offers Client Credential and Access, the shared mailbox, the secret expiry and Exchange Online limits', () => {
  const d = describeAuth(of('outlook_oauth'), 'outgoing');
  assert.equal(d.credentials, 'oauth');
  assert.equal(d.connectionChoices, true);
  assert.equal(d.sharedMailbox?.label, 'Send as a shared mailbox');
  assert.match(d.secretExpiry?.help ?? '', /Certificates & secrets/);
  assert.match(d.limitHelp.maxConnections, /Exchange Online: 3/);
  assert.equal(d.guide?.id, 'outlook');
  assert.equal(connectButtonLabel(of('outlook_oauth'), 'delegated'), 'Connect your Outlook account');
  assert.equal(connectButtonLabel(of('outlook_oauth'), 'application'), 'Check application access');
  // Incoming: no shared mailbox or secret expiry (the outgoing server tracks them), the same choices.
  const incoming = describeAuth(of('outlook_oauth'), 'incoming');
  assert.equal(incoming.sharedMailbox, null);
  assert.equal(incoming.connectionChoices, true);
});

for (const authType of ['gmail_oauth', 'password', 'none']) {
  test(`${authType} has no Microsoft wording and no Client Credential or Access`, () => {
    for (const direction of ['outgoing', 'incoming'] as const) {
      if (direction === 'incoming' && !of(authType).incoming) continue;
      const d = describeAuth(of(authType), direction);
      assert.equal(d.connectionChoices, false);
      assert.equal(d.sharedMailbox, null);
      const words = [d.username.help, d.secretExpiry?.help, d.note, ...Object.values(d.limitHelp)].join(' ');
      assert.doesNotMatch(words, MICROSOFT_WORDS, `${authType} ${direction}: ${words}`);
      assert.doesNotMatch(d.username.help ?? '', /Username\/Password/);
    }
    if (authType === 'gmail_oauth') assert.equal(connectButtonLabel(of(authType), 'application'), 'Connect your Gmail account');
    else assert.equal(connectButtonLabel(of(authType), 'delegated'), null);
  });
}

test('each transport names the permissions of delegated and of application access', () => {
  assert.match(describeTransport('outgoing', 'smtp').permissions.application, /SMTP\.SendAsApp/);
  assert.match(describeTransport('outgoing', 'graph').permissions.application, /Mail\.Send/);
  assert.match(describeTransport('incoming', 'imap').permissions.application, /IMAP\.AccessAsApp/);
  assert.match(describeTransport('incoming', 'graph').permissions.application, /Mail\.ReadWrite/);
  assert.deepEqual(TRANSPORTS.outgoing.map((t) => [t.value, t.hostFields]), [['smtp', true], ['graph', false]]);
});
