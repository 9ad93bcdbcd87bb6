import { paths, routeExists } from './routes.ts';

export interface SettingsLink {
  label: string;
  path: string;
  description: string;
}

export interface SettingsGroup {
  heading: string;
  links: SettingsLink[];
}

// Entries whose screen does not exist yet are hidden until their route is added to routes.ts.
const technical: SettingsGroup[] = [
  {
    heading: 'Mail Server',
    links: [
      {
        label: 'Mail Servers',
        path: paths.mailServers,
        description: 'Outgoing mail servers (SMTP) and their Microsoft 365 connection.',
      },
      {
        label: 'Incoming Mail Servers',
        path: paths.incomingMailServers,
        description: 'Mailboxes read over IMAP and their Microsoft 365 connection.',
      },
      {
        label: 'Emails',
        path: paths.emails,
        description: 'The outbox: queued, sent and failed messages.',
      },
      {
        label: 'Incoming Messages',
        path: paths.incomingMessages,
        description: 'Messages fetched from the incoming mail servers and their webhook deliveries.',
      },
      { label: 'API Keys', path: paths.apiKeys, description: 'Keys for applications using the API.' },
      {
        label: 'Webhooks',
        path: paths.webhooks,
        description: 'URLs that receive each incoming message, signed.',
      },
      {
        label: 'How to connect Outlook',
        path: paths.outlookGuide,
        description: 'The Azure app registration step by step, with this installation’s values and a live checklist.',
      },
      {
        label: 'How to connect Gmail',
        path: paths.gmailGuide,
        description: 'The Google Cloud OAuth client and consent screen step by step, with this installation’s redirect URL.',
      },
    ],
  },
  {
    heading: 'Monitoring',
    links: [
      {
        label: 'Mail Health',
        path: paths.health,
        description: 'Every server’s connection, client secret expiry, checklist and last error.',
      },
      {
        label: 'Audit Log',
        path: paths.auditLog,
        description: 'Who changed or connected what, and when.',
      },
      {
        label: 'Suppressions',
        path: paths.suppressions,
        description: 'Addresses that bounced: further mail to them is refused or sent with a warning, per server.',
      },
    ],
  },
];

/** Settings › Technical, by group, without the screens that do not exist yet. */
export function technicalGroups(): SettingsGroup[] {
  return technical.map((g) => ({ ...g, links: g.links.filter((l) => routeExists(l.path)) })).filter((g) => g.links.length > 0);
}
