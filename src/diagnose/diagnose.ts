import type { Evidence } from './evidence.ts';

/**
 * Steps of the connection guide (README "Connect a Microsoft 365 mailbox" and the in-app guide):
 * 1 register the app and its redirect URI, 2 API permissions, 3 client secret, 4 the Mailroom form,
 * 5 connect and consent, 6 SMTP AUTH for the mailbox, 7 network and TLS.
 */
export type GuideStep = 1 | 2 | 3 | 4 | 5 | 6 | 7;

export interface Diagnosis {
  /** Stable id of the catalogue entry, e.g. AADSTS7000215 or SMTP_535_5.7.139. */
  code: string;
  cause: string;
  fix: string;
  guideStep: GuideStep;
}

type Entry = Omit<Diagnosis, 'code'>;

const AADSTS: Record<number, Entry> = {
  50011: {
    cause: 'The redirect URL Mailroom sent is not registered on the Azure app (Microsoft compares it character for character).',
    fix: 'In Azure > App registrations > your app > Authentication, add the OAuth2 Redirect Url shown on this form exactly, under platform "Web". If Mailroom runs behind a proxy, set BASE_URL to the public address.',
    guideStep: 1,
  },
  50194: {
    cause: 'The Azure app is single-tenant, so it cannot sign in through the "common" endpoint.',
    fix: 'Set Tenant on this form to your tenant ID or domain (e.g. contoso.com), or make the app multi-tenant in Azure > Authentication > Supported account types.',
    guideStep: 4,
  },
  700016: {
    cause: 'Microsoft does not know this Client ID in the tenant used for sign-in.',
    fix: 'Copy the Application (client) ID from the app\'s Overview page in Azure into Client ID, and check Tenant: a single-tenant app must use its own tenant.',
    guideStep: 4,
  },
  7000215: {
    cause: 'Microsoft rejected the client secret. Often the secret\'s "Secret ID" was pasted instead of its "Value".',
    fix: 'In Azure > Certificates & secrets, create a new client secret and copy its Value (shown only once) into Client Secret, then save.',
    guideStep: 3,
  },
  7000222: {
    cause: 'The client secret has expired, which stops every mailbox that uses this Azure app.',
    fix: 'In Azure > Certificates & secrets, create a new client secret, paste its Value into Client Secret, set Client Secret Expiration, and save.',
    guideStep: 3,
  },
  65001: {
    cause: 'Nobody has consented to the app\'s permissions for this account yet.',
    fix: 'Click Connect your Outlook account and accept the permission request, or have a tenant admin grant admin consent in Azure > API permissions.',
    guideStep: 5,
  },
  65004: {
    cause: 'The permission request was declined at Microsoft\'s consent screen.',
    fix: 'Click Connect your Outlook account again and choose Accept. If you are not allowed to consent, ask a tenant admin to grant admin consent.',
    guideStep: 5,
  },
  90094: {
    cause: 'The tenant requires an administrator to approve the app\'s permissions.',
    fix: 'Ask a Global or Privileged Role administrator to open Azure > API permissions and click "Grant admin consent", then connect again.',
    guideStep: 2,
  },
  90008: {
    cause: 'The app\'s permissions were not granted by the tenant.',
    fix: 'Ask a tenant administrator to grant admin consent for SMTP.Send and IMAP.AccessAsUser.All, then connect again.',
    guideStep: 2,
  },
  500112: {
    cause: 'The account that signed in does not match the account that was expected.',
    fix: 'Click Connect your Outlook account and sign in with the mailbox named in Username.',
    guideStep: 5,
  },
  500113: {
    cause: 'The Azure app has no redirect URL registered.',
    fix: 'In Azure > App registrations > your app > Authentication, add a "Web" platform with the OAuth2 Redirect Url shown on this form.',
    guideStep: 1,
  },
  50105: {
    cause: 'The signed-in user is not assigned to the app, and the app requires assignment.',
    fix: 'In Azure > Enterprise applications > your app > Users and groups, assign the mailbox user, then connect again.',
    guideStep: 2,
  },
  50020: {
    cause: 'The account that signed in belongs to another tenant than the app allows.',
    fix: 'Sign in with an account of the app\'s tenant, or set Tenant to "common" / "organizations" and make the app multi-tenant.',
    guideStep: 4,
  },
  70008: {
    cause: 'The authorization code or refresh token has expired or was already used.',
    fix: 'Click Connect your Outlook account to sign in again.',
    guideStep: 5,
  },
  50173: {
    cause: 'The grant was revoked: the password changed, sessions were revoked, or the user removed the app\'s access.',
    fix: 'Click Connect your Outlook account and sign in again.',
    guideStep: 5,
  },
  700082: {
    cause: 'The refresh token expired after 90 days without use.',
    fix: 'Click Connect your Outlook account and sign in again. Mailroom refreshes idle connections daily to prevent this.',
    guideStep: 5,
  },
  54005: {
    cause: 'The same authorization code was redeemed twice.',
    fix: 'Click Connect your Outlook account to start a new sign-in.',
    guideStep: 5,
  },
  9002313: {
    cause: 'Microsoft received a malformed request, usually because a value on the form (Client ID, Tenant) has stray characters.',
    fix: 'Check Client ID and Tenant for spaces or missing characters, save, and connect again.',
    guideStep: 4,
  },
  50076: {
    cause: 'The tenant requires multi-factor authentication for this sign-in.',
    fix: 'Click Connect your Outlook account and complete the multi-factor prompt in the browser.',
    guideStep: 5,
  },
  50079: {
    cause: 'The user must register for multi-factor authentication first.',
    fix: 'Have the mailbox user sign in at https://aka.ms/mfasetup, then connect again.',
    guideStep: 5,
  },
  53003: {
    cause: 'A Conditional Access policy blocked the sign-in.',
    fix: 'Ask a tenant administrator to allow this app (or the server\'s location) in Entra ID > Conditional Access, then connect again.',
    guideStep: 2,
  },
  9001023: {
    cause: 'The Tenant on this form does not match the cloud or tenant the app lives in.',
    fix: 'Check Tenant and, for national clouds, MICROSOFT_AUTHORITY_HOST.',
    guideStep: 4,
  },
};

