import {
  api,
  type AuthMethodChoice,
  type MailServer,
  type MailServerDefaults,
  type MailServerInput,
  type SendLimitField,
  type SendUsing,
  type SmtpSecurity,
} from './api.ts';
import { BounceWatchPanel } from './bounce-watch-panel.tsx';
import { ConnectionPanel } from './connection-panel.tsx';
import { useLocation } from './router.tsx';
import { mailServerPath, paths } from './routes.ts';
import { SendingSummary } from './sending-summary.tsx';
import { commonInput, commonValues, connectionInput, ServerForm, type CommonValues, type FieldSpec, type ServerKindSpec } from './server-form.tsx';
import { describeTransport, TRANSPORTS } from './server-form-description.ts';
import { toNullable, toNumber } from './use-server-form.ts';

interface FormValues extends CommonValues, Record<SendLimitField, string> {
  smtpHost: string;
  smtpPort: string;
  smtpSecurity: string;
  sendUsing: string;
  priority: string;
  fromFilter: string;
  clientSecretExpiresAt: string;
  allowAccountMismatch: boolean;
}

const LIMITS: { name: SendLimitField; label: string }[] = [
  { name: 'maxConnections', label: 'Connections per mailbox' },
  { name: 'messagesPerMinute', label: 'Messages per minute' },
  { name: 'recipientsPerDay', label: 'Recipients per day' },
  { name: 'recipientsPerMessage', label: 'Recipients per message' },
];

const SECURITY_OPTIONS: { value: SmtpSecurity; label: string }[] = [
  { value: 'starttls', label: 'STARTTLS' },
  { value: 'tls', label: 'SSL/TLS' },
  { value: 'none', label: 'None (this machine or MAIL_PLAINTEXT_HOSTS only)' },
];

const limitValues = (l: Pick<MailServerDefaults, SendLimitField>): Record<SendLimitField, string> => ({
  maxConnections: l.maxConnections === null ? '' : String(l.maxConnections),
  messagesPerMinute: l.messagesPerMinute === null ? '' : String(l.messagesPerMinute),
  recipientsPerDay: l.recipientsPerDay === null ? '' : String(l.recipientsPerDay),
  recipientsPerMessage: l.recipientsPerMessage === null ? '' : String(l.recipientsPerMessage),
});

/** A new server (`s` null: the defaults) or a saved one. */
function valuesOf(s: MailServer | null, d: MailServerDefaults | null): FormValues {
  const x = (s ?? d)!;
  return {
    ...commonValues(s, { authType: x.authType, tenant: x.tenant }),
    smtpHost: x.smtpHost,
    smtpPort: String(x.smtpPort),
    smtpSecurity: x.smtpSecurity,
    sendUsing: x.sendUsing,
    priority: String(x.priority),
    fromFilter: s?.fromFilter ?? '',
    clientSecretExpiresAt: s?.clientSecretExpiresAt ?? '',
    allowAccountMismatch: s?.allowAccountMismatch ?? false,
    ...limitValues(x),
  };
}

/** The API input for the form values, without the (write-only) client secret; a typed password is sent. */
function toInput(v: FormValues): Omit<MailServerInput, 'clientSecret'> {
  return {
    ...commonInput(v),
    clientId: v.clientId.trim(),
    tenant: v.tenant.trim(),
    smtpHost: v.smtpHost.trim(),
    smtpPort: toNumber(v.smtpPort),
    smtpSecurity: v.smtpSecurity as SmtpSecurity,
    sendUsing: v.sendUsing as SendUsing,
    priority: toNumber(v.priority),
    fromFilter: toNullable(v.fromFilter),
    clientSecretExpiresAt: toNullable(v.clientSecretExpiresAt),
    allowAccountMismatch: v.allowAccountMismatch,
    maxConnections: toNumber(v.maxConnections),
    messagesPerMinute: toNumber(v.messagesPerMinute),
    recipientsPerDay: toNumber(v.recipientsPerDay),
    recipientsPerMessage: toNumber(v.recipientsPerMessage),
    ...connectionInput(v, { tokenSource: true }),
  };
}

