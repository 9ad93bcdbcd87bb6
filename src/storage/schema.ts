import type { Generated } from 'kysely';

/** Times are ISO-8601 UTC strings (Date#toISOString): they sort as text on every dialect. */
export interface AdminTable {
  id: string;
  email: string;
  password_hash: string;
  created_at: string;
}

export interface SessionTable {
  id_hash: string;
  admin_id: string;
  csrf_token: string;
  created_at: string;
  expires_at: string;
}

export interface SetupTokenTable {
  token_hash: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
}

export interface MailServerTable {
  id: string;
  name: string;
  auth_type: string;
  username: string;
  client_id: string;
  client_secret_sealed: string | null;
  password_sealed: string | null;
  client_secret_expires_at: string | null;
  tenant: string;
  smtp_host: string;
  smtp_port: number;
  smtp_security: string;
  priority: number;
  from_filter: string | null;
  active: number;
  /** JSON of the last connect/refresh failure shown on the form, null once resolved. */
  last_error: string | null;
  created_at: string;
  updated_at: string;
  /** 'outgoing' (SMTP) or 'incoming' (IMAP); incoming rows leave the SMTP columns at neutral values. */
  direction: string;
  imap_host: string | null;
  imap_port: number | null;
  imap_security: string | null;
  folder: string | null;
  after_fetch: string | null;
  move_to_folder: string | null;
  interval_minutes: number | null;
  /** Another server whose OAuth connection this one uses (one consent covers IMAP and SMTP). */
  token_source_id: string | null;
  app_source_id?: string | null;
  last_fetch_at: string | null;
  secret_alert_level: number | null;
  reconnect_alerted_at: string | null;
  allow_account_mismatch: number;
  login_ok_at: string | null;
  transport: string | null;
  /** Sending limits of the mailbox (null: none known); see servers/send-limits.ts. */
  max_connections: number | null;
  messages_per_minute: number | null;
  recipients_per_day: number | null;
  recipients_per_message: number | null;
  /** Outgoing: 'refuse' answers 422 for a suppressed recipient; null or 'warn' sends with a warning. */
  suppression_policy: string | null;
  /** Incoming: 1 hands recognised reports to the ERP as new mail too. */
  deliver_reports: number | null;
  /** 'secret' (null) or 'certificate': what token requests authenticate with. */
  client_credential: string | null;
  /** JSON of the certificate in use (public part, thumbprints, sealed private key), or null. */
  certificate: string | null;
  /** JSON of a rolled certificate waiting to be proven by a token request, or null. */
  pending_certificate: string | null;
  /** The certificate-expiry warning level last sent (as secret_alert_level for the secret). */
  certificate_alert_level: number | null;
  /** Outlook OAuth: 'delegated' (a person's sign-in) or 'application' (client credentials, no sign-in). */
  access: string;
  /** The ERP user whose personal mailbox this is; null: shared. */
  owner: string | null;
}

export interface ConnectLinkTable {
  id: string;
  token_hash: string;
  /** 'connect' or 'disconnect'. */
  action: string;
  template_server_id: string | null;
  owner: string;
  login_hint: string | null;
  /** JSON list: 'send', 'receive'. */
  purposes: string;
  return_url: string;
  state_hash: string | null;
  code_verifier_sealed: string | null;
  nonce: string | null;
  state_expires_at: string | null;
  created_by: string | null;
  created_at: string;
  expires_at: string;
  used_at: string | null;
  /** JSON of the outcome once used (status, serverId or error code). */
  result: string | null;
}

/** A client-credentials access token shared by every server of one app, tenant and resource. */
export interface AppTokenTable {
  cache_key: string;
  access_token_sealed: string | null;
  expires_at: string | null;
  /** JSON array: the `roles` claim of the token (application permissions granted by admin consent). */
  roles: string | null;
  tenant_id: string | null;
  app_id: string | null;
  /** The service principal's object id (`oid`): what Exchange's New-ServicePrincipal wants. */
  object_id: string | null;
  version: Generated<number>;
  requested_at: string | null;
  updated_at: string;
}

export interface AuditEventTable {
  id: string;
  at: string;
  /** admin:<id>, apikey:<id>, command line (<machine user>) or system. */
  actor: string;
  action: string;
  target_type: string | null;
  target_id: string | null;
  details: string | null;
}

