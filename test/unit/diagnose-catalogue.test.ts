// Every catalogue entry, reached from evidence in the shapes Microsoft, Exchange, Dovecot, nodemailer
// and Node really produce, through the same parsing production uses (oauthEvidence,
// authorizeErrorEvidence, smtpErrorFrom, the token client's network path).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { CATALOGUE, diagnose, explain, isTemporary, type CatalogueCode, type GuideStep } from '../../src/diagnose/diagnose.ts';
import { looksLikeGuid, type Evidence, type ImapEvidence, type OAuthEvidence } from '../../src/diagnose/evidence.ts';
import { MailroomError } from '../../src/errors/errors.ts';
import { authorizeErrorEvidence, graphScopes, oauthEvidence, OUTLOOK_SCOPES, refreshTokens, type OutlookApp } from '../../src/oauth/outlook.ts';
import { GMAIL_SCOPES } from '../../src/oauth/google.ts';
import { tokenEndpointFetch } from '../../src/oauth/token-endpoint.ts';
import { smtpErrorFrom } from '../../src/smtp/smtp-client.ts';
import { googleEvidence, googleProvider } from '../../src/oauth/google.ts';
import { imapErrorFrom } from '../../src/imap/imap-session.ts';
import { foreignLink, invalidResponse } from '../../src/graph/graph-client.ts';
import { OutboundRefusedError } from '../../src/net/outbound-policy.ts';
import { secretOf } from '../../src/oauth/client-auth.ts';

/** Google's token endpoint error JSON, and its callback redirect. */
const google = (error: string, description?: string, stage: 'token' | 'refresh' = 'token'): Evidence => googleEvidence(stage, { error, ...(description && { error_description: description }) }, 400);
const googleRedirect = (error: string): Evidence => googleProvider.authorizeErrorEvidence(new URLSearchParams({ error, state: 'b1Xq9-state' }))!;

/** A reply from a server Mailroom logged in to with a password (or none), through smtpErrorFrom. */
function smtpAs(auth: 'password' | 'none' | 'xoauth2', host: string, code: string, command: string, response: string): Evidence {
  const responseCode = Number(/^\d+/.exec(response)?.[0]);
  const err = Object.assign(new Error(`Invalid login: ${response}`), { code, command, response, responseCode });
  return smtpErrorFrom(err, { host, port: 587, security: 'starttls', auth }).evidence;
}

const TRACE = '0b3e1a2c-1111-4d5e-8f90-123456789abc';
const CORRELATION = '7c6d5e4f-2222-4a3b-9c8d-abcdef012345';
const APP_ID = '6731de76-14a6-49ae-97bc-6eba6914391e';
const TENANT_ID = '9188040d-6c67-4c5b-b112-36a304b66dad';
const OBJECT_ID = '2f1c3a4b-5d6e-4f70-8a9b-0c1d2e3f4a5b';
const APPLICATION = { clientId: APP_ID, tenant: TENANT_ID, mailbox: 'sales@contoso.com', objectId: OBJECT_ID };
const description = (code: number, text: string) =>
  `AADSTS${code}: ${text}\r\nTrace ID: ${TRACE}\r\nCorrelation ID: ${CORRELATION}\r\nTimestamp: 2026-11-28 10:00:00Z`;

/** The token endpoint's error JSON (code exchange). */
const token = (code: number, error: string, text: string, status = 400): OAuthEvidence =>
  oauthEvidence(
    'token',
    {
      error,
      error_description: description(code, text),
      error_codes: [code],
      timestamp: '2026-11-28 10:00:00Z',
      trace_id: TRACE,
      correlation_id: CORRELATION,
      error_uri: `https://login.microsoftonline.com/error?code=${code}`,
    },
    status,
  );

/** The same JSON from a refresh. */
const refresh = (code: number, error: string, text: string, status = 400): OAuthEvidence => ({ ...token(code, error, text, status), stage: 'refresh' });

/** The authorize redirect back to Mailroom: query parameters only, no error_codes. */
function redirect(error: string, text: string): Evidence {
  const url = new URL('http://localhost:8080/oauth2/outlook/callback');
  url.searchParams.set('error', error);
  url.searchParams.set('error_description', text);
  url.searchParams.set('state', 'b1Xq9-state');
  return authorizeErrorEvidence(new URL(url.href).searchParams)!;
}

const TARGET = { host: 'smtp.office365.com', port: 587, security: 'starttls' as const };

/** A nodemailer error carrying the server's reply (EAUTH, EENVELOPE, EMESSAGE, EPROTOCOL, ...). */
function smtpReply(code: string, command: string, response: string): Evidence {
  const responseCode = Number(/^\d+/.exec(response)?.[0]);
  const err = Object.assign(new Error(`${code === 'EAUTH' ? 'Invalid login' : 'Message failed'}: ${response}`), { code, command, response, responseCode });
  return smtpErrorFrom(err, TARGET).evidence;
}

/** nodemailer 10's socket-level error: the Node error itself, re-coded, the real code in originalCode. */
function smtpSocket(code: string, message: string, originalCode?: string): Evidence {
  const err = Object.assign(new Error(message), { code, command: 'CONN', ...(originalCode && { originalCode }) });
  return smtpErrorFrom(err, TARGET).evidence;
}

const nodeError = (code: string, message: string) => Object.assign(new Error(message), { code });

/** Graph's error answer as the Graph client keeps it. */
const graphError = (status: number, code: string, message: string): Evidence => ({ kind: 'graph', status, code, message, request: 'POST /users/{mailbox}/sendMail' });

const APP: OutlookApp = {
  scopes: OUTLOOK_SCOPES,
  authorityHost: 'https://login.microsoftonline.com',
  tenant: 'contoso.com',
  clientId: APP_ID,
  credential: { kind: 'secret', secret: 'kX38Q~secret-value-not-a-guid.abcdefghijklmnop' },
  redirectUri: 'http://localhost:8080/oauth2/outlook/callback',
};

/** fetch() failing under the token client the way undici does: TypeError('fetch failed') with the socket/TLS error as cause. */
async function tokenEndpointUnreachable(cause: Error): Promise<Evidence> {
  const real = globalThis.fetch;
  globalThis.fetch = async () => {
    throw new TypeError('fetch failed', { cause });
  };
  try {
    await refreshTokens(APP, 'refresh-token', new Date('2026-11-28T10:00:00Z'));
  } catch (e) {
    assert.ok(e instanceof MailroomError && e.code === 'MR_OAUTH_UNREACHABLE', String(e));
    return e.evidence as unknown as Evidence;
  } finally {
    globalThis.fetch = real;
  }
  throw new Error('the refresh should have failed');
}

/** The token endpoint answering Microsoft's error JSON to a refresh, through the provider's own request. */
async function refreshAnswered(app: OutlookApp, status: number, body: Record<string, unknown>): Promise<Evidence> {
  const real = globalThis.fetch;
  globalThis.fetch = async () => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json; charset=utf-8' } });
  try {
    await refreshTokens(app, 'refresh-token', new Date('2026-11-28T10:00:00Z'));
  } catch (e) {
    assert.ok(e instanceof MailroomError, String(e));
    return e.evidence as unknown as Evidence;
  } finally {
    globalThis.fetch = real;
  }
  throw new Error('the refresh should have failed');
}

const GRAPH_SEND_APP: OutlookApp = { ...APP, scopes: graphScopes('https://graph.microsoft.com', 'outgoing') };
const GRAPH_RECEIVE_APP: OutlookApp = { ...APP, scopes: graphScopes('https://graph.microsoft.com', 'incoming') };
/** Microsoft's answer to a refresh for a resource the user never consented to (a server switched to Graph). */
const consentMissing = {
  error: 'invalid_grant',
  error_description: description(65001, `The user or administrator has not consented to use the application with ID '${APP_ID}' named 'Mailroom'. Send an interactive authorization request for this user and resource.`),
  error_codes: [65001],
  timestamp: '2026-11-28 10:00:00Z',
  trace_id: TRACE,
  correlation_id: CORRELATION,
  error_uri: 'https://login.microsoftonline.com/error?code=65001',
  suberror: 'consent_required',
};

