import { OBJECT_ID_PLACEHOLDER } from '../diagnose/diagnose.ts';

/** One step of the guide's "Application access" variant: what to do, where, and the command when PowerShell is the way. */
export interface ApplicationGuideStep {
  title: string;
  text: string;
  /** Exchange Online PowerShell, filled in with this installation's values. */
  command?: string;
}

/**
 * The "Application access" steps of the connection guide as data the UI renders, with this server's
 * ids filled in (Microsoft: "Authenticate an IMAP, POP or SMTP connection using OAuth" and "Role Based
 * Access Control for Applications in Exchange Online"). `objectId` is the Enterprise application's
 * object id, known once a token carried it (`oid`).
 */
export function applicationAccessGuide(v: { clientId: string; tenant: string; mailbox: string; objectId?: string | null; adminConsentUrl?: string | null; transport: 'smtp' | 'imap' | 'graph' }): ApplicationGuideStep[] {
  const oid = v.objectId ?? OBJECT_ID_PLACEHOLDER;
  const graph = v.transport === 'graph';
  const permission = graph
    ? 'Microsoft Graph › Application permissions › Mail.Send (sending) and/or Mail.ReadWrite (receiving)'
    : 'APIs my organization uses › Office 365 Exchange Online › Application permissions › SMTP.SendAsApp (sending) and/or IMAP.AccessAsApp (receiving)';
  return [
    { title: 'Add the application permissions', text: `Azure portal › Microsoft Entra ID › App registrations › the app › API permissions › Add a permission › ${permission}.` },
    {
      title: 'Grant admin consent',
      text: `A Global or Privileged Role Administrator clicks Grant admin consent${v.adminConsentUrl ? ` (or opens ${v.adminConsentUrl})` : ''}. Application permissions have no user consent.`,
    },
    { title: 'Tenant', text: `Tenant is the Directory (tenant) ID or a verified domain of the organisation (now: ${v.tenant}); common, organizations and consumers name no organisation.` },
    {
      title: 'Register the app in Exchange Online',
      text: 'Use the Object ID of Enterprise applications › the app › Overview — not the Object ID shown under App registrations.',
      command: `Connect-ExchangeOnline -Organization ${v.tenant}\nNew-ServicePrincipal -AppId ${v.clientId} -ObjectId ${oid} -Organization ${v.tenant}`,
    },
    graph
      ? {
          title: 'Scope the app to its mailboxes (RBAC for Applications)',
          text: `Without a scope the app can reach every mailbox in the organisation. Limit it to the mailboxes Mailroom serves, ${v.mailbox} among them.`,
          command: `New-ManagementScope -Name "Mailroom mailboxes" -RecipientRestrictionFilter "PrimarySmtpAddress -eq '${v.mailbox}'"\nNew-ManagementRoleAssignment -App ${oid} -Role "Application Mail.Send" -CustomResourceScope "Mailroom mailboxes"`,
        }
      : {
          title: 'Give the app this mailbox',
          text: `SMTP and IMAP with an app token need the service principal's right on each mailbox, here ${v.mailbox}.`,
          command: `Add-MailboxPermission -Identity ${v.mailbox} -User ${oid} -AccessRights FullAccess\nAdd-RecipientPermission -Identity ${v.mailbox} -Trustee ${oid} -AccessRights SendAs`,
        },
    { title: 'Check application access, then Test Connection', text: 'Check application access asks for a token and names any missing permission; Test Connection proves access to this mailbox before the first send.' },
  ];
}