export interface InboundFolderStateTable {
  mail_server_id: string;
  folder: string;
  uid_validity: string;
  last_uid: number;
  updated_at: string;
  /** Graph: where the next delta query starts (an @odata.nextLink or @odata.deltaLink). */
  delta_link: string | null;
}

export interface InboundMessageTable {
  seq: Generated<number>;
  id: string;
  mail_server_id: string;
  folder: string;
  uid_validity: string;
  uid: number;
  /** Message-ID, or a hash of the raw message when it has none: one import per server. */
  dedupe_key: string;
  message_id: string | null;
  from_addr: string;
  to_json: string;
  cc_json: string;
  subject: string;
  date: string | null;
  in_reply_to: string | null;
  references_json: string;
  text_body: string | null;
  html_body: string | null;
  attachments_meta: string;
  size_bytes: number;
  /** File under the data directory; '' when the raw message is in inbound_raw. */
  raw_path: string;
  outbox_message_id: string | null;
  received_at: string;
  /** 1 until the after-fetch action (mark as read, move) has been applied in the mailbox. */
  after_fetch_pending: number;
  /** Graph: the message's immutable id in the mailbox. */
  remote_id: string | null;
  /** Why the message could not be read whole (too_large, too_many_parts, too_deep, malformed), or null. */
  problem_code: string | null;
  problem_message: string | null;
  /** 1 when text_body / html_body are only the beginning of the message's text / HTML. */
  text_truncated: Generated<number>;
  html_truncated: Generated<number>;
  /** 0 when the raw message was not kept (larger than INBOUND_MAX_MESSAGE_MB). */
  raw_kept: Generated<number>;
  /** 1: a recognised report or auto-reply, an event on the outgoing message rather than new mail. */
  report_only: Generated<number>;
}

export interface InboundRawTable {
  inbound_message_id: string;
  mime: Buffer;
}

export interface WebhookTable {
  id: string;
  url: string;
  description: string | null;
  secret_sealed: string;
  active: number;
  created_at: string;
  updated_at: string;
}

export interface WebhookDeliveryTable {
  id: string;
  webhook_id: string;
  inbound_message_id: string;
  state: string;
  attempts: number;
  next_attempt_at: string;
  lease_until: string | null;
  last_status: number | null;
  last_error: string | null;
  delivered_at: string | null;
  created_at: string;
  updated_at: string;
  event: string | null;
  report_id: string | null;
  redelivered_after: Generated<number>;
}

export interface WebhookDeliveryAttemptTable {
  delivery_id: string;
  attempt: number;
  redelivery: number;
  outcome: string;
  status: number | null;
  error: string | null;
  attempted_at: string;
}

export interface DeliveryReportTable {
  id: string;
  report_key: string;
  inbound_message_id: string;
  outbox_message_id: string | null;
  kind: string;
  format: string;
  reporting_mta: string | null;
  report_json: string;
  reported_at: string;
}

export interface DeliveryReportRecipientTable {
  report_id: string;
  outbox_message_id: string | null;
  address: string;
  state: string;
  action: string | null;
  status: string | null;
  diagnostic: string | null;
  category: string | null;
  reported_at: string;
}

export interface SuppressionTable {
  address: string;
  reason: string;
  report_id: string | null;
  outbox_message_id: string | null;
  status: string | null;
  diagnostic: string | null;
  category: string | null;
  bounces: number;
  created_at: string;
}

export interface OAuthTokenTable {
  mail_server_id: string;
  status: string;
  status_reason: string | null;
  account: string | null;
  tenant_id: string | null;
  scope: string | null;
  access_token_sealed: string | null;
  access_token_expires_at: string | null;
  refresh_token_sealed: string | null;
  /** Bumped on every token write: a refresh only commits if nobody else refreshed meanwhile. */
  version: Generated<number>;
  connected_at: string | null;
  refreshed_at: string | null;
  updated_at: string;
}

export interface OAuthStateTable {
  state_hash: string;
  mail_server_id: string;
  admin_id: string;
  code_verifier_sealed: string;
  nonce: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
}

