import assert from 'node:assert/strict';
import { test } from 'node:test';
import { accessIssues, APPLICATION_TENANT_ISSUE, sourceIssues } from '../../src/servers/mail-server-input.ts';
import { applicationClaims, applicationScope, outlookAppResource, requiredRole } from '../../src/oauth/outlook.ts';
import { appTokenKey } from '../../src/oauth/application-tokens.ts';

const jwt = (payload: Record<string, unknown>) => `${Buffer.from('{"typ":"JWT","alg":"RS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.c2lnbmF0dXJl`;
const graph = { host: 'https://graph.microsoft.com', resource: 'https://graph.microsoft.com' };

test('each transport asks for its own .default scope, Exchange\'s in the cloud of the sign-in host', () => {
  assert.equal(applicationScope({ transport: 'smtp' }, { microsoftAuthorityHost: 'https://login.microsoftonline.com', microsoftGraph: graph }), 'https://outlook.office365.com/.default');
  assert.equal(applicationScope({ transport: 'imap' }, { microsoftAuthorityHost: 'https://login.microsoftonline.us', microsoftGraph: graph }), 'https://outlook.office365.us/.default');
  assert.equal(outlookAppResource('https://login.partner.microsoftonline.cn'), 'https://partner.outlook.cn');
  assert.equal(applicationScope({ transport: 'graph' }, { microsoftAuthorityHost: 'https://login.microsoftonline.com', microsoftGraph: graph }), 'https://graph.microsoft.com/.default');
});

test('the role each transport needs', () => {
  assert.equal(requiredRole({ transport: 'smtp', direction: 'outgoing' }), 'SMTP.SendAsApp');
  assert.equal(requiredRole({ transport: 'imap', direction: 'incoming' }), 'IMAP.AccessAsApp');
  assert.equal(requiredRole({ transport: 'graph', direction: 'outgoing' }), 'Mail.Send');
  assert.equal(requiredRole({ transport: 'graph', direction: 'incoming' }), 'Mail.ReadWrite');
});

test('roles, tid, appid and oid are read from the token; anything else is ignored', () => {
  assert.deepEqual(applicationClaims(jwt({ roles: ['SMTP.SendAsApp', 7], tid: 't', appid: 'a', oid: 'o', scp: 'x' })), { roles: ['SMTP.SendAsApp'], tenantId: 't', appId: 'a', objectId: 'o' });
  assert.deepEqual(applicationClaims('opaque-token'), { roles: [], tenantId: null, appId: null, objectId: null });
});

test('application access needs a named tenant; common, organizations and consumers are refused with the reason', () => {
  for (const tenant of ['common', 'Organizations', 'consumers']) {
    assert.deepEqual(accessIssues({ access: 'application', authType: 'outlook_oauth', tenant, usesSource: false }), { tenant: APPLICATION_TENANT_ISSUE });
  }
  assert.deepEqual(accessIssues({ access: 'application', authType: 'outlook_oauth', tenant: 'contoso.com', usesSource: false }), {});
  assert.deepEqual(accessIssues({ access: 'delegated', authType: 'outlook_oauth', tenant: 'common', usesSource: false }), {});
  assert.ok(accessIssues({ access: 'application', authType: 'gmail_oauth', tenant: 'x.com', usesSource: false }).access);
});

test('an application connection serves any mailbox and transport; a delegated one only its own mailbox and resource', () => {
  const app = { id: 's', name: 'App', username: 'sales@contoso.com', direction: 'outgoing' as const, transport: 'smtp', access: 'application' as const, tokenSourceId: null, authType: 'outlook_oauth' as const };
  assert.deepEqual(sourceIssues(app, { username: 'billing@contoso.com', graph: true, direction: 'outgoing' }), {});
  const delegated = { ...app, access: 'delegated' as const };
  assert.ok(sourceIssues(delegated, { username: 'billing@contoso.com', graph: false, direction: 'outgoing' }).tokenSourceId);
  assert.ok(sourceIssues(delegated, { username: 'sales@contoso.com', graph: true, direction: 'outgoing' }).tokenSourceId);
  assert.deepEqual(sourceIssues(delegated, { username: 'sales@contoso.com', graph: false, direction: 'outgoing' }), {});
  assert.ok(sourceIssues(app, { id: 's', username: 'x@contoso.com', graph: false, direction: 'outgoing' }).tokenSourceId, 'not itself');
  assert.ok(sourceIssues({ ...app, tokenSourceId: 'other' }, { username: 'x@contoso.com', graph: false, direction: 'outgoing' }).tokenSourceId, 'no chains');
});

test('the token cache is shared per authority, tenant, app and resource', () => {
  const a = { authorityHost: 'https://login.microsoftonline.com', tenant: 'Contoso.com', clientId: 'ABC' };
  assert.equal(appTokenKey(a, 'https://outlook.office365.com/.default'), appTokenKey({ ...a, tenant: 'contoso.com', clientId: 'abc' }, 'https://outlook.office365.com/.default'));
  assert.notEqual(appTokenKey(a, 'https://outlook.office365.com/.default'), appTokenKey(a, 'https://graph.microsoft.com/.default'));
  assert.notEqual(appTokenKey(a, 'x'), appTokenKey({ ...a, tenant: 'fabrikam.com' }, 'x'));
});

test('the guide\'s Application access steps carry this app\'s ids and the mailbox, with a placeholder where the object id is unknown', async () => {
  const { applicationAccessGuide } = await import('../../src/oauth/application-guide.ts');
  const smtp = applicationAccessGuide({ clientId: 'app-id', tenant: 'contoso.com', mailbox: 'sales@contoso.com', objectId: 'sp-oid', transport: 'smtp' });
  assert.ok(smtp.some((s) => s.command?.includes('New-ServicePrincipal -AppId app-id -ObjectId sp-oid -Organization contoso.com')));
  assert.ok(smtp.some((s) => s.command?.includes('Add-MailboxPermission -Identity sales@contoso.com -User sp-oid -AccessRights FullAccess')));
  const graph = applicationAccessGuide({ clientId: 'app-id', tenant: 'contoso.com', mailbox: 'sales@contoso.com', transport: 'graph' });
  assert.ok(graph.some((s) => s.command?.includes('-ObjectId <Object ID from Azure portal › Microsoft Entra ID › Enterprise applications')));
  assert.ok(graph.some((s) => s.command?.includes('New-ManagementRoleAssignment') && s.command.includes("PrimarySmtpAddress -eq 'sales@contoso.com'")));
});
