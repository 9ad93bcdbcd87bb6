import assert from 'node:assert/strict';
import { test } from 'node:test';
import { guideNetworkHosts } from '../../web/src/guide-network-hosts.ts';

// Guide step 7 names what the Mailroom server must reach: each host once, with its port once.
test('an outgoing server on a private authority host: host:port from the configured origin, not the port twice', () => {
  assert.deepEqual(
    guideNetworkHosts({ direction: 'outgoing', authorityHost: 'https://127.0.0.1:9743', graphHost: 'https://graph.microsoft.com', smtpHost: '127.0.0.1', smtpPort: 2587, sendUsing: 'smtp' }),
    ['127.0.0.1:9743', '127.0.0.1:2587'],
  );
});

test('an incoming server uses MICROSOFT_AUTHORITY_HOST too, not login.microsoftonline.com', () => {
  assert.deepEqual(
    guideNetworkHosts({ direction: 'incoming', authorityHost: 'https://login.microsoftonline.us', graphHost: 'https://graph.microsoft.us', imapHost: 'outlook.office365.us', imapPort: 993, serverType: 'imap' }),
    ['login.microsoftonline.us:443', 'outlook.office365.us:993'],
  );
});

test('Microsoft Graph servers need the Graph host, not SMTP or IMAP', () => {
  assert.deepEqual(guideNetworkHosts({ direction: 'outgoing', authorityHost: 'https://login.microsoftonline.com', graphHost: 'https://graph.microsoft.com', sendUsing: 'graph', smtpHost: 'smtp.office365.com', smtpPort: 587 }), [
    'login.microsoftonline.com:443',
    'graph.microsoft.com:443',
  ]);
  assert.deepEqual(guideNetworkHosts({ direction: 'incoming', authorityHost: 'https://127.0.0.1:9743', graphHost: 'https://127.0.0.1:9800', serverType: 'graph' }), ['127.0.0.1:9743', '127.0.0.1:9800']);
});