/** A token endpoint that misbehaves (silent, endless, a 100 KB token), read through the token requests' own fetch with small bounds. */
let hostile: Server;
let hostileOrigin: string;
before(async () => {
  hostile = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/silent') return; // the answer never comes
    res.writeHead(200, { 'content-type': 'application/json' });
    if (path === '/endless') {
      res.write('{"access_token":"');
      const t = setInterval(() => res.write('A'.repeat(16 * 1024)), 1);
      res.on('close', () => clearInterval(t));
      return;
    }
    res.end(JSON.stringify({ token_type: 'Bearer', expires_in: 3600, access_token: 'A'.repeat(100 * 1024), refresh_token: 'r' }));
  });
  await new Promise<void>((r) => hostile.listen(0, '127.0.0.1', r));
  hostileOrigin = `http://127.0.0.1:${(hostile.address() as { port: number }).port}`;
});
after(() => {
  hostile.closeAllConnections();
  hostile.close();
});

async function tokenAnswerRefused(path: string, provider?: string, timeoutMs = 300): Promise<Evidence> {
  const fetchToken = tokenEndpointFetch({ stage: 'refresh', ...(provider && { provider }), scopes: provider ? GMAIL_SCOPES : OUTLOOK_SCOPES }, { timeoutMs, maxBytes: 256 * 1024, maxTokenChars: 16 * 1024 });
  try {
    await fetchToken(`${hostileOrigin}${path}?client_id=${APP_ID}`, { method: 'POST', body: 'grant_type=refresh_token&refresh_token=secret-refresh' });
  } catch (e) {
    assert.ok(e instanceof MailroomError, String(e));
    assert.doesNotMatch(JSON.stringify(e.evidence) + e.message, new RegExp(`AAAA|secret-refresh|${path}|${APP_ID}`));
    return e.evidence as unknown as Evidence;
  }
  throw new Error('the token answer should have been refused');
}

/** imapflow's failed command: `authenticationFailed`, `serverResponseCode`, `response`. */
function imapflow(err: { response: string; serverResponseCode?: string; authenticationFailed?: boolean }): Evidence {
  const ev: ImapEvidence = { kind: 'imap', response: err.response };
  if (err.serverResponseCode) ev.responseCode = err.serverResponseCode;
  if (err.authenticationFailed) ev.authenticationFailed = true;
  return ev;
}

interface Row {
  name: string;
  evidence: () => Evidence | Promise<Evidence>;
  code: CatalogueCode;
  step: GuideStep;
  temporary: boolean;
  /** A sending quota: the outbox holds the server's mail until its window frees. */
  quota?: boolean;
  /** The key action the fix must name. */
  fix: RegExp;
  cause?: RegExp;
}

