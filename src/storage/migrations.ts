import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';

/**
 * Numbered, append-only. Never edit a migration that has shipped: add the next number.
 * Only portable column types, so every migration runs on SQLite and PostgreSQL alike.
 */
type Dialect = 'sqlite' | 'postgres';

const migrations = (dialect: Dialect): Record<string, Migration> => ({
  '0001_admins_sessions': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('admins')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('email', 'text', (c) => c.notNull().unique())
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('sessions')
        .addColumn('id_hash', 'text', (c) => c.primaryKey())
        .addColumn('admin_id', 'text', (c) => c.notNull().references('admins.id').onDelete('cascade'))
        .addColumn('csrf_token', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('sessions_expires_at').on('sessions').column('expires_at').execute();
      await db.schema
        .createTable('setup_tokens')
        .addColumn('token_hash', 'text', (c) => c.primaryKey())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('used_at', 'text')
        .execute();
    },
  },
  '0002_mail_servers_oauth': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('mail_servers')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('auth_type', 'text', (c) => c.notNull())
        .addColumn('username', 'text', (c) => c.notNull())
        .addColumn('client_id', 'text', (c) => c.notNull())
        .addColumn('client_secret_sealed', 'text')
        .addColumn('client_secret_expires_at', 'text')
        .addColumn('tenant', 'text', (c) => c.notNull())
        .addColumn('smtp_host', 'text', (c) => c.notNull())
        .addColumn('smtp_port', 'integer', (c) => c.notNull())
        .addColumn('smtp_security', 'text', (c) => c.notNull())
        .addColumn('priority', 'integer', (c) => c.notNull())
        .addColumn('from_filter', 'text')
        .addColumn('active', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('last_error', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('oauth_tokens')
        .addColumn('mail_server_id', 'text', (c) => c.primaryKey().references('mail_servers.id').onDelete('cascade'))
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('status_reason', 'text')
        .addColumn('account', 'text')
        .addColumn('tenant_id', 'text')
        .addColumn('scope', 'text')
        .addColumn('access_token_sealed', 'text')
        .addColumn('access_token_expires_at', 'text')
        .addColumn('refresh_token_sealed', 'text')
        .addColumn('version', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('connected_at', 'text')
        .addColumn('refreshed_at', 'text')
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('oauth_states')
        .addColumn('state_hash', 'text', (c) => c.primaryKey())
        .addColumn('mail_server_id', 'text', (c) => c.notNull().references('mail_servers.id').onDelete('cascade'))
        .addColumn('admin_id', 'text', (c) => c.notNull().references('admins.id').onDelete('cascade'))
        .addColumn('code_verifier_sealed', 'text', (c) => c.notNull())
        .addColumn('nonce', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('used_at', 'text')
        .execute();
      await db.schema.createIndex('oauth_states_expires_at').on('oauth_states').column('expires_at').execute();
    },
  },
  '0003_outbox_api_keys': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('scope', 'text', (c) => c.notNull())
        .addColumn('prefix', 'text', (c) => c.notNull())
        .addColumn('key_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_by', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('last_used_at', 'text')
        .addColumn('revoked_at', 'text')
        .execute();
      await db.schema
        .createTable('outbox_messages')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('from_addr', 'text', (c) => c.notNull())
        .addColumn('to_json', 'text', (c) => c.notNull())
        .addColumn('cc_json', 'text', (c) => c.notNull())
        .addColumn('bcc_json', 'text', (c) => c.notNull())
        .addColumn('reply_to', 'text')
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('mail_server_id', 'text', (c) => c.references('mail_servers.id').onDelete('set null'))
        .addColumn('message_id', 'text', (c) => c.notNull())
        .addColumn('size_bytes', 'integer', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('attachments_meta', 'text', (c) => c.notNull())
        .addColumn('idempotency_key', 'text')
        .addColumn('request_hash', 'text')
        .addColumn('api_key_id', 'text')
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('max_attempts', 'integer', (c) => c.notNull())
        .addColumn('next_attempt_at', 'text', (c) => c.notNull())
        .addColumn('queued_at', 'text', (c) => c.notNull())
        .addColumn('lease_owner', 'text')
        .addColumn('lease_until', 'text')
        .addColumn('held_at', 'text')
        .addColumn('last_error', 'text')
        .addColumn('smtp_response', 'text')
        .addColumn('sent_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('outbox_messages_idempotency_key').on('outbox_messages').column('idempotency_key').unique().execute();
      await db.schema.createIndex('outbox_messages_due').on('outbox_messages').columns(['state', 'next_attempt_at']).execute();
      await db.schema.createIndex('outbox_messages_lease').on('outbox_messages').columns(['state', 'lease_until']).execute();
      await db.schema.createIndex('outbox_messages_created').on('outbox_messages').columns(['created_at', 'id']).execute();
      await db.schema.createIndex('outbox_messages_server_state').on('outbox_messages').columns(['mail_server_id', 'state']).execute();
    },
  },
  '0004_incoming_mail': {
    async up(db: Kysely<any>) {
      // Incoming servers live beside outgoing ones: they share credentials, tokens and the connect flow.
      const columns: Array<[string, 'text' | 'integer', unknown?]> = [
        ['direction', 'text', 'outgoing'],
        ['imap_host', 'text'],
        ['imap_port', 'integer'],
        ['imap_security', 'text'],
        ['folder', 'text'],
        ['after_fetch', 'text'],
        ['move_to_folder', 'text'],
        ['interval_minutes', 'integer'],
        ['token_source_id', 'text'],
        ['last_fetch_at', 'text'],
      ];
      for (const [name, type, def] of columns) {
        await db.schema
          .alterTable('mail_servers')
          .addColumn(name, type, (c) => (def === undefined ? c : c.notNull().defaultTo(def)))
          .execute();
      }
      await db.schema
        .createTable('inbound_folder_states')
        .addColumn('mail_server_id', 'text', (c) => c.notNull().references('mail_servers.id').onDelete('cascade'))
        .addColumn('folder', 'text', (c) => c.notNull())
        .addColumn('uid_validity', 'text', (c) => c.notNull())
        .addColumn('last_uid', 'integer', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('inbound_folder_states_pk', ['mail_server_id', 'folder'])
        .execute();
      await db.schema
        .createTable('inbound_messages')
        // seq orders the pull API's cursor: assigned in commit order by the single SQLite writer.
        .addColumn('seq', dialect === 'postgres' ? 'bigserial' : 'integer', (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('id', 'text', (c) => c.notNull().unique())
        .addColumn('mail_server_id', 'text', (c) => c.notNull().references('mail_servers.id').onDelete('cascade'))
        .addColumn('folder', 'text', (c) => c.notNull())
        .addColumn('uid_validity', 'text', (c) => c.notNull())
        .addColumn('uid', 'integer', (c) => c.notNull())
        .addColumn('dedupe_key', 'text', (c) => c.notNull())
        .addColumn('message_id', 'text')
        .addColumn('from_addr', 'text', (c) => c.notNull())
        .addColumn('to_json', 'text', (c) => c.notNull())
        .addColumn('cc_json', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('date', 'text')
        .addColumn('in_reply_to', 'text')
        .addColumn('references_json', 'text', (c) => c.notNull())
        .addColumn('text_body', 'text')
        .addColumn('html_body', 'text')
        .addColumn('attachments_meta', 'text', (c) => c.notNull())
        .addColumn('size_bytes', 'integer', (c) => c.notNull())
        .addColumn('raw_path', 'text', (c) => c.notNull())
        .addColumn('outbox_message_id', 'text')
        .addColumn('received_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('inbound_messages_dedupe').on('inbound_messages').columns(['mail_server_id', 'dedupe_key']).unique().execute();
      await db.schema.createIndex('outbox_messages_message_id').on('outbox_messages').column('message_id').execute();
      await db.schema
        .createTable('webhooks')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('secret_sealed', 'text', (c) => c.notNull())
        .addColumn('active', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('webhook_deliveries')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('webhook_id', 'text', (c) => c.notNull().references('webhooks.id').onDelete('cascade'))
        .addColumn('inbound_message_id', 'text', (c) => c.notNull().references('inbound_messages.id').onDelete('cascade'))
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('next_attempt_at', 'text', (c) => c.notNull())
        .addColumn('lease_until', 'text')
        .addColumn('last_status', 'integer')
        .addColumn('last_error', 'text')
        .addColumn('delivered_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('webhook_deliveries_due').on('webhook_deliveries').columns(['state', 'next_attempt_at']).execute();
      await db.schema.createIndex('webhook_deliveries_message').on('webhook_deliveries').column('inbound_message_id').execute();
      await db.schema.createIndex('webhook_deliveries_webhook').on('webhook_deliveries').columns(['webhook_id', 'created_at']).execute();
    },
  },
  '0005_lifecycle_audit': {
    async up(db: Kysely<any>) {
      // Highest secret-expiry warning already sent (30, 7, 1, 0 = expired), so each goes out once.
      await db.schema.alterTable('mail_servers').addColumn('secret_alert_level', 'integer').execute();
      await db.schema.alterTable('mail_servers').addColumn('reconnect_alerted_at', 'text').execute();
      // A shared mailbox: the signed-in account sends as Username on purpose ("Send As" rights).
      await db.schema.alterTable('mail_servers').addColumn('allow_account_mismatch', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      // Last time the mail server accepted our token (Test Connection, a test email, a fetch): the checklist.
      await db.schema.alterTable('mail_servers').addColumn('login_ok_at', 'text').execute();
      await db.schema
        .createTable('audit_events')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target_type', 'text')
        .addColumn('target_id', 'text')
        .addColumn('details', 'text')
        .execute();
      await db.schema.createIndex('audit_events_at').on('audit_events').columns(['at', 'id']).execute();
    },
  },
  '0006_inbound_raw': {
    async up(db: Kysely<any>) {
      // Raw MIME of fetched messages up to 512 KB, committed with the message in one transaction
      // (no file and no fsync of its own); larger ones stay files under DATA_DIR/inbound.
      await db.schema
        .createTable('inbound_raw')
        .addColumn('inbound_message_id', 'text', (c) => c.primaryKey().references('inbound_messages.id').onDelete('cascade'))
        .addColumn('mime', dialect === 'postgres' ? 'bytea' : 'blob', (c) => c.notNull())
        .execute();
      // 1 from the import until the after-fetch action (mark as read, move) has been applied: one
      // interrupted by a crash or a failed command is applied again by the next fetch.
      await db.schema.alterTable('inbound_messages').addColumn('after_fetch_pending', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.createIndex('inbound_messages_after_fetch').on('inbound_messages').columns(['mail_server_id', 'after_fetch_pending']).execute();
    },
  },
  '0007_attempt_limits': {
    async up(db: Kysely<any>) {
      // Failed-attempt counters (logins, SMTP AUTH) in the database: they survive a restart and are
      // shared by every instance on one PostgreSQL.
      await db.schema
        .createTable('attempt_limits')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('window_started_at', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('attempt_limits_window').on('attempt_limits').column('window_started_at').execute();
    },
  },
  '0008_send_limits': {
    async up(db: Kysely<any>) {
      for (const name of ['max_connections', 'messages_per_minute', 'recipients_per_day', 'recipients_per_message']) {
        await db.schema.alterTable('mail_servers').addColumn(name, 'integer').execute();
      }
      // Servers that already send through Exchange Online get Microsoft's per-mailbox limits
      // (servers/send-limits.ts; the list of hosts is repeated here because a migration never changes).
      await db
        .updateTable('mail_servers')
        .set({ max_connections: 3, messages_per_minute: 30, recipients_per_day: 10000, recipients_per_message: 500 })
        .where('direction', '=', 'outgoing')
        .where((eb) =>
          eb.or(
            ['office365.com', 'outlook.com', 'office365.us', 'partner.outlook.cn'].flatMap((d) => [eb('smtp_host', '=', d), eb('smtp_host', 'like', `%.${d}`)]),
          ),
        )
        .execute();
      // Messages queued before this migration count as one recipient each: only the last 24 hours
      // matter, and an estimate errs on the side of sending, as before.
      await db.schema.alterTable('outbox_messages').addColumn('recipient_count', 'integer', (c) => c.notNull().defaultTo(1)).execute();
      await db.schema.alterTable('outbox_messages').addColumn('held_until', 'text').execute();
      // The limits are sums over a server's recent sends: "sent in the last minute / 24 hours".
      await db.schema.createIndex('outbox_messages_server_sent').on('outbox_messages').columns(['mail_server_id', 'sent_at']).execute();
    },
  },
  '0009_outbox_raw_mime': {
    async up(db: Kysely<any>) {
      // A message accepted over SMTP is kept as it arrived (Bcc removed): the bytes here, its envelope
      // in payload. Null for messages built from the send API's fields.
      await db.schema.alterTable('outbox_messages').addColumn('raw_mime', dialect === 'postgres' ? 'bytea' : 'blob').execute();
      // JSON {protocol, clientAddress, apiKeyName}: where a message came from, when not the REST API.
      await db.schema.alterTable('outbox_messages').addColumn('received_via', 'text').execute();
    },
  },
  '0010_graph_transport': {
    async up(db: Kysely<any>) {
      // How a server sends or receives: 'smtp' / 'imap' (XOAUTH2, the default when null) or 'graph'
      // (Microsoft Graph over HTTPS, for tenants with SMTP AUTH switched off).
      await db.schema.alterTable('mail_servers').addColumn('transport', 'text').execute();
      // Graph receiving: the folder's next delta (or next page) link is committed with each batch, and
      // each message keeps its immutable id for the after-fetch action (mark read, move).
      await db.schema.alterTable('inbound_folder_states').addColumn('delta_link', 'text').execute();
      await db.schema.alterTable('inbound_messages').addColumn('remote_id', 'text').execute();
    },
  },
  '0011_password_auth': {
    async up(db: Kysely<any>) {
      // Username/Password servers: the password sealed like a client secret (bound to row and column).
      // auth_type takes gmail_oauth, password and none beside outlook_oauth; smtp_security also none.
      await db.schema.alterTable('mail_servers').addColumn('password_sealed', 'text').execute();
    },
  },
  '0013_cluster': {
    async up(db: Kysely<any>) {
      // Facts about the installation as a whole, e.g. the value sealed at first start that proves an
      // instance holds the same secret key as the others.
      await db.schema
        .createTable('cluster_settings')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      // Work that one instance at a time may do (fetch a mailbox, run the lifecycle jobs): the holder
      // renews expires_at while it works; once that passes, any instance may take the lease over.
      await db.schema
        .createTable('leases')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('holder', 'text', (c) => c.notNull())
        .addColumn('acquired_at', 'text', (c) => c.notNull())
        .addColumn('renewed_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0014_inbound_raw_chunks': {
    async up(db: Kysely<any>) {
      // Raw inbound messages above the 512 KB kept whole in inbound_raw, on PostgreSQL (no shared disk):
      // written and read a chunk at a time, so a 40 MB message never sits whole in memory.
      await db.schema
        .createTable('inbound_raw_chunks')
        .addColumn('inbound_message_id', 'text', (c) => c.notNull())
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('data', dialect === 'postgres' ? 'bytea' : 'blob', (c) => c.notNull())
        .addPrimaryKeyConstraint('inbound_raw_chunks_pk', ['inbound_message_id', 'seq'])
        .execute();
    },
  },
  '0015_inbound_problems': {
    async up(db: Kysely<any>) {
      // A message that could not be read whole is imported all the same, flagged: problem_code one of
      // too_large, too_many_parts, too_deep, malformed, and problem_message naming what is wrong.
      await db.schema.alterTable('inbound_messages').addColumn('problem_code', 'text').execute();
      await db.schema.alterTable('inbound_messages').addColumn('problem_message', 'text').execute();
      // text_body and html_body keep at most 1 MB each; 1 when that is only the beginning.
      await db.schema.alterTable('inbound_messages').addColumn('text_truncated', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('inbound_messages').addColumn('html_truncated', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      // 0 when the raw message was not kept (larger than INBOUND_MAX_MESSAGE_MB): no file, no rows.
      await db.schema.alterTable('inbound_messages').addColumn('raw_kept', 'integer', (c) => c.notNull().defaultTo(1)).execute();
    },
  },
  '0016_api_key_scopes': {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('api_keys').addColumn('scopes', 'text').execute();
      await db.schema.alterTable('api_keys').addColumn('mail_server_ids', 'text').execute();
      await db.schema.alterTable('api_keys').addColumn('incoming_server_ids', 'text').execute();
      // The closest set that does not widen access: `send` used to read every message as well, but
      // reading others' is what least privilege takes away; `read` read outgoing and received mail.
      await db.updateTable('api_keys').set({ scopes: '["send"]' }).where('scope', '=', 'send').execute();
      await db.updateTable('api_keys').set({ scopes: '["outbox:read","inbound:read"]' }).where('scope', '=', 'read').execute();
      await db.updateTable('api_keys').set({ scopes: '["admin"]' }).where('scope', '=', 'admin').execute();
      await db.updateTable('api_keys').set({ scopes: '[]' }).where('scopes', 'is', null).execute();
      // A send key lists the messages it queued.
      await db.schema.createIndex('outbox_messages_api_key').on('outbox_messages').columns(['api_key_id', 'created_at', 'id']).execute();
    },
  },
  '0017_delivery_reports': {
    async up(db: Kysely<any>) {
      // One row per report recognised (a DSN, an auto-reply, a read receipt). report_key is the claim:
      // the same report fetched twice (a restart mid-import, two mailboxes, several instances) inserts
      // once, and only the insert that wins queues the webhook events.
      await db.schema
        .createTable('delivery_reports')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('report_key', 'text', (c) => c.notNull().unique())
        .addColumn('inbound_message_id', 'text', (c) => c.notNull())
        .addColumn('outbox_message_id', 'text')
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('format', 'text', (c) => c.notNull())
        .addColumn('reporting_mta', 'text')
        .addColumn('report_json', 'text', (c) => c.notNull())
        .addColumn('reported_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('delivery_reports_outbox').on('delivery_reports').columns(['outbox_message_id', 'reported_at']).execute();
      await db.schema.createIndex('delivery_reports_reported').on('delivery_reports').columns(['reported_at', 'id']).execute();
      // Per recipient of a report: the outcome on the outgoing message, and what soft bounces are counted from.
      await db.schema
        .createTable('delivery_report_recipients')
        .addColumn('report_id', 'text', (c) => c.notNull().references('delivery_reports.id').onDelete('cascade'))
        .addColumn('outbox_message_id', 'text')
        .addColumn('address', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('action', 'text')
        .addColumn('status', 'text')
        .addColumn('diagnostic', 'text')
        .addColumn('category', 'text')
        .addColumn('reported_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('delivery_report_recipients_outbox').on('delivery_report_recipients').column('outbox_message_id').execute();
      await db.schema.createIndex('delivery_report_recipients_address').on('delivery_report_recipients').columns(['address', 'reported_at']).execute();
      // Addresses (lower-cased) further mail to is refused or warned about, per the outgoing server's setting.
      await db.schema
        .createTable('suppressions')
        .addColumn('address', 'text', (c) => c.primaryKey())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('report_id', 'text')
        .addColumn('outbox_message_id', 'text')
        .addColumn('status', 'text')
        .addColumn('diagnostic', 'text')
        .addColumn('category', 'text')
        .addColumn('bounces', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      // The worst outcome reported after the 250 (bounced, delayed, auto_replied, delivered): the Emails badge.
      await db.schema.alterTable('outbox_messages').addColumn('outcome', 'text').execute();
      // 1: a recognised report, an event on the outgoing message and not new mail for the ERP.
      await db.schema.alterTable('inbound_messages').addColumn('report_only', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      // Outgoing: 'warn' (null, the default) sends to a suppressed address with a warning, 'refuse' answers 422.
      await db.schema.alterTable('mail_servers').addColumn('suppression_policy', 'text').execute();
      // Incoming: 1 hands reports and auto-replies to the ERP as new mail too.
      await db.schema.alterTable('mail_servers').addColumn('deliver_reports', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      // null: message.received; else message.bounced, message.delayed or message.auto_replied about report_id.
      await db.schema.alterTable('webhook_deliveries').addColumn('event', 'text').execute();
      await db.schema.alterTable('webhook_deliveries').addColumn('report_id', 'text').execute();
    },
  },
  '0018_graph_subscriptions': {
    async up(db: Kysely<any>) {
      // Microsoft Graph change notifications: one row per mailbox and folder (the primary key is the
      // claim), looked up by subscription id when a notification arrives.
      await db.schema
        .createTable('graph_subscriptions')
        .addColumn('resource_key', 'text', (c) => c.primaryKey())
        .addColumn('mail_server_id', 'text', (c) => c.notNull().references('mail_servers.id').onDelete('cascade'))
        .addColumn('subscription_id', 'text', (c) => c.unique())
        .addColumn('client_state_hash', 'text')
        .addColumn('expires_at', 'text')
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('last_notification_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0019_webhook_delivery_attempts': {
    async up(db: Kysely<any>) {
      // Every attempt of a delivery, kept: a redelivery appends one and erases none.
      await db.schema
        .createTable('webhook_delivery_attempts')
        .addColumn('delivery_id', 'text', (c) => c.notNull().references('webhook_deliveries.id').onDelete('cascade'))
        .addColumn('attempt', 'integer', (c) => c.notNull())
        .addColumn('redelivery', 'integer', (c) => c.notNull())
        .addColumn('outcome', 'text', (c) => c.notNull())
        .addColumn('status', 'integer')
        .addColumn('error', 'text')
        .addColumn('attempted_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('webhook_delivery_attempts_pk', ['delivery_id', 'attempt'])
        .execute();
      // attempts when an admin last redelivered: the retry budget (WEBHOOK_MAX_ATTEMPTS) counts from there,
      // while attempts keeps counting every attempt ever made.
      await db.schema.alterTable('webhook_deliveries').addColumn('redelivered_after', 'integer', (c) => c.notNull().defaultTo(0)).execute();
    },
  },
  '0020_client_certificates': {
    async up(db: Kysely<any>) {
      // Client Credential: 'certificate' signs token requests with the certificate's key (private_key_jwt).
      await db.schema.alterTable('mail_servers').addColumn('client_credential', 'text').execute();
      // The certificate in use and a rolled one not yet proven; each JSON with the sealed private key.
      // Promotion is one conditional UPDATE of this row (pending -> current), so instances cannot race.
      await db.schema.alterTable('mail_servers').addColumn('certificate', 'text').execute();
      await db.schema.alterTable('mail_servers').addColumn('pending_certificate', 'text').execute();
      await db.schema.alterTable('mail_servers').addColumn('certificate_alert_level', 'integer').execute();
    },
  },
  '0021_application_access': {
    async up(db: Kysely<any>) {
      // Outlook OAuth: delegated (a person's sign-in, refresh token) or application (client credentials).
      await db.schema.alterTable('mail_servers').addColumn('access', 'text', (c) => c.notNull().defaultTo('delegated')).execute();
      // Client-credentials tokens, one per (authority, tenant, client, resource): every server that uses the
      // same app for the same resource shares the row, whatever its mailbox. The row is created before the
      // first request so that the cluster-wide lock (withTokenLock) and the version have something to guard.
      await db.schema
        .createTable('app_tokens')
        .addColumn('cache_key', 'text', (c) => c.primaryKey())
        .addColumn('access_token_sealed', 'text')
        .addColumn('expires_at', 'text')
        .addColumn('roles', 'text')
        .addColumn('tenant_id', 'text')
        .addColumn('app_id', 'text')
        .addColumn('object_id', 'text')
        .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('requested_at', 'text')
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0022_owners_connect_links': {
    async up(db: Kysely<any>) {
      // The ERP user a personal mailbox belongs to (opaque); null: a shared mailbox anyone may use.
      await db.schema.alterTable('mail_servers').addColumn('owner', 'text').execute();
      await db.schema.createIndex('mail_servers_owner').on('mail_servers').columns(['owner', 'direction']).execute();
      // A link an ERP hands to one of its users: only the token's hash is kept; single use (used_at).
      // The sign-in it starts keeps its state here too (hashed, single use with the link).
      await db.schema
        .createTable('connect_links')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('template_server_id', 'text', (c) => c.references('mail_servers.id').onDelete('cascade'))
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('login_hint', 'text')
        .addColumn('purposes', 'text', (c) => c.notNull())
        .addColumn('return_url', 'text', (c) => c.notNull())
        .addColumn('state_hash', 'text', (c) => c.unique())
        .addColumn('code_verifier_sealed', 'text')
        .addColumn('nonce', 'text')
        .addColumn('state_expires_at', 'text')
        .addColumn('created_by', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('used_at', 'text')
        .addColumn('result', 'text')
        .execute();
      await db.schema.createIndex('connect_links_expires_at').on('connect_links').column('expires_at').execute();
    },
  },
  '0023_app_source': {
    async up(db: Kysely<any>) {
      // A personal mailbox signs in with its template's app registration (client id, tenant, secret or
      // certificate) by reference: a secret renewed or a certificate rolled on the template serves
      // every mailbox made from it, and no copy of a credential is left to expire on its own.
      await db.schema.alterTable('mail_servers').addColumn('app_source_id', 'text').execute();
      await db.schema.createIndex('mail_servers_app_source').on('mail_servers').column('app_source_id').execute();
    },
  },
  '0024_mail_servers_version': {
    async up(db: Kysely<any>) {
      // mailServersVersion (count and newest updated_at of one direction) from the index alone, not a
      // read of every server's row on each event-loop turn that accepts mail.
      await db.schema.createIndex('mail_servers_direction_updated').on('mail_servers').columns(['direction', 'updated_at']).execute();
    },
  },
  '0025_mail_server_revisions': {
    async up(db: Kysely<any>) {
      // A counter per direction, moved by the database itself whenever a server is added, deleted
      // or saved (an UPDATE that sets updated_at): a cached server list is current while it reads the
      // same. Count and newest updated_at missed two saves in one millisecond and a save by an
      // instance whose clock is behind. Stamps (last fetch, last error) set no updated_at and move nothing.
      await db.schema
        .createTable('mail_server_revisions')
        .addColumn('direction', 'text', (c) => c.primaryKey())
        .addColumn('n', dialect === 'postgres' ? 'bigint' : 'integer', (c) => c.notNull())
        .execute();
      await db.insertInto('mail_server_revisions').values([{ direction: 'outgoing', n: 0 }, { direction: 'incoming', n: 0 }]).execute();
      if (dialect === 'postgres') {
        await sql`create function mail_servers_revise() returns trigger language plpgsql as $$
          begin
            if tg_op <> 'INSERT' then update mail_server_revisions set n = n + 1 where direction = old.direction; end if;
            if tg_op = 'INSERT' or (tg_op = 'UPDATE' and new.direction is distinct from old.direction) then
              update mail_server_revisions set n = n + 1 where direction = new.direction;
            end if;
            return null;
          end $$`.execute(db);
        await sql`create trigger mail_servers_revise after insert or delete or update of updated_at on mail_servers for each row execute function mail_servers_revise()`.execute(db);
      } else {
        await sql`create trigger mail_servers_revise_insert after insert on mail_servers begin update mail_server_revisions set n = n + 1 where direction = new.direction; end`.execute(db);
        await sql`create trigger mail_servers_revise_update after update of updated_at on mail_servers begin update mail_server_revisions set n = n + 1 where direction in (old.direction, new.direction); end`.execute(db);
        await sql`create trigger mail_servers_revise_delete after delete on mail_servers begin update mail_server_revisions set n = n + 1 where direction = old.direction; end`.execute(db);
      }
      await db.schema.dropIndex('mail_servers_direction_updated').execute();
    },
  },
});

/** Every migration's name, in order (what a migrated database lists in kysely_migration). */
export const MIGRATION_NAMES: readonly string[] = Object.keys(migrations('postgres'));

export async function migrateToLatest(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const provider: MigrationProvider = { getMigrations: async () => migrations(dialect) };
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    // The cause keeps the driver's code: a connection lost mid-migration is recognised as such.
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${String((error as Error)?.message ?? error)}`, { cause: error });
  }
}

/** Brings the schema to the named migration and no further: how tests build a database as an older release left it. */
export async function migrateTo(db: Kysely<any>, dialect: Dialect, name: string): Promise<void> {
  const provider: MigrationProvider = { getMigrations: async () => migrations(dialect) };
  const { error } = await new Migrator({ db, provider }).migrateTo(name);
  if (error) throw error;
}
