import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { apiClient, settledMessage, waitFor } from '../helpers/e2e.ts';
import { type MailroomProcess, startMailroomProcess } from '../helpers/mailroom-process.ts';
import { GRAPH_RESOURCE, type Peers, startPeers } from '../peers/index.ts';
import { type GraphServer, startGraphServer } from '../peers/graph-server.ts';

// Access: Application (client credentials, no user sign-in) against the Microsoft-shaped authorization
// server (app tokens: JWTs with roles from its admin-consent table, no scp) and the Graph stand-in (an app
// token reaches only the mailboxes its permission table allows, like RBAC for Applications).
const CLIENT_ID = '7d2e8f3a-4b5c-4d6e-9f0a-1b2c3d4e5f60';
const CLIENT_SECRET = 'Ap9Q~app.Only-Secret_Value~0123456789';
const SALES = 'sales@example.test';
const BILLING = 'billing@example.test';
const OUTSIDE = 'ceo@example.test';
const T = { timeout: 120_000 };

let peers: Peers;
let graph: GraphServer;
let mailroom: MailroomProcess;
let key: string;
const ids: Record<string, string> = {};
const api = apiClient(() => mailroom.baseUrl, () => key);

before(async () => {
  peers = await startPeers({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: ['http://127.0.0.1:9/unused'] }] });
  graph = await startGraphServer({
    tls: { cert: peers.ca.cert, key: peers.ca.key },
    introspectionUrl: peers.authServer.httpIntrospectionUrl,
    appTokenUrl: peers.authServer.httpAppTokenUrl,
    mailboxes: [SALES, BILLING, OUTSIDE],
  });
  mailroom = await startMailroomProcess({
    MICROSOFT_AUTHORITY_HOST: peers.authServer.authorityHost,
    MICROSOFT_GRAPH_HOST: graph.url,
    NODE_EXTRA_CA_CERTS: peers.caFile,
    OUTBOX_RETRY_BASE_SECONDS: '0.2',
  });
  key = /\n(mr_\S+)/.exec(await mailroom.cli('apikey', 'create', '--name', 'erp', '--scope', 'admin'))![1]!;
  peers.authServer.setMailboxPermissions(CLIENT_ID, [SALES, BILLING]);
});

after(async () => {
  await mailroom?.stop();
  await graph?.close();
  await peers?.stop();
});

test('application access refuses common/organizations/consumers as Tenant, naming the field and why', T, async () => {
  for (const tenant of ['common', 'organizations', 'consumers']) {
    const r = await api('POST', '/api/v1/mail-servers', { name: 'App', username: SALES, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, access: 'application', tenant, sendUsing: 'graph' });
    assert.equal(r.status, 400, JSON.stringify(r.json));
    assert.equal(r.json.error.code, 'MR_VALIDATION');
    assert.match(r.json.error.fields.tenant, /tenant ID or domain.*common\/organizations\/consumers name no organisation/);
  }
  const incoming = await api('POST', '/api/v1/incoming-servers', { name: 'App in', username: SALES, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, access: 'application', serverType: 'graph' });
  assert.equal(incoming.status, 400, JSON.stringify(incoming.json));
  assert.ok(incoming.json.error.fields.tenant);
});

