import { useEffect, useState } from 'react';
import {
  api,
  type AfterFetch,
  type ImapSecurity,
  type IncomingServer,
  type IncomingServerDefaults,
  type IncomingServerInput,
  type ReusableConnection,
  type ServerType,
} from './api.ts';
import { IncomingConnectionPanel } from './incoming-connection-panel.tsx';
import { useLocation } from './router.tsx';
import { incomingMailServerPath, paths } from './routes.ts';
import { commonInput, commonValues, connectionInput, ServerForm, type CommonValues, type FieldSpec, type ServerFormContext, type ServerKindSpec } from './server-form.tsx';
import { describeTransport, TRANSPORTS } from './server-form-description.ts';
import { toNullable, toNumber } from './use-server-form.ts';

/** Pause after typing a Username before asking for an outgoing connection to reuse. */
const REUSE_LOOKUP_DELAY_MS = 400;

interface FormValues extends CommonValues {
  serverType: string;
  imapHost: string;
  imapPort: string;
  imapSecurity: ImapSecurity;
  folder: string;
  afterFetch: AfterFetch;
  moveToFolder: string;
  intervalMinutes: string;
  active: boolean;
}

const AFTER_FETCH_OPTIONS: { value: AfterFetch; label: string }[] = [
  { value: 'mark_read', label: 'Mark as read' },
  { value: 'move', label: 'Move to a folder' },
  { value: 'leave', label: 'Leave as is' },
];

/** A new server (`s` null: the defaults) or a saved one. */
function valuesOf(s: IncomingServer | null, d: IncomingServerDefaults | null): FormValues {
  const x = (s ?? d)!;
  return {
    ...commonValues(s, { authType: x.authType, tenant: x.tenant ?? '' }),
    serverType: x.serverType,
    imapHost: x.imapHost,
    imapPort: String(x.imapPort),
    imapSecurity: x.imapSecurity,
    folder: x.folder,
    afterFetch: x.afterFetch,
    moveToFolder: s?.moveToFolder ?? '',
    intervalMinutes: String(x.intervalMinutes),
    active: s?.active ?? true,
  };
}

/** The API input for the form values, without the (write-only) client secret. */
function toInput(v: FormValues): Omit<IncomingServerInput, 'clientSecret'> {
  return {
    ...commonInput(v),
    serverType: v.serverType as ServerType,
    imapHost: v.imapHost.trim(),
    imapPort: toNumber(v.imapPort),
    imapSecurity: v.imapSecurity,
    folder: v.folder.trim(),
    afterFetch: v.afterFetch,
    // Only meaningful when moving: otherwise cleared, like the hidden field.
    moveToFolder: v.afterFetch === 'move' ? toNullable(v.moveToFolder) : null,
    intervalMinutes: toNumber(v.intervalMinutes),
    active: v.active,
    tokenSourceId: v.tokenSourceId,
    clientId: toNullable(v.clientId),
    tenant: toNullable(v.tenant),
    ...connectionInput(v, { tokenSource: false }),
  };
}