const OUTGOING: ServerKindSpec<MailServer, MailServerDefaults, FormValues, MailServerInput> = {
  direction: 'outgoing',
  base: 'mail-servers',
  idPrefix: 'mail-server-',
  formId: 'mail-server-form',
  title: 'Mail Server',
  listLabel: 'Mail Servers',
  nameLabel: 'Mail Server Description',
  namePlaceholder: 'e.g. Sales mailbox',
  notFound: 'This mail server does not exist (it may have been deleted).',
  noun: 'mail server',
  listPath: paths.mailServers,
  pathOf: mailServerPath,
  loadDefaults: api.mailServerDefaults,
  load: api.getMailServer,
  create: api.createMailServer,
  update: api.updateMailServer,
  remove: api.deleteMailServer,
  fromDefaults: (d) => valuesOf(null, d),
  fromServer: (s) => valuesOf(s, null),
  toInput,
  sendsSecret: (v) => v.tokenSourceId === null && v.clientCredential === 'secret',
  check: (v) => {
    const local: Record<string, string> = {};
    if (v.smtpPort.trim() === '') local.smtpPort = 'Enter a port number (587 for STARTTLS)';
    if (v.priority.trim() === '') local.priority = 'Enter a priority, e.g. 10';
    return local;
  },

  /**
   * A new server takes the method's own hosts (smtp.gmail.com:587 STARTTLS), or none for
   * Username/Password and None; Microsoft Graph stays only where the method allows it.
   */
  methodChanged({ isNew, values, initial, set, methods }, m) {
    if (!m.graph) set('sendUsing', 'smtp');
    if (!isNew) return;
    const providerHosts = new Set((methods ?? []).flatMap((x) => (x.smtp ? [x.smtp.host] : [])));
    if (m.smtp) {
      set('smtpHost', m.smtp.host);
      set('smtpPort', String(m.smtp.port));
      set('smtpSecurity', m.smtp.security);
    } else if (providerHosts.has(values.smtpHost)) {
      set('smtpHost', '');
    }
    // The defaults' sending limits are those of the default method's mail host (Exchange Online).
    for (const f of LIMITS) set(f.name, m.authType === initial.authType ? initial[f.name] : '');
  },

  sections({ values, auth, server }) {
    const transport = describeTransport('outgoing', values.sendUsing);
    const access = auth?.connectionChoices ? values.access : 'delegated';
    const sending: FieldSpec[] = [];
    if (auth?.method.graph) {
      sending.push({
        name: 'sendUsing',
        label: 'Send Using',
        kind: 'select',
        options: TRANSPORTS.outgoing,
        help: `Azure permissions for this choice: ${transport.permissions[access]}.${transport.note ? ` ${transport.note}` : ''}`,
      });
    }
    if (transport.hostFields) {
      sending.push(
        { name: 'smtpHost', label: 'SMTP Server', kind: 'text' },
        { name: 'smtpPort', label: 'SMTP Port', kind: 'number', min: 1, max: 65535, help: '587 with STARTTLS, or 465 with SSL/TLS.' },
        { name: 'smtpSecurity', label: 'Connection Security', kind: 'select', options: SECURITY_OPTIONS },
      );
    }
    sending.push(
      { name: 'priority', label: 'Priority', kind: 'number', min: 0, max: 1000000, help: 'When several servers match, the lowest number is used first.' },
      { name: 'fromFilter', label: 'FROM Filtering', kind: 'text', placeholder: 'contoso.com', help: 'Only use this server for this address or domain' },
    );
    return [
      { legend: 'Sending', fields: sending },
      {
        legend: 'Sending limits',
        intro: server?.sending && <SendingSummary sending={server.sending} />,
        fields: LIMITS.map((l) => ({ name: l.name, label: l.label, kind: 'number' as const, min: 1, max: 100_000_000, help: auth?.limitHelp[l.name] })),
      },
    ];
  },

  panel: ({ server, methods, setServer, keepSaved, dirty }) => <OutgoingPanel server={server} methods={methods} setServer={setServer} keepSaved={keepSaved} dirty={dirty} />,
  aboveForm: ({ server }) => server && server.authType !== 'none' && <BounceWatchPanel serverId={server.id} username={server.username} />,
};

function OutgoingPanel({ server, methods, setServer, keepSaved, dirty }: { server: MailServer; methods: AuthMethodChoice[] | null; setServer: (s: MailServer) => void; keepSaved: (v: Partial<FormValues>) => void; dirty: boolean }) {
  const { query } = useLocation();
  return (
    <ConnectionPanel
      server={server}
      method={methods?.find((m) => m.authType === server.authType)}
      oauth={query.get('oauth')}
      dirty={dirty}
      onServerChange={setServer}
      onSettingsSaved={(s) => {
        // A setting saved from the Connection panel (shared mailbox, Graph): the form follows, other edits stay.
        setServer(s);
        keepSaved({ allowAccountMismatch: s.allowAccountMismatch, sendUsing: s.sendUsing });
      }}
    />
  );
}

/** Create (id undefined) or edit a mail server. */
export function MailServerForm({ id }: { id?: string }) {
  return <ServerForm id={id} kind={OUTGOING} />;
}