const ROWS: Row[] = [
  // ── AADSTS ──
  // ── Application access (client credentials): the ids are filled into the PowerShell ──
  {
    name: 'application access: tenant not found',
    evidence: () => ({ ...token(90002, 'invalid_tenant', "Tenant 'contoso.example' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."), application: APPLICATION }),
    code: 'AADSTS90002', step: 4, temporary: false, fix: /Directory \(tenant\) ID/,
  },
  {
    name: 'application access: tenant identifier invalid',
    evidence: () => token(900023, 'invalid_request', "Specified tenant identifier 'not a tenant' is neither a valid DNS name, nor a valid external domain."),
    code: 'AADSTS900023', step: 4, temporary: false, fix: /Directory \(tenant\) ID/,
  },
  {
    name: 'application access: app not found in the tenant',
    evidence: () => ({ ...token(700016, 'unauthorized_client', `Application with identifier '${APP_ID}' was not found in the directory '${TENANT_ID}'.`), application: APPLICATION }),
    code: 'OAUTH_APP_AADSTS700016', step: 4, temporary: false, fix: new RegExp(`Grant admin consent.*Check application access`), cause: new RegExp(`${TENANT_ID} has no service principal .*${APP_ID}`),
  },
  {
    name: 'application access: wrong client secret',
    evidence: () => ({ ...token(7000215, 'invalid_client', `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${APP_ID}'.`, 401), application: APPLICATION }),
    code: 'OAUTH_APP_AADSTS7000215', step: 3, temporary: false, fix: /Value \(not the Secret ID\)/, cause: new RegExp(APP_ID),
  },
  {
    name: 'application access: SMTP.SendAsApp missing from roles (no admin consent)',
    evidence: () => ({ kind: 'oauth', stage: 'token', error: 'role_missing', errorCodes: [], missingRoles: ['SMTP.SendAsApp'], roles: [], application: { ...APPLICATION, resource: 'Office 365 Exchange Online' } }),
    code: 'OAUTH_APP_ROLE_MISSING', step: 2, temporary: false, fix: /Office 365 Exchange Online › Application permissions, tick SMTP\.SendAsApp.*Grant admin consent/, cause: /SMTP\.SendAsApp/,
  },
  {
    name: 'application access: Exchange 535 5.7.3 (service principal not registered or no mailbox right)',
    evidence: () => ({ ...smtpReply('EAUTH', 'AUTH XOAUTH2', '535 5.7.3 Authentication unsuccessful [SN4PR0501CA0054.namprd05.prod.outlook.com 2026-11-28T10:00:00.000Z 08DD1E2F3A4B5C6D]'), application: APPLICATION }),
    code: 'SMTP_APP_535_5.7.3', step: 6, temporary: false,
    fix: new RegExp(`New-ServicePrincipal -AppId ${APP_ID} -ObjectId ${OBJECT_ID} -Organization ${TENANT_ID}.*Add-MailboxPermission -Identity sales@contoso\\.com -User ${OBJECT_ID} -AccessRights FullAccess.*Add-RecipientPermission -Identity sales@contoso\\.com -Trustee ${OBJECT_ID} -AccessRights SendAs`),
  },
  {
    name: 'application access: IMAP NO AUTHENTICATE failed.',
    evidence: () => ({ ...imapflow({ response: 'NO AUTHENTICATE failed.', authenticationFailed: true }), application: { ...APPLICATION, objectId: undefined } }),
    code: 'IMAP_APP_AUTHENTICATE_FAILED', step: 6, temporary: false, fix: /New-ServicePrincipal -AppId \S+ -ObjectId <Object ID from Azure portal › Microsoft Entra ID › Enterprise applications › the app › Overview>/,
  },
  {
    name: 'application access: Graph 403 ErrorAccessDenied (mailbox outside the RBAC scope)',
    evidence: () => ({ ...graphError(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.'), application: APPLICATION }),
    code: 'GRAPH_APP_ErrorAccessDenied', step: 6, temporary: false, fix: new RegExp(`New-ManagementScope .*sales@contoso\\.com.*New-ManagementRoleAssignment -App ${OBJECT_ID} -Role "Application Mail\\.Send" -CustomResourceScope`),
  },
  {
    name: 'redirect URI mismatch (authorize redirect)',
    evidence: () => redirect('invalid_request', description(50011, `The redirect URI 'http://localhost:8080/oauth2/outlook/callback' specified in the request does not match the redirect URIs configured for the application '${APP_ID}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.`)),
    code: 'AADSTS50011', step: 1, temporary: false, fix: /Authentication.*OAuth2 Redirect Url/, cause: /redirect URIs registered/,
  },
  {
    name: 'reply address changed between authorize and token',
    evidence: () => token(500112, 'invalid_request', "The reply address 'https://mail.contoso.com/oauth2/outlook/callback' does not match the reply address 'http://10.0.0.5:8080/oauth2/outlook/callback' provided when requesting Authorization code."),
    code: 'AADSTS500112', step: 1, temporary: false, fix: /same BASE_URL/, cause: /BASE_URL/,
  },
  {
    name: 'no reply address registered',
    evidence: () => redirect('invalid_request', description(500113, 'No reply address is registered for the application.')),
    code: 'AADSTS500113', step: 1, temporary: false, fix: /Add a platform › Web/,
  },
  {
    name: 'user not assigned to the app',
    evidence: () => redirect('access_denied', description(50105, `Your administrator has configured the application Mailroom ('${APP_ID}') to block users unless they are specifically granted ('assigned') access to the application. The signed in user 'sales@contoso.com' is blocked because they are not a direct member of a group with access, nor had access directly assigned by an administrator. Please contact your administrator to assign access to this application.`)),
    code: 'AADSTS50105', step: 2, temporary: false, fix: /Users and groups › Add user\/group/,
  },
  {
    name: 'consent missing at refresh',
    evidence: () => refresh(65001, 'invalid_grant', `The user or administrator has not consented to use the application with ID '${APP_ID}' named 'Mailroom'. Send an interactive authorization request for this user and resource.`),
    code: 'AADSTS65001', step: 5, temporary: false, fix: /Connect your Outlook account.*Grant admin consent/, cause: /consented/,
  },
  {
    name: 'consent declined (authorize redirect)',
    evidence: () => redirect('access_denied', description(65004, 'User declined to consent to access the app.')),
    code: 'AADSTS65004', step: 5, temporary: false, fix: /choose Accept/,
  },
  {
    name: 'admin consent required (authorize redirect)',
    evidence: () => redirect('access_denied', description(90094, 'The grant requires admin permission.')),
    code: 'AADSTS90094', step: 2, temporary: false, fix: /Grant admin consent/,
  },
  {
    name: 'basic sign-in permission not granted',
    evidence: () => token(90008, 'invalid_grant', `The user or administrator has not consented to use the application with ID '${APP_ID}'. This happens because application is misconfigured: it must require access to Windows Azure Active Directory by specifying at least 'Sign in and read user profile' permission.`),
    code: 'AADSTS90008', step: 2, temporary: false, fix: /API permissions/,
  },
  {
    name: 'Client ID unknown in the tenant',
    evidence: () => redirect('unauthorized_client', description(700016, `Application with identifier '${APP_ID}' was not found in the directory 'Contoso'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`)),
    code: 'AADSTS700016', step: 4, temporary: false, fix: /Application \(client\) ID/,
  },
  {
    name: 'wrong client secret (code exchange, 401)',
    evidence: () => token(7000215, 'invalid_client', `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${APP_ID}'.`, 401),
    code: 'AADSTS7000215', step: 3, temporary: false, fix: /New client secret.*Value/, cause: /Secret ID/,
  },
  {
    name: 'wrong client secret (refresh), secret is not GUID-shaped',
    evidence: () => ({ ...refresh(7000215, 'invalid_client', 'Invalid client secret provided.', 401), secretLooksLikeGuid: looksLikeGuid(secretOf(APP.credential)!) }),
    code: 'AADSTS7000215', step: 3, temporary: false, fix: /Value/,
  },
  {
    name: 'certificate not uploaded in Azure (refresh with a client assertion)',
    evidence: () => ({ ...refresh(700027, 'invalid_client', `Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: 'C0FFEE0123456789ABCDEF0123456789ABCDEF01', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${APP_ID}'.]`, 401), certificateThumbprint: 'C0FFEE0123456789ABCDEF0123456789ABCDEF01' }),
    code: 'AADSTS700027', step: 3, temporary: false, fix: /Upload certificate/, cause: /C0FFEE0123456789ABCDEF0123456789ABCDEF01/,
  },
  {
    name: 'client assertion outside its time window (clock skew)',
    evidence: () => token(700024, 'invalid_client', 'Client assertion is not within its valid time range. Current time: 2026-12-07T06:00:00.0000000Z, assertion valid from 2026-12-07T06:20:00.0000000Z, expiry time of assertion 2026-12-07T06:25:00.0000000Z.', 401),
    code: 'AADSTS700024', step: 7, temporary: false, fix: /clock/,
  },
  {
    name: 'certificate expired (Microsoft names the reason)',
    evidence: () => ({ ...refresh(700027, 'invalid_client', "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: 'C0FFEE0123456789ABCDEF0123456789ABCDEF01']", 401), certificateThumbprint: 'C0FFEE0123456789ABCDEF0123456789ABCDEF01' }),
    code: 'OAUTH_CERTIFICATE_EXPIRED', step: 3, temporary: false, fix: /Roll certificate/, cause: /C0FFEE0123456789ABCDEF0123456789ABCDEF01.*expired/,
  },
  {
    name: 'Secret ID pasted instead of the Value',
    evidence: () => ({ ...token(7000215, 'invalid_client', 'Invalid client secret provided.', 401), secretLooksLikeGuid: looksLikeGuid('3f2a9c4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b') }),
    code: 'AADSTS7000215_SECRET_ID', step: 3, temporary: false, fix: /copy the Value column \(not Secret ID\)/, cause: /Secret ID was pasted/,
  },
  {
    name: 'client secret expired',
    evidence: () => refresh(7000222, 'invalid_client', `The provided client secret keys for app '${APP_ID}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.`, 401),
    code: 'AADSTS7000222', step: 3, temporary: false, fix: /New client secret.*Client Secret Expiration/, cause: /expired/,
  },
  {
    name: 'single-tenant app on common',
    evidence: () => redirect('invalid_request', description(50194, `Application '${APP_ID}'(Mailroom) is not configured as a multi-tenant application. Usage of the /common endpoint is not supported for such applications created after '10/15/2018'. Use a tenant-specific endpoint or configure the application to be multi-tenant.`)),
    code: 'AADSTS50194', step: 4, temporary: false, fix: /Set Tenant/, cause: /single-tenant/,
  },
  {
    name: 'grant not supported on common/consumers',
    evidence: () => token(9001023, 'invalid_request', "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint."),
    code: 'AADSTS9001023', step: 4, temporary: false, fix: /Set Tenant.*organizations/,
  },
  {
    name: 'account from another tenant',
    evidence: () => redirect('invalid_request', description(50020, `User account 'bob@fabrikam.com' from identity provider 'https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/' does not exist in tenant 'Contoso' and cannot access the application '${APP_ID}'(Mailroom) in that tenant. The account needs to be added as an external user in the tenant first. Sign out and sign in again with a different Azure Active Directory user account.`)),
    code: 'AADSTS50020', step: 4, temporary: false, fix: /multi-tenant/,
  },
  {
    name: 'code or refresh token expired',
    evidence: () => refresh(70008, 'invalid_grant', 'The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.'),
    code: 'AADSTS70008', step: 5, temporary: false, fix: /Connect your Outlook account/, cause: /expired/,
  },
  {
    name: 'code redeemed twice',
    evidence: () => token(54005, 'invalid_grant', 'OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.'),
    code: 'AADSTS54005', step: 5, temporary: false, fix: /new sign-in.*do not reload/,
  },
  {
    name: 'grant revoked',
    evidence: () => refresh(50173, 'invalid_grant', "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '2026-08-01T09:00:00.0000000Z' and the TokensValidFrom date (before which tokens are not valid) for this user is '2026-11-20T08:00:00.0000000Z'."),
    code: 'AADSTS50173', step: 5, temporary: false, fix: /Connect your Outlook account/, cause: /password/,
  },
  {
    name: 'refresh token unused for 90 days',
    evidence: () => refresh(700082, 'invalid_grant', 'The refresh token has expired due to inactivity. The token was issued on 2026-08-01T09:00:00.0000000Z and was inactive for 90.00:00:00.'),
    code: 'AADSTS700082', step: 5, temporary: false, fix: /Connect your Outlook account/, cause: /90 days/,
  },
  {
    name: 'malformed request',
    evidence: () => refresh(9002313, 'invalid_grant', 'Invalid request. Request is malformed or invalid.'),
    code: 'AADSTS9002313', step: 5, temporary: false, fix: /Connect your Outlook account.*Client ID and Tenant/,
  },
  {
    name: 'MFA required',
    evidence: () => refresh(50076, 'invalid_grant', "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000002-0000-0ff1-ce00-000000000000'."),
    code: 'AADSTS50076', step: 5, temporary: false, fix: /multi-factor prompt/,
  },
  {
    name: 'MFA registration required',
    evidence: () => refresh(50079, 'invalid_grant', "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access '00000002-0000-0ff1-ce00-000000000000'."),
    code: 'AADSTS50079', step: 5, temporary: false, fix: /aka\.ms\/mfasetup/,
  },
  {
    name: 'Conditional Access (refresh)',
    evidence: () => refresh(53003, 'invalid_grant', 'Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.'),
    code: 'AADSTS53003', step: 2, temporary: false, fix: /Sign-in logs.*Conditional Access/,
  },
  {
    name: 'Conditional Access (authorize redirect)',
    evidence: () => redirect('access_denied', description(53003, 'Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.')),
    code: 'AADSTS53003', step: 2, temporary: false, fix: /Conditional Access/,
  },

  // ── OAuth error without a known AADSTS code ──
  {
    name: 'invalid_client with another AADSTS code',
    evidence: () => token(7000218, 'invalid_client', "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", 401),
    code: 'OAUTH_invalid_client', step: 3, temporary: false, fix: /Client Secret/,
  },
  {
    name: 'invalid_grant with another AADSTS code',
    evidence: () => refresh(70000, 'invalid_grant', 'The request was denied because one or more scopes requested are unauthorized or expired. The user must first sign in and grant the client application access to the requested scope.'),
    code: 'OAUTH_invalid_grant', step: 5, temporary: false, fix: /Connect your Outlook account/,
  },
  {
    name: 'invalid_request with another AADSTS code',
    evidence: () => token(900144, 'invalid_request', "The request body must contain the following parameter: 'grant_type'."),
    code: 'OAUTH_invalid_request', step: 4, temporary: false, fix: /Client ID, Tenant/,
  },
  {
    name: 'access_denied from a personal account, no AADSTS code',
    evidence: () => redirect('access_denied', 'The user has denied access to the scope requested by the client application.'),
    code: 'OAUTH_access_denied', step: 5, temporary: false, fix: /accept the permission request/,
  },
  {
    name: 'consent_required without AADSTS code',
    evidence: () => redirect('consent_required', 'The user must consent to the requested scopes.'),
    code: 'OAUTH_consent_required', step: 5, temporary: false, fix: /accept the permission request/,
  },
  {
    name: 'interaction_required (external security challenge)',
    evidence: () => refresh(50158, 'interaction_required', 'External security challenge not satisfied. User will be redirected to another page or authentication provider to satisfy additional authentication challenges.'),
    code: 'OAUTH_interaction_required', step: 5, temporary: false, fix: /Connect your Outlook account/,
  },
  {
    name: 'invalid_scope',
    evidence: () => redirect('invalid_scope', description(70011, "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid.")),
    code: 'OAUTH_invalid_scope', step: 2, temporary: false, fix: /SMTP\.Send, IMAP\.AccessAsUser\.All/,
  },
  {
    name: 'unauthorized_client',
    evidence: () => redirect('unauthorized_client', description(700054, "response_type 'id_token' is not enabled for the application.")),
    code: 'OAUTH_unauthorized_client', step: 1, temporary: false, fix: /platform "Web"/,
  },
  {
    name: 'temporarily_unavailable (transient)',
    evidence: () => token(90033, 'temporarily_unavailable', 'A transient error has occurred. Please try again.', 503),
    code: 'OAUTH_temporarily_unavailable', step: 7, temporary: true, fix: /retries by itself/,
  },
  {
    name: 'server_error',
    evidence: () => token(50000, 'server_error', 'There was an error issuing a token or an issue with our sign-in service.', 500),
    code: 'OAUTH_server_error', step: 7, temporary: true, fix: /retries by itself/,
  },
  {
    name: 'consent missing at refresh for a server switched to Send Using Graph',
    evidence: () => refreshAnswered(GRAPH_SEND_APP, 400, consentMissing),
    code: 'AADSTS65001_GRAPH', step: 2, temporary: false, fix: /API permissions › Add a permission › Microsoft Graph.*Connect your Outlook account again/, cause: /Microsoft Graph permissions this server asks for \(Mail\.Send, Mail\.ReadWrite, User\.Read\)/,
  },
  {
    name: 'consent missing at refresh for an incoming server on Graph',
    evidence: () => refreshAnswered(GRAPH_RECEIVE_APP, 400, consentMissing),
    code: 'AADSTS65001_GRAPH', step: 2, temporary: false, fix: /Mail\.ReadWrite/, cause: /\(Mail\.ReadWrite, User\.Read\)/,
  },
  {
    name: 'consent missing at refresh for SMTP and IMAP, through the refresh request',
    evidence: () => refreshAnswered(APP, 400, consentMissing),
    code: 'AADSTS65001', step: 5, temporary: false, fix: /Connect your Outlook account/, cause: /SMTP\.Send, IMAP\.AccessAsUser\.All/,
  },
  {
    name: 'a token endpoint that never answers',
    evidence: () => tokenAnswerRefused('/silent'),
    code: 'OAUTH_TOKEN_ENDPOINT_TIMEOUT', step: 7, temporary: true, fix: /MICROSOFT_AUTHORITY_HOST.*proxy.*Service health.*retries by itself/, cause: /token endpoint at http:\/\/127\.0\.0\.1:\d+ did not finish answering within 0\.3 s/,
  },
  {
    name: 'a token endpoint answering without end',
    // The size bound, not the deadline, must end it: a loaded machine may take more than 0.3 s to read 256 KB.
    evidence: () => tokenAnswerRefused('/endless', undefined, 20_000),
    code: 'OAUTH_TOKEN_RESPONSE_TOO_LARGE', step: 7, temporary: true, fix: /GOOGLE_TOKEN_HOST/, cause: /at http:\/\/127\.0\.0\.1:\d+ answered with more than 256 KB/,
  },
  {
    name: 'a 100 KB access token (Google)',
    evidence: () => tokenAnswerRefused('/long-token', 'gmail'),
    code: 'OAUTH_TOKEN_TOO_LONG', step: 7, temporary: true, fix: /retries by itself/, cause: /an access_token of 102,400 characters; Mailroom accepts at most 16,384 and neither stored nor used it/,
  },
  {
    name: 'a non-JSON 502 from the token endpoint',
    evidence: () => oauthEvidence('token', {}, 502),
    code: 'OAUTH_UNKNOWN', step: 1, temporary: false, fix: /app registration against the guide/, cause: /"invalid_response"/,
  },

  // ── SMTP: Exchange Online's exact replies ──
  {
    name: '535 5.7.139 SMTP AUTH disabled for the Tenant',
    evidence: () => smtpReply('EAUTH', 'AUTH XOAUTH2', '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [SN4PR0501CA0054.namprd05.prod.outlook.com]'),
    code: 'SMTP_535_5.7.139_TENANT', step: 6, temporary: false, fix: /Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled \$false/, cause: /whole tenant/,
  },
  {
    name: '535 5.7.139 SMTP AUTH disabled for the Mailbox',
    evidence: () => smtpReply('EAUTH', 'AUTH XOAUTH2', '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information. [BN9PR03CA0716.namprd03.prod.outlook.com 2026-11-28T10:00:00.000Z 08DED6A3FAA75B29]'),
    code: 'SMTP_535_5.7.139_MAILBOX', step: 6, temporary: false, fix: /Manage email apps, tick Authenticated SMTP/, cause: /this mailbox/,
  },
  {
    name: '535 5.7.139 locked by security defaults',
    evidence: () => smtpReply('EAUTH', 'AUTH XOAUTH2', "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator. [DM6PR02CA0101.namprd02.prod.outlook.com 2026-11-28T10:00:00.000Z 08DD0F1E2D3C4B5A]"),
    code: 'SMTP_535_5.7.139_SECURITY_DEFAULTS', step: 6, temporary: false, fix: /Manage security defaults/, cause: /security defaults/,
  },
  {
    name: '535 5.7.139 did not meet the criteria',
    evidence: () => smtpReply('EAUTH', 'AUTH XOAUTH2', '535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully. Contact your administrator. [BN9PR03CA0716.namprd03.prod.outlook.com 2026-07-01T01:57:31.695Z 08DED6A3FAA75B29]'),
    code: 'SMTP_535_5.7.139_CRITERIA', step: 6, temporary: false, fix: /Sign-in logs.*Conditional Access/, cause: /Conditional Access/,
  },
  {
    name: '535 5.7.139 in other wording (Test Connection evidence)',
    evidence: () => ({ kind: 'smtp', command: 'AUTH XOAUTH2', responseCode: 535, response: '535 5.7.139 Authentication unsuccessful, basic authentication is disabled. [AM0PR02CA0001.eurprd02.prod.outlook.com]', enhancedStatus: '5.7.139' }),
    code: 'SMTP_535_5.7.139', step: 6, temporary: false, fix: /Set-CASMailbox/,
  },
  {
    name: '535 5.7.3 token refused',
    evidence: () => smtpReply('EAUTH', 'AUTH XOAUTH2', '535 5.7.3 Authentication unsuccessful [SN4PR0501CA0054.namprd05.prod.outlook.com 2026-11-28T10:00:00.000Z 08DD1E2F3A4B5C6D]'),
    code: 'SMTP_535_5.7.3', step: 5, temporary: false, fix: /Exchange Online licence.*Connect your Outlook account/, cause: /access token/,
  },
  {
    name: 'Dovecot 535 5.7.8',
    evidence: () => smtpReply('EAUTH', 'AUTH XOAUTH2', '535 5.7.8 Authentication failed.'),
    code: 'SMTP_535', step: 5, temporary: false, fix: /Connect your Outlook account/,
  },
  {
    name: '535 without an enhanced status',
    evidence: () => smtpReply('EAUTH', 'AUTH XOAUTH2', '535 Authentication credentials invalid'),
    code: 'SMTP_535', step: 5, temporary: false, fix: /Connect your Outlook account/,
  },
  {
    name: '550 5.7.30 basic auth not supported',
    evidence: () => smtpReply('EAUTH', 'AUTH LOGIN', '550 5.7.30 Basic authentication is not supported for Client Submission. [PH0PR07CA0030.namprd07.prod.outlook.com]'),
    code: 'SMTP_550_5.7.30', step: 4, temporary: false, fix: /Outlook OAuth Authentication/,
  },
  {
    name: '530 5.7.57 not authenticated at MAIL FROM',
    evidence: () => smtpReply('EENVELOPE', 'MAIL FROM', '530 5.7.57 Client not authenticated to send mail. [BN1P110CA0052.NAMP110.PROD.OUTLOOK.COM 2023-11-29T14:52:57.126Z 08DBE7319275F6BA]'),
    code: 'SMTP_530_5.7.57', step: 4, temporary: false, fix: /smtp\.office365\.com.*587.*STARTTLS/,
  },
  {
    name: '550 5.7.60 no permission to send as',
    evidence: () => smtpReply('EENVELOPE', 'MAIL FROM', '550 5.7.60 SMTP; Client does not have permissions to send as this sender [BN0PR04MB8000.namprd04.prod.outlook.com 2026-11-28T10:00:00.000Z 08DD2A3B4C5D6E7F]'),
    code: 'SMTP_550_5.7.60', step: 6, temporary: false, fix: /Add-RecipientPermission/,
  },
  {
    name: '554 5.2.0 SendAsDeniedException after DATA',
    evidence: () => smtpReply('EMESSAGE', 'DATA', '554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message Cannot submit message. 0.35250:0A000000, 1.36674:0A000000, 1.61250:00000000 [Hostname=BN0PR04MB8000.namprd04.prod.outlook.com]'),
    code: 'SMTP_554_SEND_AS_DENIED', step: 6, temporary: false, fix: /Delegation › Send as/, cause: /SendAsDenied/,
  },
  {
    name: '554 5.2.252 SendAsDenied',
    evidence: () => smtpReply('EMESSAGE', 'DATA', '554 5.2.252 SendAsDenied; sales@contoso.com not allowed to send as ceo@contoso.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message.'),
    code: 'SMTP_554_SEND_AS_DENIED', step: 6, temporary: false, fix: /Send as/,
  },
  {
    name: '432 4.3.2 sender thread limit',
    evidence: () => smtpReply('EENVELOPE', 'MAIL FROM', '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded [Hostname=BN0PR04MB8000.namprd04.prod.outlook.com]'),
    code: 'SMTP_432_4.3.2', step: 4, temporary: true, fix: /retries later.*Connections per mailbox/, cause: /3 per mailbox/,
  },
  {
    name: '554 5.2.0 daily recipient quota of the mailbox',
    evidence: () => smtpReply('EENVELOPE', 'RCPT TO', '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message. 0.35250:0A000000, 1.36674:0A000000 [Hostname=DB9PR04MB8000.eurprd04.prod.outlook.com]'),
    code: 'SMTP_554_5.2.0_QUOTA', step: 4, temporary: true, quota: true, fix: /holds this server's mail.*Recipients per day/, cause: /10,000/,
  },
  {
    name: '554 5.2.2 mailbox full',
    evidence: () => smtpReply('EMESSAGE', 'DATA', '554 5.2.2 mailbox full; STOREDRV.Submit.Exception:QuotaExceededException.MapiExceptionQuotaExceeded; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot save changes made to an item to store.'),
    code: 'SMTP_554_5.2.2', step: 6, temporary: false, fix: /free space/, cause: /storage quota/,
  },
  {
    name: '550 5.7.233 tenant external recipient limit',
    evidence: () => smtpReply('EENVELOPE', 'RCPT TO', "550 5.7.233 Your message can't be sent because your organization has exceeded its limit of external recipients. [Hostname=AM0PR04MB8000.eurprd04.prod.outlook.com]"),
    code: 'SMTP_550_5.7.233', step: 4, temporary: true, quota: true, fix: /holds this server's mail/, cause: /external recipients/,
  },
  {
    name: '421 4.7.0 temporary server error at the greeting',
    evidence: () => smtpReply('EPROTOCOL', 'CONN', '421 4.7.0 Temporary server error. Please try again later. PRX4 [AM6P194CA0012.EURP194.PROD.OUTLOOK.COM]'),
    code: 'SMTP_421_4.7.0', step: 7, temporary: true, fix: /retries later/,
  },
  {
    name: '451 4.7.500 server busy',
    evidence: () => smtpReply('EENVELOPE', 'MAIL FROM', '451 4.7.500 Server busy. Please try again later from [203.0.113.7]. (S77714) [DB8EUR05FT010.eop-eur05.prod.protection.outlook.com]'),
    code: 'SMTP_451_4.7.500', step: 7, temporary: true, fix: /retries later/, cause: /throttling/,
  },
  {
    name: '421 4.7.66 old TLS',
    evidence: () => smtpReply('ECONNECTION', 'EHLO', '421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to support TLS 1.2. Visit https://aka.ms/smtp_auth_tls. [AM0PR02CA0001.eurprd02.prod.outlook.com]'),
    code: 'SMTP_421_4.7.66', step: 7, temporary: true, fix: /TLS 1\.2/,
  },
  {
    name: 'another 4xx (Postfix lookup failure)',
    evidence: () => smtpReply('EENVELOPE', 'RCPT TO', '451 4.3.0 <ceo@contoso.com>: Temporary lookup failure'),
    code: 'SMTP_TEMPORARY', step: 7, temporary: true, fix: /retries later/,
  },
  {
    name: '421 4.3.2 service not available',
    evidence: () => smtpReply('ECONNECTION', 'EHLO', '421 4.3.2 Service not available, closing transmission channel'),
    code: 'SMTP_TEMPORARY', step: 7, temporary: true, fix: /retries later/,
  },
  {
    name: 'another 5xx (recipient not found)',
    evidence: () => smtpReply('EENVELOPE', 'RCPT TO', '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'),
    code: 'SMTP_REJECTED', step: 6, temporary: false, fix: /reply below/,
  },
  {
    name: 'nodemailer API error without a reply',
    evidence: () => smtpErrorFrom(Object.assign(new Error('No recipients defined'), { code: 'EENVELOPE', command: 'API' }), TARGET).evidence,
    code: 'SMTP_ERROR', step: 6, temporary: false, fix: /Test Connection/,
  },

  // ── IMAP ──
  {
    name: 'Exchange IMAP: NO AUTHENTICATE failed.',
    evidence: () => imapflow({ response: 'NO AUTHENTICATE failed.', authenticationFailed: true }),
    code: 'IMAP_AUTHENTICATIONFAILED', step: 6, temporary: false, fix: /-ImapEnabled \$true.*IMAP\.AccessAsUser\.All/,
  },
  {
    name: 'Dovecot IMAP: NO [AUTHENTICATIONFAILED]',
    evidence: () => imapflow({ response: 'NO [AUTHENTICATIONFAILED] Authentication failed.', serverResponseCode: 'AUTHENTICATIONFAILED', authenticationFailed: true }),
    code: 'IMAP_AUTHENTICATIONFAILED', step: 6, temporary: false, fix: /Connect your Outlook account/,
  },
  {
    name: 'Dovecot IMAP: login not checkable now, NO [UNAVAILABLE]',
    evidence: () => imapflow({ response: 'NO [UNAVAILABLE] Temporary authentication failure. [mail1:2026-11-28 10:00:00]', serverResponseCode: 'UNAVAILABLE', authenticationFailed: true }),
    code: 'IMAP_UNAVAILABLE', step: 7, temporary: true, fix: /next fetch/,
  },
  {
    name: 'IMAP [UNAVAILABLE] outside login',
    evidence: () => imapflow({ response: 'NO [UNAVAILABLE] Mailbox is temporarily unavailable', serverResponseCode: 'UNAVAILABLE' }),
    code: 'IMAP_UNAVAILABLE', step: 7, temporary: true, fix: /next fetch/,
  },
  {
    name: 'IMAP other NO',
    evidence: () => imapflow({ response: 'NO [NONEXISTENT] Unknown Mailbox: Archive (Failure)', serverResponseCode: 'NONEXISTENT' }),
    code: 'IMAP_ERROR', step: 6, temporary: false, fix: /reply below/,
  },
  {
    name: 'imapflow refuses a literal past INBOUND_MAX_MESSAGE_MB',
    evidence: () => imapErrorFrom(Object.assign(new Error('Literal size 419430400 exceeds maximum allowed size of 104923136 bytes'), { code: 'ResponseTooLarge', literalSize: 419430400 }), { host: '127.0.0.1', port: 143, security: 'starttls' }).evidence,
    code: 'IMAP_TOO_LARGE', step: 6, temporary: false, fix: /IMAP Server and IMAP Port/,
  },
  {
    name: 'imapflow socket timeout while a command waits (ETIMEOUT): not a network error',
    evidence: () => imapErrorFrom(Object.assign(new Error('Socket timeout'), { code: 'ETIMEOUT' }), { host: '127.0.0.1', port: 143, security: 'starttls' }).evidence,
    code: 'IMAP_TIMEOUT', step: 7, temporary: true, fix: /IMAP_TIMEOUT_SECONDS/,
  },
  {
    name: 'imapflow cannot parse the server answer',
    evidence: () => imapErrorFrom(Object.assign(new Error('Unexpected char at position 12'), { code: 'ParserError2' }), { host: '127.0.0.1', port: 143, security: 'starttls' }).evidence,
    code: 'IMAP_MALFORMED', step: 6, temporary: false, fix: /report the evidence/,
  },

  // ── Network and TLS ──
  {
    name: 'SMTP connection refused (nodemailer ESOCKET)',
    evidence: () => smtpSocket('ESOCKET', 'connect ECONNREFUSED 52.97.146.2:587', 'ECONNREFUSED'),
    code: 'NET_ECONNREFUSED', step: 7, temporary: true, fix: /SMTP Server and SMTP Port/,
  },
  {
    name: 'token endpoint connection refused (fetch)',
    evidence: () => tokenEndpointUnreachable(nodeError('ECONNREFUSED', 'connect ECONNREFUSED 20.190.151.7:443')),
    code: 'NET_ECONNREFUSED', step: 7, temporary: true, fix: /firewall/,
  },
  {
    name: 'SMTP connection timeout (nodemailer)',
    evidence: () => smtpSocket('ETIMEDOUT', 'Connection timeout'),
    code: 'NET_ETIMEDOUT', step: 7, temporary: true, fix: /smtp\.office365\.com:587/,
  },
  {
    name: 'token endpoint connect timeout (undici)',
    evidence: () => tokenEndpointUnreachable(nodeError('UND_ERR_CONNECT_TIMEOUT', 'Connect Timeout Error (attempted address: login.microsoftonline.com:443, timeout: 10000ms)')),
    code: 'NET_ETIMEDOUT', step: 7, temporary: true, fix: /login\.microsoftonline\.com:443/,
  },
  {
    name: 'SMTP host not found (nodemailer EDNS)',
    evidence: () => smtpSocket('EDNS', 'getaddrinfo ENOTFOUND smtp.office365.con', 'ENOTFOUND'),
    code: 'NET_ENOTFOUND', step: 7, temporary: true, fix: /spelling of SMTP Server/,
  },
  {
    name: 'DNS not answering (nodemailer EDNS)',
    evidence: () => smtpSocket('EDNS', 'getaddrinfo EAI_AGAIN smtp.office365.com', 'EAI_AGAIN'),
    code: 'NET_EAI_AGAIN', step: 7, temporary: true, fix: /DNS settings/,
  },
  {
    name: 'DNS not answering (fetch)',
    evidence: () => tokenEndpointUnreachable(nodeError('EAI_AGAIN', 'getaddrinfo EAI_AGAIN login.microsoftonline.com')),
    code: 'NET_EAI_AGAIN', step: 7, temporary: true, fix: /DNS/,
  },
  {
    name: 'connection reset (nodemailer ESOCKET)',
    evidence: () => smtpSocket('ESOCKET', 'read ECONNRESET', 'ECONNRESET'),
    code: 'NET_ECONNRESET', step: 7, temporary: true, fix: /firewalls and proxies/,
  },
  {
    name: 'connection closed unexpectedly (nodemailer ECONNECTION)',
    evidence: () => smtpSocket('ECONNECTION', 'Connection closed unexpectedly'),
    code: 'NET_ECONNRESET', step: 7, temporary: true, fix: /retries/,
  },
  {
    name: 'no route to host (nodemailer ESOCKET)',
    evidence: () => smtpSocket('ESOCKET', 'connect EHOSTUNREACH 10.0.0.5:587', 'EHOSTUNREACH'),
    code: 'NET_EHOSTUNREACH', step: 7, temporary: true, fix: /routes and outbound firewall/,
  },
  {
    name: 'unknown issuer (fetch, TLS-inspecting proxy)',
    evidence: () => tokenEndpointUnreachable(nodeError('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate')),
    code: 'NET_CERT', step: 7, temporary: false, fix: /NODE_EXTRA_CA_CERTS/,
  },
  {
    name: 'local issuer missing (fetch)',
    evidence: () => tokenEndpointUnreachable(nodeError('UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'unable to get local issuer certificate')),
    code: 'NET_CERT', step: 7, temporary: false, fix: /NODE_EXTRA_CA_CERTS/,
  },
  {
    name: 'self-signed server certificate (Node TLS error)',
    evidence: () => tokenEndpointUnreachable(nodeError('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate')),
    code: 'NET_CERT_SELF_SIGNED', step: 7, temporary: false, fix: /NODE_EXTRA_CA_CERTS/,
  },
  {
    name: 'private root in chain (Node TLS error)',
    evidence: () => tokenEndpointUnreachable(nodeError('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain')),
    code: 'NET_CERT_SELF_SIGNED', step: 7, temporary: false, fix: /NODE_EXTRA_CA_CERTS/,
  },
  {
    name: 'expired certificate (Node TLS error)',
    evidence: () => tokenEndpointUnreachable(nodeError('CERT_HAS_EXPIRED', 'certificate has expired')),
    code: 'NET_CERT_EXPIRED', step: 7, temporary: false, fix: /date and time/, cause: /clock/,
  },
  {
    name: 'certificate for another name (Node TLS error)',
    evidence: () => tokenEndpointUnreachable(nodeError('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames: Host: login.microsoftonline.com. is not in the cert's altnames: DNS:proxy.corp.example")),
    code: 'NET_CERT_HOSTNAME', step: 7, temporary: false, fix: /smtp\.office365\.com \(not an IP address/,
  },
  {
    name: 'TLS spoken to a plain port (Node TLS error)',
    evidence: () => tokenEndpointUnreachable(nodeError('ERR_SSL_WRONG_VERSION_NUMBER', '80FCCCB7A67F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number')),
    code: 'NET_TLS_MODE', step: 7, temporary: false, fix: /587 with Connection Security STARTTLS/,
  },
  {
    name: 'STARTTLS failed (nodemailer ETLS)',
    evidence: () => smtpSocket('ETLS', 'Error initiating TLS - Client network socket disconnected before secure TLS connection was established'),
    code: 'NET_TLS_MODE', step: 7, temporary: false, fix: /Connection Security/,
  },
  {
    name: 'SMTP host resolves to a cloud metadata address (outbound policy)',
    evidence: () => smtpErrorFrom(new OutboundRefusedError({ host: 'mail.rebind.example', address: '169.254.169.254', kind: 'metadata' }), { host: 'mail.rebind.example', port: 587, security: 'starttls' }).evidence,
    code: 'NET_OUTBOUND_REFUSED', step: 7, temporary: false, fix: /real host name/, cause: /before opening any connection/,
  },
  {
    name: 'IMAP host is a metadata name (outbound policy)',
    evidence: () => imapErrorFrom(new OutboundRefusedError({ host: 'metadata.google.internal', kind: 'metadata_name' }), { host: 'metadata.google.internal', port: 993, security: 'tls' }).evidence,
    code: 'NET_OUTBOUND_REFUSED', step: 7, temporary: false, fix: /OUTBOUND_ALLOW/,
  },
  {
    name: 'other socket error',
    evidence: () => smtpSocket('ESOCKET', 'socket hang up'),
    code: 'NET_ERROR', step: 7, temporary: true, fix: /server name, port/, cause: /\(ESOCKET\)/,
  },

  // ── Microsoft Graph: the error JSON {"error":{"code","message"}} with the HTTP status ──
  {
    name: 'Send As denied',
    evidence: () => graphError(403, 'ErrorSendAsDenied', 'The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.'),
    code: 'GRAPH_ErrorSendAsDenied', step: 4, temporary: false, fix: /Send as/,
  },
  {
    name: 'no Exchange Online mailbox',
    evidence: () => graphError(404, 'MailboxNotEnabledForRESTAPI', 'The mailbox is either inactive, soft-deleted, or is hosted on-premise.'),
    code: 'GRAPH_MailboxNotEnabledForRESTAPI', step: 4, temporary: false, fix: /Exchange Online licence/,
  },
  {
    name: 'mailbox over quota',
    evidence: () => graphError(403, 'ErrorQuotaExceeded', 'The process failed to get the correct properties.'),
    code: 'GRAPH_ErrorQuotaExceeded', step: 4, temporary: false, fix: /Free space/,
  },
  {
    name: 'token for another resource',
    evidence: () => graphError(401, 'InvalidAuthenticationToken', 'Access token validation failure. Invalid audience.'),
    code: 'GRAPH_InvalidAuthenticationToken', step: 5, temporary: false, fix: /Connect your Outlook account/,
  },
  {
    name: 'Mail.Send not consented',
    evidence: () => graphError(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.'),
    code: 'GRAPH_ErrorAccessDenied', step: 2, temporary: false, fix: /Mail\.Send/,
  },
  {
    name: 'directory request denied',
    evidence: () => graphError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.'),
    code: 'GRAPH_ErrorAccessDenied', step: 2, temporary: false, fix: /Grant admin consent/,
  },
  {
    name: 'Test Connection: the token lacks Mail.Send',
    evidence: () => ({ kind: 'graph', status: 200, code: 'MissingPermission', message: 'granted: User.Read', missingPermissions: ['Mail.Send'] }),
    code: 'GRAPH_MISSING_PERMISSION', step: 2, temporary: false, fix: /Connect your Outlook account again/, cause: /Mail\.Send/,
  },
  {
    name: 'unknown user',
    evidence: () => graphError(404, 'ErrorInvalidUser', "The requested user 'nobody@contoso.com' is invalid."),
    code: 'GRAPH_ErrorInvalidUser', step: 4, temporary: false, fix: /Username/,
  },
  {
    name: 'throttled with Retry-After',
    evidence: () => ({ ...graphError(429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.'), retryAfterSeconds: 5 }),
    code: 'GRAPH_THROTTLED', step: 7, temporary: true, fix: /Retry-After/,
  },
  {
    name: 'service unavailable',
    evidence: () => graphError(503, 'ServiceUnavailable', 'Service Unavailable'),
    code: 'GRAPH_THROTTLED', step: 7, temporary: true, fix: /tries again/,
  },
  {
    name: 'request too large',
    evidence: () => graphError(413, 'RequestEntityTooLarge', 'The request is too large.'),
    code: 'GRAPH_RequestEntityTooLarge', step: 4, temporary: false, fix: /Message size restrictions/,
  },
  {
    name: 'an unknown Graph error',
    evidence: () => graphError(400, 'ErrorSomethingNew', 'Something new.'),
    code: 'GRAPH_UNKNOWN', step: 7, temporary: false, fix: /request-id/, cause: /400 ErrorSomethingNew/,
  },
  {
    name: 'a delta link to another host',
    evidence: () => foreignLink('https://127.0.0.1:18445', 'https://graph.microsoft.com', '@odata.nextLink of GET delta').evidence,
    code: 'GRAPH_ForeignLink', step: 7, temporary: false, fix: /MICROSOFT_GRAPH_HOST/, cause: /access token/,
  },
  {
    name: 'a delta page whose value is a number',
    evidence: () => invalidResponse('GET delta', '"value" is number 5, not an array of messages').evidence,
    code: 'GRAPH_InvalidResponse', step: 7, temporary: true, fix: /last good link/,
  },
  {
    name: 'a Graph answer over its size limit',
    evidence: () => graphError(200, 'ResponseTooLarge', 'The answer from https://graph.microsoft.com is larger than 16 MB; Mailroom stopped reading it.'),
    code: 'GRAPH_ResponseTooLarge', step: 7, temporary: true, fix: /MICROSOFT_GRAPH_HOST/,
  },
  {
    name: 'a Graph answer past its deadline',
    evidence: () => graphError(0, 'ResponseTimeout', 'https://graph.microsoft.com did not finish answering within 60 s.'),
    code: 'GRAPH_ResponseTimeout', step: 7, temporary: true, fix: /network path/,
  },

  // ── Google ──
  {
    name: 'Gmail refresh token expired or revoked',
    evidence: () => google('invalid_grant', 'Token has been expired or revoked.', 'refresh'),
    code: 'GMAIL_invalid_grant', step: 5, temporary: false, fix: /Publish app.*Connect your Gmail account/, cause: /7 days/,
  },
  {
    name: 'app in Testing: refresh token for 7 days (connect-time warning)',
    evidence: () => googleProvider.connectWarning!({ accessToken: 'a', refreshToken: 'r', expiresAt: new Date(), scope: undefined, refreshTokenExpiresInSeconds: 604799 })!,
    code: 'GMAIL_testing_publishing_status', step: 2, temporary: false, fix: /Publish app/, cause: /7 days/,
  },
  {
    name: 'redirect_uri_mismatch',
    evidence: () => googleRedirect('redirect_uri_mismatch'),
    code: 'GMAIL_redirect_uri_mismatch', step: 1, temporary: false, fix: /Authorized redirect URIs/,
  },
  {
    name: 'invalid_client at the token endpoint',
    evidence: () => google('invalid_client', 'Unauthorized'),
    code: 'GMAIL_invalid_client', step: 3, temporary: false, fix: /Client secret/,
  },
  {
    name: 'consent declined',
    evidence: () => googleRedirect('access_denied'),
    code: 'GMAIL_access_denied', step: 2, temporary: false, fix: /Test users/,
  },
  {
    name: 'org_internal',
    evidence: () => googleRedirect('org_internal'),
    code: 'GMAIL_org_internal', step: 2, temporary: false, fix: /User type to External/,
  },
  {
    name: 'admin_policy_enforced at refresh',
    evidence: () => google('admin_policy_enforced', 'Admin policy enforced', 'refresh'),
    code: 'GMAIL_admin_policy_enforced', step: 2, temporary: false, fix: /Trusted/,
  },
  {
    name: 'an unknown Google error',
    evidence: () => google('something_new'),
    code: 'GMAIL_UNKNOWN', step: 4, temporary: false, fix: /Connect your Gmail account/, cause: /something_new/,
  },
  {
    name: 'Gmail 535-5.7.8 with a token',
    evidence: () => smtpAs('xoauth2', 'smtp.gmail.com', 'EAUTH', 'AUTH XOAUTH2', '535-5.7.8 Username and Password not accepted. For more information, go to\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials a1-20020a170906 - gsmtp'),
    code: 'SMTP_535_5.7.8_GMAIL', step: 5, temporary: false, fix: /Gmail OAuth Authentication.*App Password/,
  },
  {
    name: 'Gmail 535-5.7.8 with a password',
    evidence: () => smtpAs('password', 'smtp.gmail.com', 'EAUTH', 'AUTH PLAIN', '535-5.7.8 Username and Password not accepted. For more information, go to\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials a1-20020a170906 - gsmtp'),
    code: 'SMTP_535_5.7.8_GMAIL', step: 5, temporary: false, fix: /App Password/,
  },
  {
    name: 'Gmail wants an application-specific password',
    evidence: () => smtpAs('password', 'smtp.gmail.com', 'EAUTH', 'AUTH PLAIN', '534-5.7.9 Application-specific password required. For more information, go to\n534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor - gsmtp'),
    code: 'SMTP_534_5.7.9', step: 4, temporary: false, fix: /App Password/,
  },
  {
    name: 'Gmail daily sending limit',
    evidence: () => smtpAs('xoauth2', 'smtp.gmail.com', 'EENVELOPE', 'DATA', '550 5.4.5 Daily user sending limit exceeded. For more information on Gmail sending limits go to https://support.google.com/a/answer/166852 - gsmtp'),
    code: 'SMTP_550_5.4.5_GMAIL', step: 4, temporary: true, quota: true, fix: /24-hour window/,
  },
  {
    name: 'Gmail 421 4.7.0 try later',
    evidence: () => smtpAs('xoauth2', 'smtp.gmail.com', 'EENVELOPE', 'MAIL FROM', '421-4.7.0 Try again later, closing connection. (MAIL) a1-20020a170906 - gsmtp'),
    code: 'SMTP_421_4.7.0_GMAIL', step: 7, temporary: true, fix: /retries/,
  },
  {
    name: 'IMAP disabled for the Gmail account',
    evidence: () => imapErrorFrom(Object.assign(new Error('Command failed'), { responseStatus: 'NO', responseText: '[ALERT] Your account is not enabled for IMAP use. Please visit your Gmail settings page and enable your account for IMAP access. (Failure)', authenticationFailed: true }), { host: 'imap.gmail.com', port: 993, security: 'tls', auth: 'xoauth2' }).evidence,
    code: 'IMAP_GMAIL_DISABLED', step: 6, temporary: false, fix: /Enable IMAP/,
  },

  // ── Username/Password and None ──
  {
    name: 'wrong password (Dovecot 535 5.7.8)',
    evidence: () => smtpAs('password', 'mail.example.com', 'EAUTH', 'AUTH PLAIN', '535 5.7.8 Authentication failed'),
    code: 'SMTP_535_PASSWORD', step: 4, temporary: false, fix: /current password in Password/,
  },
  {
    name: 'wrong password (Exchange on-premises 535 5.7.3)',
    evidence: () => smtpAs('password', 'exchange.contoso.local', 'EAUTH', 'AUTH LOGIN', '535 5.7.3 Authentication unsuccessful'),
    code: 'SMTP_535_PASSWORD', step: 4, temporary: false, fix: /Password/,
  },
  {
    name: 'a password at Microsoft 365 (5.7.139 basic auth disabled)',
    evidence: () => smtpAs('password', 'smtp.office365.com', 'EAUTH', 'AUTH LOGIN', '535 5.7.139 Authentication unsuccessful, basic authentication is disabled. [AM0PR04CA0001.eurprd04.prod.outlook.com]'),
    code: 'SMTP_PASSWORD_MICROSOFT', step: 4, temporary: false, fix: /Outlook OAuth Authentication/, cause: /basic authentication/,
  },
  {
    name: 'a password at Microsoft 365 (5.7.3)',
    evidence: () => smtpAs('password', 'smtp.office365.com', 'EAUTH', 'AUTH LOGIN', '535 5.7.3 Authentication unsuccessful [AM0PR04CA0001.eurprd04.prod.outlook.com]'),
    code: 'SMTP_PASSWORD_MICROSOFT', step: 4, temporary: false, fix: /Connect your Outlook account/,
  },
  {
    name: 'STARTTLS required',
    evidence: () => smtpAs('password', '127.0.0.1', 'EENVELOPE', 'MAIL FROM', '530 5.7.0 Must issue a STARTTLS command first'),
    code: 'SMTP_530_5.7.0', step: 7, temporary: false, fix: /STARTTLS/,
  },
  {
    name: 'relay refuses unauthenticated mail',
    evidence: () => smtpAs('none', 'relay.example.com', 'EENVELOPE', 'RCPT TO', '554 5.7.1 <someone@remote.example>: Relay access denied'),
    code: 'SMTP_RELAY_REFUSED', step: 4, temporary: false, fix: /mynetworks/,
  },
  {
    name: 'IMAP password refused',
    evidence: () => imapErrorFrom(Object.assign(new Error('Authentication failed'), { serverResponseCode: 'AUTHENTICATIONFAILED', responseStatus: 'NO', responseText: 'Authentication failed.', authenticationFailed: true }), { host: '127.0.0.1', port: 993, security: 'tls', auth: 'password' }).evidence,
    code: 'IMAP_PASSWORD_REJECTED', step: 4, temporary: false, fix: /current password/,
  },

  // ── The account that signed in ──
  {
    name: 'signed in as another account',
    evidence: () => ({ kind: 'account', expected: 'sales@contoso.com', actual: 'bob@contoso.com' }),
    code: 'ACCOUNT_MISMATCH', step: 5, temporary: false, fix: /sign in as the Username mailbox/, cause: /bob@contoso\.com.*sales@contoso\.com/,
  },
];

for (const row of ROWS) {
  test(`${row.code}: ${row.name}`, async () => {
    const evidence = await row.evidence();
    const d = diagnose(evidence);
    assert.equal(d.code, row.code, JSON.stringify(evidence));
    assert.equal(d.guideStep, row.step);
    assert.equal(d.temporary, row.temporary);
    assert.equal(isTemporary(evidence), row.temporary);
    assert.equal(d.quota ?? false, row.quota ?? false);
    assert.ok(d.cause.trim().length > 20 && d.fix.trim().length > 20);
    assert.match(d.fix, row.fix);
    if (row.cause) assert.match(d.cause, row.cause);
  });
}

test('every catalogue entry is reached by at least one row above', () => {
  const reached = new Set(ROWS.map((r) => r.code));
  const missing = Object.keys(CATALOGUE).filter((code) => !reached.has(code as CatalogueCode));
  assert.deepEqual(missing, []);
});

test('nodemailer-wrapped TLS errors keep their certificate code through smtpErrorFrom', () => {
  assert.equal(diagnose(smtpSocket('ESOCKET', 'certificate has expired', 'CERT_HAS_EXPIRED')).code, 'NET_CERT_EXPIRED');
  assert.equal(diagnose(smtpSocket('ESOCKET', 'self-signed certificate', 'DEPTH_ZERO_SELF_SIGNED_CERT')).code, 'NET_CERT_SELF_SIGNED');
});

test('a Send As refusal names the From address and the mailbox, and FROM Filtering, when both are known', () => {
  const sender = { from: 'billing@contoso.com', mailbox: 'sales@contoso.com' };
  for (const evidence of [
    smtpReply('EENVELOPE', 'MAIL FROM', '550 5.7.60 SMTP; Client does not have permissions to send as this sender'),
    smtpReply('EMESSAGE', 'DATA', '554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Cannot submit message.'),
    graphError(403, 'ErrorSendAsDenied', 'The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.'),
  ]) {
    const x = explain(evidence, 'refused', sender);
    assert.match(x.message, /The mailbox sales@contoso\.com \(the server's Username\) may not send as billing@contoso\.com/, x.code);
    assert.match(x.fix, /Mailboxes › billing@contoso\.com › Delegation › Send as › Edit › add sales@contoso\.com/, x.code);
    assert.match(x.fix, /Add-RecipientPermission -Identity billing@contoso\.com -Trustee sales@contoso\.com/, x.code);
    assert.match(x.fix, /FROM Filtering to billing@contoso\.com/, x.code);
    // Without the addresses the catalogue's general wording stays.
    assert.match(explain(evidence, 'refused').fix, /<From address>/);
  }
});