export interface ApiKeyTable {
  id: string;
  name: string;
  /** Before 0016; kept for older instances during an upgrade (see legacyScope). */
  scope: string;
  /** JSON list of scopes (0016). */
  scopes: string | null;
  /** JSON list of outgoing server ids, or null for every server. */
  mail_server_ids: string | null;
  /** JSON list of incoming server ids, or null for every server. */
  incoming_server_ids: string | null;
  prefix: string;
  key_hash: string;
  created_by: string | null;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface OutboxMessageTable {
  id: string;
  state: string;
  from_addr: string;
  to_json: string;
  cc_json: string;
  bcc_json: string;
  reply_to: string | null;
  subject: string;
  mail_server_id: string | null;
  /** RFC 5322 Message-ID, fixed at enqueue so a re-send after a crash carries the same id. */
  message_id: string;
  size_bytes: number;
  /** JSON: text, html, headers, attachments (base64). */
  payload: string;
  /** JSON: [{filename, contentType, size}], so lists never parse the payload. */
  attachments_meta: string;
  idempotency_key: string | null;
  request_hash: string | null;
  api_key_id: string | null;
  attempts: number;
  max_attempts: number;
  next_attempt_at: string;
  /** Start of the current delivery run (enqueue or manual retry): the age limit counts from here. */
  queued_at: string;
  lease_owner: string | null;
  lease_until: string | null;
  held_at: string | null;
  last_error: string | null;
  smtp_response: string | null;
  sent_at: string | null;
  created_at: string;
  updated_at: string;
  /** to + cc + bcc: what the mailbox's daily recipient limit counts, summed without parsing JSON. */
  recipient_count: number;
  /** Held for a sending quota: back in the queue at this time by itself. Null for other holds. */
  held_until: string | null;
  /** The message as received over SMTP (Bcc removed); null when built from the payload's fields. */
  raw_mime: Buffer | null;
  /** JSON: {protocol: 'smtp', clientAddress, apiKeyName}; null for the REST API. */
  received_via: string | null;
  /** After the 250: bounced, delayed, auto_replied or delivered, from the reports about it (0017). */
  outcome: string | null;
}

export interface AttemptLimitTable {
  key: string;
  window_started_at: string;
  attempts: number;
}

export interface InboundRawChunkTable {
  inbound_message_id: string;
  /** 0, 1, 2…: the message is the chunks in this order. */
  seq: number;
  data: Buffer;
}

export interface ClusterSettingTable {
  name: string;
  value: string;
  created_at: string;
}

export interface LeaseTable {
  /** What is held, e.g. `mailbox:<server id>` or `lifecycle`. */
  name: string;
  /** The instance holding it (host, pid and a random part). */
  holder: string;
  acquired_at: string;
  renewed_at: string;
  expires_at: string;
}

export interface GraphSubscriptionTable {
  /** The mailbox and folder subscribed to (`<address>|<folder>`): one subscription each, cluster-wide. */
  resource_key: string;
  mail_server_id: string;
  /** Graph's subscription id; null while none is active (push off, `reason` says why). */
  subscription_id: string | null;
  /** SHA-256 of the clientState sent at creation: notifications are checked against it, the secret itself is not kept. */
  client_state_hash: string | null;
  expires_at: string | null;
  /** 'active' or 'off'. */
  state: string;
  reason: string | null;
  last_notification_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface Database {
  app_tokens: AppTokenTable;
  graph_subscriptions: GraphSubscriptionTable;
  cluster_settings: ClusterSettingTable;
  leases: LeaseTable;
  attempt_limits: AttemptLimitTable;
  audit_events: AuditEventTable;
  inbound_folder_states: InboundFolderStateTable;
  inbound_messages: InboundMessageTable;
  inbound_raw: InboundRawTable;
  inbound_raw_chunks: InboundRawChunkTable;
  webhooks: WebhookTable;
  webhook_deliveries: WebhookDeliveryTable;
  webhook_delivery_attempts: WebhookDeliveryAttemptTable;
  api_keys: ApiKeyTable;
  outbox_messages: OutboxMessageTable;
  admins: AdminTable;
  sessions: SessionTable;
  setup_tokens: SetupTokenTable;
  mail_servers: MailServerTable;
  /** Moved by triggers on mail_servers (migration 0025): what a cached server list compares (mailServersVersion). */
  mail_server_revisions: { direction: string; n: number | string };
  oauth_tokens: OAuthTokenTable;
  oauth_states: OAuthStateTable;
  connect_links: ConnectLinkTable;
  delivery_reports: DeliveryReportTable;
  delivery_report_recipients: DeliveryReportRecipientTable;
  suppressions: SuppressionTable;
}