const INCOMING: ServerKindSpec<IncomingServer, IncomingServerDefaults, FormValues, IncomingServerInput> = {
  direction: 'incoming',
  base: 'incoming-servers',
  idPrefix: 'incoming-server-',
  formId: 'incoming-server-form',
  title: 'Incoming Mail Server',
  listLabel: 'Incoming Mail Servers',
  nameLabel: 'Name',
  namePlaceholder: 'e.g. Support inbox',
  notFound: 'This incoming mail server does not exist (it may have been deleted).',
  noun: 'incoming mail server',
  listPath: paths.incomingMailServers,
  pathOf: incomingMailServerPath,
  loadDefaults: api.incomingServerDefaults,
  load: api.getIncomingServer,
  create: api.createIncomingServer,
  update: api.updateIncomingServer,
  remove: api.deleteIncomingServer,
  fromDefaults: (d) => valuesOf(null, d),
  fromServer: (s) => valuesOf(s, null),
  toInput,
  sendsSecret: (v) => v.tokenSourceId === null && v.clientCredential === 'secret',
  check: (v) => {
    const local: Record<string, string> = {};
    if (v.imapPort.trim() === '') local.imapPort = 'Enter a port number (993 for SSL/TLS)';
    if (v.intervalMinutes.trim() === '') local.intervalMinutes = 'Enter an interval in minutes, e.g. 5';
    if (v.afterFetch === 'move' && v.moveToFolder.trim() === '') local.moveToFolder = 'Enter the folder to move fetched messages to';
    return local;
  },

  /** A new server takes the method's own IMAP host (imap.gmail.com:993); Graph only where allowed. */
  methodChanged({ isNew, values, set, methods }, m) {
    if (!m.graph) set('serverType', 'imap');
    if (!isNew) return;
    const providerHosts = new Set((methods ?? []).flatMap((x) => (x.imap ? [x.imap.host] : [])));
    if (m.imap) {
      set('imapHost', m.imap.host);
      set('imapPort', String(m.imap.port));
      set('imapSecurity', m.imap.security);
    } else if (providerHosts.has(values.imapHost)) {
      set('imapHost', '');
    }
  },

  sections({ values, set, auth }) {
    const transport = describeTransport('incoming', values.serverType);
    const access = auth?.connectionChoices ? values.access : 'delegated';
    const reading: FieldSpec[] = [];
    if (auth?.method.graph) {
      reading.push({
        name: 'serverType',
        label: 'Server Type',
        kind: 'select',
        options: TRANSPORTS.incoming,
        help: auth.credentials === 'oauth' ? `Azure permissions: ${transport.permissions[access]}.${transport.note ? ` ${transport.note}` : ''}` : undefined,
      });
    }
    if (transport.hostFields) {
      reading.push(
        { name: 'imapHost', label: 'Server', kind: 'text', help: 'e.g. outlook.office365.com or imap.gmail.com.' },
        { name: 'imapPort', label: 'Port', kind: 'number', min: 1, max: 65535, help: 'Usually 993 with SSL/TLS.' },
        {
          name: 'imapSecurity',
          label: 'SSL/TLS',
          kind: 'checkbox',
          help: 'Unchecked: STARTTLS (usually port 143).',
          checked: values.imapSecurity === 'tls',
          onChange: (tls) => {
            // Follow the usual port of the mode, unless the user chose another one.
            const port = values.imapPort.trim();
            set('imapSecurity', tls ? 'tls' : 'starttls');
            if (tls && port === '143') set('imapPort', '993');
            if (!tls && port === '993') set('imapPort', '143');
          },
        },
      );
    }
    reading.push(
      { name: 'folder', label: 'Folder', kind: 'text', help: 'The mailbox folder to read, usually INBOX.' },
      { name: 'afterFetch', label: 'After fetching', kind: 'select', options: AFTER_FETCH_OPTIONS, help: 'What happens to a message in the mailbox once Mailroom has it.' },
    );
    if (values.afterFetch === 'move') {
      reading.push({ name: 'moveToFolder', label: 'Move to Folder', kind: 'text', placeholder: 'Archive', help: 'An existing folder of the mailbox, e.g. Archive or Processed.' });
    }
    reading.push(
      { name: 'intervalMinutes', label: 'Interval', kind: 'number', min: 1, max: 1440, suffix: 'minutes', help: 'How often to check when the server cannot push (IDLE)' },
      { name: 'active', label: 'Active', kind: 'checkbox', help: 'Inactive servers are not read.' },
    );
    return [{ legend: 'Reading', fields: reading }];
  },

  panel: ({ server, methods, setServer, dirty }) => <IncomingPanel server={server} methods={methods} setServer={setServer} dirty={dirty} />,
  usernameAfter: (ctx) => <ReuseOffer ctx={ctx} />,
};

function IncomingPanel({ server, methods, setServer, dirty }: { server: IncomingServer; methods: ServerFormContext<IncomingServer, FormValues>['methods']; setServer: (s: IncomingServer) => void; dirty: boolean }) {
  const { query } = useLocation();
  return <IncomingConnectionPanel server={server} method={methods?.find((m) => m.authType === server.authType)} oauth={query.get('oauth')} dirty={dirty} onServerChange={setServer} />;
}

/** Typing a Username that an outgoing mail server already connected: offer to reuse its consent. */
function ReuseOffer({ ctx }: { ctx: ServerFormContext<IncomingServer, FormValues> }) {
  const { values, set, auth } = ctx;
  const [reusable, setReusable] = useState<{ username: string; items: ReusableConnection[] } | null>(null);
  const [declined, setDeclined] = useState<string[]>([]);
  const lookupUsername = values.username.trim();
  const sharing = values.tokenSourceId !== null;
  useEffect(() => {
    if (lookupUsername === '' || sharing) return;
    let cancelled = false;
    const t = window.setTimeout(() => {
      api.reusableConnections(lookupUsername).then(
        (r) => !cancelled && setReusable({ username: lookupUsername, items: r.items }),
        () => !cancelled && setReusable({ username: lookupUsername, items: [] }),
      );
    }, REUSE_LOOKUP_DELAY_MS);
    return () => {
      cancelled = true;
      window.clearTimeout(t);
    };
  }, [lookupUsername, sharing]);

  const offer =
    auth?.credentials === 'oauth' && !sharing && reusable && reusable.username === lookupUsername
      ? reusable.items.find((c) => !declined.includes(c.mailServerId) && (c.sendUsing === 'graph') === (values.serverType === 'graph'))
      : undefined;
  if (!offer) return null;
  return (
    <div className="alert alert-info reuse-offer" role="status">
      <p>
        This mailbox is already connected through the outgoing mail server "{offer.name}". One consent covers IMAP and SMTP.
      </p>
      <div className="button-row">
        <button type="button" className="btn btn-secondary btn-small" onClick={() => set('tokenSourceId', offer.mailServerId)}>
          Reuse this connection
        </button>
        <button type="button" className="btn btn-link btn-small" onClick={() => setDeclined((d) => [...d, offer.mailServerId])}>
          No, use own credentials
        </button>
      </div>
    </div>
  );
}

/** Create (id undefined) or edit an incoming mail server. */
export function IncomingMailServerForm({ id }: { id?: string }) {
  return <ServerForm id={id} kind={INCOMING} />;
}