const OAUTH_ERRORS: Record<string, Entry> = {
  invalid_client: {
    cause: 'Microsoft rejected the app\'s credentials.',
    fix: 'Check Client ID and paste a current client secret Value into Client Secret.',
    guideStep: 3,
  },
  invalid_grant: {
    cause: 'Microsoft no longer accepts this connection\'s sign-in.',
    fix: 'Click Connect your Outlook account and sign in again.',
    guideStep: 5,
  },
  access_denied: {
    cause: 'The sign-in or the permission request was cancelled or declined.',
    fix: 'Click Connect your Outlook account again and accept the permission request.',
    guideStep: 5,
  },
  consent_required: AADSTS[65001]!,
  interaction_required: {
    cause: 'Microsoft needs the user to sign in interactively again.',
    fix: 'Click Connect your Outlook account and sign in.',
    guideStep: 5,
  },
  invalid_scope: {
    cause: 'Microsoft rejected the permissions Mailroom asked for.',
    fix: 'In Azure > API permissions, add the delegated permissions SMTP.Send and IMAP.AccessAsUser.All (Office 365 Exchange Online) and offline_access.',
    guideStep: 2,
  },
  unauthorized_client: {
    cause: 'The Azure app is not allowed to use this sign-in flow or is unknown in this tenant.',
    fix: 'Check the Client ID and Tenant, and that the app\'s platform is "Web" with the OAuth2 Redirect Url.',
    guideStep: 1,
  },
  temporarily_unavailable: {
    cause: 'Microsoft\'s sign-in service is temporarily unavailable.',
    fix: 'Wait a few minutes; Mailroom retries by itself.',
    guideStep: 7,
  },
  server_error: {
    cause: 'Microsoft\'s sign-in service had an internal error.',
    fix: 'Wait a few minutes and try again.',
    guideStep: 7,
  },
};

const SMTP_BY_STATUS: Record<string, Entry> = {
  '5.7.139': {
    cause: 'SMTP AUTH is disabled for the tenant or the mailbox (Microsoft: "SmtpClientAuthentication is disabled"), or security defaults block it.',
    fix: 'In Exchange Online PowerShell run: Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false (and, for the whole tenant, Set-TransportConfig -SmtpClientAuthenticationDisabled $false). OAuth still needs SMTP AUTH enabled.',
    guideStep: 6,
  },
  '5.7.3': {
    cause: 'The mail server rejected the access token for this mailbox.',
    fix: 'Check that Username is the mailbox that signed in, that the app has the SMTP.Send permission, and that SMTP AUTH is enabled for the mailbox; then connect again.',
    guideStep: 6,
  },
  '5.7.30': {
    cause: 'The mail server refused basic authentication.',
    fix: 'Use Outlook OAuth Authentication and connect the account.',
    guideStep: 5,
  },
  '5.7.57': {
    cause: 'The mail server requires authentication before sending.',
    fix: 'Connect the Outlook account, then test again.',
    guideStep: 5,
  },
  '5.7.60': {
    cause: 'The mailbox may not send as the From address.',
    fix: 'Send from the Username mailbox, or grant it "Send As" rights on the other address in the Exchange admin center.',
    guideStep: 6,
  },
  '5.2.0': {
    cause: 'The mailbox may not send as the From address (SendAsDenied).',
    fix: 'Send from the Username mailbox, or grant it "Send As" rights on the other address in the Exchange admin center.',
    guideStep: 6,
  },
};