test('without admin consent the token has no Mail.Send: Test Connection names the missing role and the fix', T, async () => {
  const r = await api('POST', '/api/v1/mail-servers', {
    name: 'Graph app — sales', username: SALES, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, access: 'application', tenant: peers.authServer.tenantId, sendUsing: 'graph', fromFilter: 'example.test',
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  assert.equal(r.json.access, 'application');
  assert.equal(r.json.tokenStatus, 'not_connected');
  ids.sales = r.json.id;
  const consent = await api('GET', `/api/v1/mail-servers/${ids.sales}/admin-consent-url`);
  assert.equal(consent.status, 200);
  const url = new URL(consent.json.url);
  assert.equal(url.origin + url.pathname, `${peers.authServer.authorityHost}/${peers.authServer.tenantId}/adminconsent`);
  assert.equal(url.searchParams.get('client_id'), CLIENT_ID);

  const t = await api('POST', `/api/v1/mail-servers/${ids.sales}/test`);
  assert.equal(t.json.ok, false, JSON.stringify(t.json));
  assert.equal(t.json.code, 'MR_OAUTH_ROLE_MISSING');
  assert.match(t.json.message, /Mail\.Send/);
  assert.match(t.json.fix, /Microsoft Graph › Application permissions, tick Mail\.Send.*Grant admin consent/);
  const s = (await api('GET', `/api/v1/mail-servers/${ids.sales}`)).json;
  assert.equal(s.tokenStatus, 'not_connected');
  assert.match(s.tokenStatusReason, /Mail\.Send/);
});

test('after admin consent: Token Valid with no user sign-in, Test Connection proves the mailbox, and mail goes out over Graph', T, async () => {
  peers.authServer.grantAdminConsent(CLIENT_ID, GRAPH_RESOURCE, ['Mail.Send', 'Mail.ReadWrite']);
  const t = await api('POST', `/api/v1/mail-servers/${ids.sales}/test`);
  assert.equal(t.json.ok, true, JSON.stringify(t.json));
  assert.ok(graph.requests.some((x) => x.path === `/v1.0/users/${encodeURIComponent(SALES)}` && x.status === 200));
  assert.ok(graph.requests.some((x) => x.path.startsWith(`/v1.0/users/${encodeURIComponent(SALES)}/mailFolders/inbox`) && x.status === 200));
  const s = (await api('GET', `/api/v1/mail-servers/${ids.sales}`)).json;
  assert.equal(s.tokenStatus, 'valid');
  assert.deepEqual(s.applicationRoles, ['Mail.Send', 'Mail.ReadWrite']);
  assert.equal(s.connectedTenantId, peers.authServer.tenantId);

  const m = await api('POST', '/api/v1/messages', { from: SALES, to: ['customer@remote.example'], subject: 'Sent by the app itself', text: 'No user signed in.' });
  assert.equal(m.status, 202, JSON.stringify(m.json));
  const done = await settledMessage(api, m.json.id);
  assert.equal(done.state, 'sent', JSON.stringify(done.lastError));
  assert.ok(graph.sent.some((x) => x.mailbox === SALES && x.mime?.toString('latin1').includes('Sent by the app itself')));
});

test('two servers share one application connection, each its own mailbox, with one token between them', T, async () => {
  const r = await api('POST', '/api/v1/mail-servers', { name: 'Graph app — billing', username: BILLING, tokenSourceId: ids.sales, sendUsing: 'graph', fromFilter: 'example.test' });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  assert.equal(r.json.tokenSourceId, ids.sales);
  assert.equal(r.json.access, 'application');
  ids.billing = r.json.id;
  const requestsBefore = peers.authServer.clientCredentialsRequestCount();
  const t = await api('POST', `/api/v1/mail-servers/${ids.billing}/test`);
  assert.equal(t.json.ok, true, JSON.stringify(t.json));
  assert.ok(graph.requests.some((x) => x.path === `/v1.0/users/${encodeURIComponent(BILLING)}` && x.status === 200));
  // The cached token of the sales server (same tenant, app and resource) served the billing mailbox.
  assert.equal(peers.authServer.clientCredentialsRequestCount(), requestsBefore);
  const audit = await api('GET', '/api/v1/audit-events?limit=50');
  if (audit.status === 200) {
    const created = (audit.json.items as Array<{ action: string; details?: Record<string, unknown> }>).find((e) => e.action === 'mail_server.created' && e.details?.mailbox === BILLING);
    assert.ok(created, 'the audit log records the mailbox the server uses');
  }
});

test('a mailbox outside the app\'s permission table is found by Test Connection, with the PowerShell naming it', T, async () => {
  const r = await api('POST', '/api/v1/mail-servers', { name: 'Graph app — ceo', username: OUTSIDE, tokenSourceId: ids.sales, sendUsing: 'graph' });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  const t = await api('POST', `/api/v1/mail-servers/${r.json.id}/test`);
  assert.equal(t.json.ok, false, JSON.stringify(t.json));
  assert.equal(t.json.code, 'GRAPH_APP_ErrorAccessDenied');
  assert.match(t.json.message, new RegExp(`access to ${OUTSIDE.replace('.', '\\.')}`));
  const oid = peers.authServer.servicePrincipalId(CLIENT_ID);
  assert.match(t.json.fix, new RegExp(`PrimarySmtpAddress -eq '${OUTSIDE.replace('.', '\\.')}'.*New-ManagementRoleAssignment -App ${oid} -Role "Application Mail\\.Send"`));
  assert.match(t.json.fix, new RegExp(`New-ServicePrincipal -AppId ${CLIENT_ID} -ObjectId ${oid} -Organization ${peers.authServer.tenantId}`));

  // A message sent through it anyway carries the same explanation, not the delegated one.
  const m = await api('POST', '/api/v1/messages', { from: OUTSIDE, mailServerId: r.json.id, to: ['customer@example.test'], subject: 'Outside the RBAC scope', text: 'Refused.' });
  assert.equal(m.status, 202, JSON.stringify(m.json));
  const settled = await settledMessage(api, m.json.id);
  assert.notEqual(settled.state, 'sent');
  assert.equal(settled.lastError.code, 'GRAPH_APP_ErrorAccessDenied', JSON.stringify(settled.lastError));
  assert.match(settled.lastError.fix, new RegExp(`New-ManagementRoleAssignment -App ${oid} -Role "Application Mail\\.Send"`));
});

test('a wrong client secret with application access is explained as such', T, async () => {
  const r = await api('POST', '/api/v1/mail-servers', { name: 'Graph app — wrong secret', username: SALES, clientId: CLIENT_ID, clientSecret: 'Wr0ng~secret.Value_0123456789abcdefghij', access: 'application', tenant: 'example.test', sendUsing: 'graph' });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  const t = await api('POST', `/api/v1/mail-servers/${r.json.id}/test`);
  assert.equal(t.json.ok, false, JSON.stringify(t.json));
  assert.equal(t.json.evidence.diagnosis, 'OAUTH_APP_AADSTS7000215');
  assert.deepEqual(t.json.evidence.errorCodes, [7000215]);
});

test('application access with a certificate and no client secret: the client-credentials request is signed by the uploaded certificate', T, async () => {
  const r = await api('POST', '/api/v1/mail-servers', { name: 'Graph app — certificate', username: BILLING, clientId: CLIENT_ID, clientCredential: 'certificate', access: 'application', tenant: 'example.test', sendUsing: 'graph' });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  const generated = await api('POST', `/api/v1/mail-servers/${r.json.id}/certificate`, {});
  assert.equal(generated.status, 200, JSON.stringify(generated.json));
  const cer = await fetch(`${mailroom.baseUrl}/api/v1/mail-servers/${r.json.id}/certificate.cer`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(cer.status, 200);
  assert.equal(peers.authServer.registerCertificate(CLIENT_ID, Buffer.from(await cer.arrayBuffer())), generated.json.certificate.thumbprint);
  // Tenant by its domain: a token cache of its own (tenant, app, resource), so this test asks the peer itself.
  const before = peers.authServer.acceptedAssertions().length;
  const t = await api('POST', `/api/v1/mail-servers/${r.json.id}/test`);
  assert.equal(t.json.ok, true, JSON.stringify(t.json));
  const accepted = peers.authServer.acceptedAssertions().slice(before);
  assert.ok(accepted.some((a) => a.clientId === CLIENT_ID && a.thumbprint === generated.json.certificate.thumbprint), JSON.stringify(accepted));
  const s = (await api('GET', `/api/v1/mail-servers/${r.json.id}`)).json;
  assert.equal(s.tokenStatus, 'valid');
  assert.equal(s.clientSecretSet, false);
});


test('an incoming Graph server with application access fetches the mailbox with an app token, no sign-in', T, async () => {
  const base = '/api/v1/incoming-servers';
  const r = await api('POST', base, {
    name: 'Graph app inbox — billing', serverType: 'graph', username: BILLING, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET,
    access: 'application', tenant: peers.authServer.tenantId, folder: 'INBOX', afterFetch: 'leave', intervalMinutes: 1440,
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  assert.equal(r.json.access, 'application');
  const id = r.json.id as string;
  graph.deliver(BILLING, `From: customer@remote.example\r\nTo: ${BILLING}\r\nSubject: For the app over Graph\r\nMessage-ID: <graph-app-inbox@example.test>\r\n\r\nHello\r\n`);
  const t = await api('POST', `${base}/${id}/test`);
  assert.equal(t.json.ok, true, JSON.stringify(t.json));
  const fetchNow = await api('POST', `${base}/${id}/fetch`);
  assert.equal(fetchNow.status, 202, fetchNow.text);
  const fetched = await waitFor('the fetch to import mail', async () => {
    const v = (await api('GET', `${base}/${id}`)).json;
    return !v.fetch.running && v.importedCount >= 1 ? v : undefined;
  }, 60_000);
  assert.ok(fetched.importedCount >= 1, JSON.stringify(fetched.fetch));
  assert.equal(fetched.tokenStatus, 'valid');
  const inbound = await api('GET', `/api/v1/inbound-messages?incomingServerId=${id}`);
  assert.equal(inbound.status, 200, inbound.text);
  assert.ok(JSON.stringify(inbound.json).includes('For the app over Graph'), inbound.text.slice(0, 500));
  // The app reached the mailbox by its address, not through /me (a delegated token's path).
  assert.ok(graph.requests.some((x) => x.path.startsWith(`/v1.0/users/${encodeURIComponent(BILLING)}/`) && x.path.includes('messages') && x.status === 200));
});