const NETWORK: Record<string, Entry> = {
  ECONNREFUSED: {
    cause: 'Nothing accepted the connection at that host and port.',
    fix: 'Check SMTP Server and SMTP Port (Microsoft 365: smtp.office365.com, 587, STARTTLS) and that a firewall allows outgoing connections.',
    guideStep: 7,
  },
  ETIMEDOUT: {
    cause: 'The connection timed out: the server did not answer.',
    fix: 'Check SMTP Server and SMTP Port, and that this machine may connect out to it (firewall, proxy).',
    guideStep: 7,
  },
  ENOTFOUND: {
    cause: 'The server name could not be resolved.',
    fix: 'Check the spelling of the server name and this machine\'s DNS.',
    guideStep: 7,
  },
  CERT: {
    cause: 'The server\'s TLS certificate could not be verified.',
    fix: 'Check the server name (it must match the certificate). For a private CA, start Mailroom with NODE_EXTRA_CA_CERTS pointing to the CA file.',
    guideStep: 7,
  },
};

const CERT_CODES = /^(CERT_|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|ERR_TLS_CERT|HOSTNAME_MISMATCH|ERR_SSL)/;

/** Pure: maps protocol evidence to the catalogue entry that explains it. */
export function diagnose(e: Evidence): Diagnosis {
  switch (e.kind) {
    case 'oauth': {
      for (const n of e.errorCodes) {
        const hit = AADSTS[n];
        if (hit) return { code: `AADSTS${n}`, ...hit };
      }
      const hit = OAUTH_ERRORS[e.error];
      if (hit) return { code: `OAUTH_${e.error}`, ...hit };
      return {
        code: 'OAUTH_UNKNOWN',
        cause: `Microsoft answered with the error "${e.error}".`,
        fix: 'Check the Azure app registration against the guide, then connect again. The original message is shown below.',
        guideStep: 1,
      };
    }
    case 'smtp': {
      const hit = e.enhancedStatus ? SMTP_BY_STATUS[e.enhancedStatus] : undefined;
      if (hit) return { code: `SMTP_${e.responseCode ?? ''}_${e.enhancedStatus}`, ...hit };
      if (e.responseCode === 535 || e.code === 'EAUTH') {
        return {
          code: 'SMTP_535',
          cause: 'The mail server rejected the login with the access token.',
          fix: 'Check that Username is the mailbox that signed in and that SMTP AUTH is enabled for it; then connect again.',
          guideStep: 6,
        };
      }
      if (e.responseCode !== undefined && e.responseCode >= 400 && e.responseCode < 500) {
        return { code: `SMTP_${e.responseCode}`, cause: 'The mail server reported a temporary problem.', fix: 'Try again later; temporary failures usually clear by themselves.', guideStep: 7 };
      }
      return {
        code: `SMTP_${e.responseCode ?? e.code ?? 'ERROR'}`,
        cause: 'The mail server refused the request.',
        fix: 'Read the server\'s reply below; it names what it refused.',
        guideStep: 6,
      };
    }
    case 'imap':
      if (e.responseCode === 'AUTHENTICATIONFAILED') {
        return {
          code: 'IMAP_AUTHENTICATIONFAILED',
          cause: 'The IMAP server rejected the login with the access token.',
          fix: 'Check that Username is the mailbox that signed in, that the app has IMAP.AccessAsUser.All, and that IMAP is enabled for the mailbox; then connect again.',
          guideStep: 6,
        };
      }
      return { code: `IMAP_${e.responseCode ?? 'ERROR'}`, cause: 'The IMAP server refused the request.', fix: 'Read the server\'s reply below.', guideStep: 6 };
    case 'network': {
      const key = CERT_CODES.test(e.code) ? 'CERT' : e.code === 'ESOCKET' || e.code === 'ECONNECTION' ? 'ECONNREFUSED' : e.code;
      const hit = NETWORK[key];
      if (hit) return { code: `NET_${key}`, ...hit };
      return { code: `NET_${e.code}`, cause: `The connection failed (${e.code}).`, fix: 'Check the server name, port and this machine\'s network access.', guideStep: 7 };
    }
    case 'account':
      return {
        code: 'ACCOUNT_MISMATCH',
        cause: `The account that signed in (${e.actual}) is not the Username on this form (${e.expected}).`,
        fix: 'Click Connect your Outlook account and sign in as the Username mailbox, or change Username to the account that signed in.',
        guideStep: 5,
      };
  }
}
