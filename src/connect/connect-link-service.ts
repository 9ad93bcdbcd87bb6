import { createHash, randomBytes, randomUUID } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import { z } from 'zod';
import { type Config, type ConnectConfig, returnUrlAllowed } from '../config/config.ts';
import { diagnose } from '../diagnose/diagnose.ts';
import type { Evidence } from '../diagnose/evidence.ts';
import { isMailroomError, MailroomError, validationError } from '../errors/errors.ts';
import { parseInput } from '../errors/parse-input.ts';
import { connectLabel, type OAuthProvider } from '../oauth/oauth-provider.ts';
import { oauthProviderOf } from '../oauth/oauth-providers.ts';
import { appFor, registrationOf, tokenAad, type TokenManager } from '../oauth/token-manager.ts';
import type { Sealer } from '../secrets/sealer.ts';
import {
  type ConnectLinkRecord,
  type ConnectPurpose,
  consumeConnectLink,
  deleteStaleConnectLinks,
  findConnectLinkByState,
  findConnectLinkByToken,
  insertConnectLink,
  setConnectLinkResult,
  setConnectLinkState,
} from '../storage/connect-link-store.ts';
import type { Db } from '../storage/database.ts';
import {
  findIncomingUsing,
  findMailServer,
  insertMailServer,
  listOwnedServers,
  type MailServerRecord,
  replaceToken,
  updateMailServer,
} from '../storage/mail-server-store.ts';
import { type ConnectResult, RESULT_PARAMS, signedResultUrl } from './connect-result.ts';

/** The sign-in a click starts must come back within this (as for an admin's Connect). */
const STATE_TTL_MS = 10 * 60_000;
export const LINK_DEFAULT_MINUTES = 24 * 60;
export const LINK_MAX_MINUTES = 7 * 24 * 60;
/** The state of a link's sign-in says so by its prefix: the callback needs no admin session for it. */
export const LINK_STATE_PREFIX = 'cl.';

const hash = (s: string) => createHash('sha256').update(s).digest('base64url');

export const createConnectLinkSchema = z.strictObject({
  purpose: z.enum(['connect', 'disconnect'], { error: 'purpose is connect (the default) or disconnect' }).optional(),
  templateServerId: z.string({ error: 'Give the id of an Outlook or Gmail outgoing server to copy' }).min(1).max(100).optional(),
  owner: z.string({ error: 'Give the owner: your application\'s id for the user' }).trim().min(1, { error: 'Give the owner: your application\'s id for the user' }).max(200, { error: 'The owner is at most 200 characters' }),
  loginHint: z.string().trim().toLowerCase().max(320).regex(/^[^\s@<>()",;:\\]+@[^\s@<>()",;:\\]+$/, { error: 'loginHint is one email address, e.g. ann@contoso.com' }).optional(),
  purposes: z
    .array(z.enum(['send', 'receive'], { error: 'Each purpose is send or receive' }), { error: 'purposes is a list: ["send"], ["receive"] or ["send", "receive"]' })
    .min(1, { error: 'Choose send, receive or both' })
    .max(2)
    .optional(),
  returnUrl: z.string({ error: 'Give the returnUrl the person comes back to' }).max(2000, { error: 'The returnUrl is at most 2,000 characters' }),
  expiresInMinutes: z
    .number({ error: `expiresInMinutes is a whole number from 5 to ${LINK_MAX_MINUTES}` })
    .int({ error: `expiresInMinutes is a whole number from 5 to ${LINK_MAX_MINUTES}` })
    .min(5, { error: `expiresInMinutes is a whole number from 5 to ${LINK_MAX_MINUTES}` })
    .max(LINK_MAX_MINUTES, { error: `expiresInMinutes is at most ${LINK_MAX_MINUTES} (7 days)` })
    .optional(),
});

export const createMailboxSchema = z.strictObject({
  templateServerId: z.string({ error: 'Give the id of an Outlook server with application access' }).min(1).max(100),
  owner: createConnectLinkSchema.shape.owner,
  mailbox: z.string({ error: 'Give the mailbox address, e.g. ann@contoso.com' }).trim().toLowerCase().max(320).regex(/^[^\s@<>()",;:\\]+@[^\s@<>()",;:\\]+\.[a-z0-9-]{2,63}$/i, { error: 'Give one mailbox address, e.g. ann@contoso.com' }),
  purposes: z.array(z.enum(['send', 'receive'], { error: 'Each purpose is send or receive' }), { error: 'purposes is a list: ["send"], ["receive"] or both' }).min(1, { error: 'Choose send, receive or both' }).max(2),
});

/** What the public page shows; the route renders it (connect-page.ts). */
export interface ConnectPage {
  kind: 'page';
  status: number;
  title: string;
  lines: string[];
  /** What will be granted, one line each (the connect page). */
  grants?: string[];
  /** A form posting to Mailroom, whose answer redirects to the provider (CSP form-action). */
  button?: { action: string; label: string; redirectsTo: string[] };
  /** Back to the application, with the signed error when there is one. */
  back?: { href: string; label: string };
}

/** A redirect to the provider's sign-in (no result yet), or to the return URL with the signed result. */
export type ConnectOutcome = ConnectPage | { kind: 'redirect'; url: string; result?: ConnectResult };

interface Deps {
  db: Db;
  sealer: Sealer;
  config: Config;
  tokens: TokenManager;
  now?: () => Date;
  /** Deletes a server and revokes its grant where the provider can (MailServerService.remove). */
  removeServer: (s: MailServerRecord) => Promise<unknown>;
}

/**
 * Connect links: an ERP asks for a link for one of its users, the person opens it without a Mailroom
 * account, signs in with the template's app registration, and comes back through the provider's
 * callback; Mailroom makes that owner's mailbox and sends the person on to the ERP with a signed result.
 */
export class ConnectLinkService {
  constructor(private readonly deps: Deps) {}

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  private settings(): ConnectConfig {
    const c = this.deps.config.connect;
    if (!c) {
      throw new MailroomError('MR_CONNECT_NOT_CONFIGURED', 'Connect links are off: CONNECT_RETURN_URLS is not set.', {
        fix: 'Set CONNECT_RETURN_URLS (the URLs people may be sent back to) and CONNECT_RESULT_SECRET, then restart Mailroom.',
      });
    }
    return c;
  }

  async create(body: unknown, createdBy: string | null): Promise<{ id: string; url: string; expiresAt: string }> {
    const connect = this.settings();
    const input = parseInput(createConnectLinkSchema, body);
    const action = input.purpose ?? 'connect';
    const fields: Record<string, string> = {};
    let returnUrl: URL | undefined;
    try {
      returnUrl = new URL(input.returnUrl);
    } catch {
      fields.returnUrl = 'Give an absolute URL such as https://erp.example.com/mail/connected';
    }
    if (returnUrl) {
      if (!returnUrlAllowed(connect, returnUrl)) fields.returnUrl = `This URL is not one of CONNECT_RETURN_URLS (${connect.returnUrls.map((u) => u.href).join(', ')})`;
      else if (returnUrl.hash) fields.returnUrl = 'The returnUrl cannot have a #fragment';
      else {
        const taken = RESULT_PARAMS.filter((p) => returnUrl!.searchParams.has(p));
        if (taken.length) fields.returnUrl = `The returnUrl's query cannot use ${taken.join(', ')}: Mailroom adds the result under these names`;
      }
    }
    if (action === 'connect') {
      if (!input.templateServerId) fields.templateServerId = 'Give the id of an Outlook or Gmail outgoing server to copy';
      else {
        const t = await findMailServer(this.deps.db, input.templateServerId);
        if (!t || t.direction !== 'outgoing') fields.templateServerId = 'No outgoing mail server with this id';
        else if (!oauthProviderOf(t)) fields.templateServerId = 'The template must authenticate with Outlook OAuth or Gmail OAuth: people connect by signing in';
        else if (t.access === 'application') fields.templateServerId = 'The template uses application access: add the mailbox with POST /api/v1/mailboxes, nobody needs to sign in';
        else {
          const r = await registrationOf(this.deps.db, t).catch(() => undefined);
          const credentialSet = r && (r.clientCredential === 'certificate' && oauthProviderOf(r)?.certificates ? r.certificate !== null : r.clientSecretSealed !== null);
          if (!credentialSet) fields.templateServerId = 'The template has no client secret or certificate: complete its app registration first';
        }
      }
      if (!input.purposes) fields.purposes = 'Choose send, receive or both';
    } else if (input.templateServerId || input.purposes || input.loginHint) {
      fields.purpose = 'A disconnect link names only the owner (and returnUrl, expiresInMinutes)';
    }
    if (Object.keys(fields).length) throw validationError(fields);

    const token = randomBytes(32).toString('base64url');
    const id = randomUUID();
    const now = this.now();
    const expiresAt = new Date(now.getTime() + (input.expiresInMinutes ?? LINK_DEFAULT_MINUTES) * 60_000).toISOString();
    await deleteStaleConnectLinks(this.deps.db, new Date(now.getTime() - 7 * 24 * 3600_000));
    await insertConnectLink(
      this.deps.db,
      {
        id,
        tokenHash: hash(token),
        action,
        templateServerId: action === 'connect' ? input.templateServerId! : null,
        owner: input.owner,
        loginHint: input.loginHint ?? null,
        purposes: action === 'connect' ? ([...new Set(input.purposes)] as ConnectPurpose[]) : [],
        returnUrl: returnUrl!.href,
        createdBy,
        expiresAt,
      },
      now,
    );
    return { id, url: `${this.deps.config.baseUrl.href.replace(/\/+$/, '')}/connect/${token}`, expiresAt };
  }

  private appName(template: MailServerRecord | undefined): string {
    return this.deps.config.connect?.appName ?? template?.name ?? 'Your company\'s application';
  }

  /** The page behind the link: what will be granted and the one button, or why the link no longer works. */
  async page(token: string): Promise<ConnectOutcome> {
    const found = await this.usable(token);
    if (found.kind !== 'ok') return found.page;
    const { link, template, provider } = found;
    const app = this.appName(template);
    if (link.action === 'disconnect') {
      const owned = await listOwnedServers(this.deps.db, link.owner, 'outgoing');
      return {
        kind: 'page',
        status: 200,
        title: 'Disconnect your mailbox',
        lines: owned.length
          ? [`${app} will stop sending and receiving mail as ${owned.map((s) => s.username).join(', ')}.`, 'Mailroom deletes the connection and, where the provider allows it, ends the permission you gave.']
          : [`${app} has no mailbox of yours connected.`],
        // The answer to the form is the redirect to the return URL (CSP form-action covers redirects).
        button: { action: `/connect/${token}/disconnect`, label: 'Disconnect my mailbox', redirectsTo: [new URL(link.returnUrl).origin] },
        back: { href: link.returnUrl, label: `Back to ${app}` },
      };
    }
    const grants = [
      ...(link.purposes.includes('send') ? [`Send mail as you from your ${provider!.accountName} mailbox`] : []),
      ...(link.purposes.includes('receive') ? [`Read the mail that arrives in your ${provider!.accountName} inbox and mark it read`] : []),
    ];
    return {
      kind: 'page',
      status: 200,
      title: `${connectLabel(provider!)} to ${app}`,
      lines: [
        `${app} asks to use your ${provider!.accountName} mailbox${link.loginHint ? ` ${link.loginHint}` : ''} through Mailroom.`,
        `You will sign in at ${provider!.id === 'outlook' ? 'Microsoft' : 'Google'}, which shows you the permissions again; Mailroom never sees your password.`,
      ],
      grants,
      button: { action: `/connect/${token}/start`, label: connectLabel(provider!), redirectsTo: [this.authorityOrigin(provider!)] },
    };
  }

  private authorityOrigin(provider: OAuthProvider): string {
    return new URL(provider.id === 'gmail' ? this.deps.config.google.authorityHost : this.deps.config.microsoftAuthorityHost).origin;
  }

  /** The button: a fresh sign-in (PKCE S256, state stored hashed) with the template's app registration. */
  async start(token: string): Promise<ConnectOutcome> {
    const found = await this.usable(token);
    if (found.kind !== 'ok') return found.page;
    const { link, template, provider } = found;
    if (link.action !== 'connect' || !template || !provider) return this.refusal(link, 'link_invalid', 'This link does not start a sign-in.', 400);
    const app = appFor(template, this.deps.config, this.deps.sealer, await registrationOf(this.deps.db, template));
    const state = `${LINK_STATE_PREFIX}${randomBytes(32).toString('base64url')}`;
    const nonce = randomBytes(16).toString('base64url');
    const codeVerifier = oauth.generateRandomCodeVerifier();
    const now = this.now();
    const stored = await setConnectLinkState(this.deps.db, link.id, {
      stateHash: hash(state),
      codeVerifierSealed: this.deps.sealer.seal(codeVerifier, `connect_link:${link.id}`),
      nonce,
      stateExpiresAt: new Date(now.getTime() + STATE_TTL_MS).toISOString(),
    });
    if (!stored) return this.spent(link, 'This link was already used.');
    const url = provider.buildAuthorizeUrl(
      { scopes: app.scopes, authorityHost: app.authorityHost, tenant: app.tenant, clientId: app.clientId, redirectUri: app.redirectUri },
      { state, nonce, codeChallenge: await oauth.calculatePKCECodeChallenge(codeVerifier), loginHint: link.loginHint ?? '' },
    );
    return { kind: 'redirect', url };
  }

  /** The owner's disconnect link: the owner's mailboxes are deleted (grant revoked where possible). */
  async disconnect(token: string): Promise<ConnectOutcome> {
    const found = await this.usable(token);
    if (found.kind !== 'ok') return found.page;
    const { link } = found;
    if (link.action !== 'disconnect') return this.refusal(link, 'link_invalid', 'This link connects a mailbox; it does not disconnect one.', 400);
    if (!(await consumeConnectLink(this.deps.db, link.id, this.now()))) return this.spent(link, 'This link was already used.');
    const owned = [...(await listOwnedServers(this.deps.db, link.owner, 'incoming')), ...(await listOwnedServers(this.deps.db, link.owner, 'outgoing'))];
    for (const s of owned) await this.deps.removeServer(s);
    return this.finish(link, { status: 'disconnected', owner: link.owner });
  }

  private async usable(token: string): Promise<{ kind: 'ok'; link: ConnectLinkRecord; template: MailServerRecord | undefined; provider: OAuthProvider | undefined } | { kind: 'refused'; page: ConnectPage }> {
    const link = /^[\w-]{43}$/.test(token) ? await findConnectLinkByToken(this.deps.db, hash(token)) : undefined;
    if (!link) {
      return { kind: 'refused', page: { kind: 'page', status: 404, title: 'This link is not valid', lines: ['Mailroom does not know this link: it may have been copied incompletely.', 'Ask the application that sent it for a new one.'] } };
    }
    if (link.usedAt) return { kind: 'refused', page: this.spent(link, 'This link was already used: each link connects a mailbox once.') };
    if (link.expiresAt <= this.now().toISOString()) return { kind: 'refused', page: this.refusal(link, 'link_expired', `This link expired on ${link.expiresAt.replace('T', ' at ').slice(0, 22)} UTC.`, 410) };
    const template = link.templateServerId ? await findMailServer(this.deps.db, link.templateServerId) : undefined;
    const provider = template && oauthProviderOf(template);
    if (link.action === 'connect' && (!template || !provider)) return { kind: 'refused', page: this.refusal(link, 'template_missing', 'The mailbox settings this link was made with no longer exist.', 410) };
    return { kind: 'ok', link, template, provider };
  }

  /** A clear page, with a way back to the application carrying the signed error. */
  private refusal(link: ConnectLinkRecord, error: string, message: string, status: number): ConnectPage {
    const ask = 'Ask the application for a new link.';
    const result: ConnectResult = { status: 'error', owner: link.owner, error, message };
    return {
      kind: 'page',
      status,
      title: 'Your mailbox was not connected',
      lines: [message, ...(['link_expired', 'template_missing'].includes(error) ? [ask] : [])],
      back: { href: signedResultUrl(link.returnUrl, result, this.settings().resultSecret, this.now()), label: 'Back to the application' },
    };
  }

  /**
   * A used link opened again (a reload, a second tab, a forwarded copy): the page says what the link
   * did, and the way back is the plain return URL. No new signed result: the application already had
   * the one the link ended with, and a fresh "link_used" error would contradict a mailbox it connected.
   */
  private spent(link: ConnectLinkRecord, message: string): ConnectPage {
    const r = link.result;
    const outcome =
      r?.status === 'connected' ? `It connected ${r.mailbox ?? 'the mailbox'}; nothing more to do.`
      : r?.status === 'disconnected' ? 'It disconnected the mailbox; nothing more to do.'
      : r?.status === 'error' ? `It ended without connecting the mailbox${r.message ? `: ${r.message}` : '.'} Ask the application for a new link.`
      : 'Ask the application for a new link if your mailbox is not connected.';
    return {
      kind: 'page',
      status: 410,
      title: r?.status === 'connected' || r?.status === 'disconnected' ? 'This link was already used' : 'Your mailbox was not connected',
      lines: [message, outcome],
      back: { href: link.returnUrl, label: 'Back to the application' },
    };
  }

  /** The end of a link: its outcome kept on the row, the person sent on with it signed (303). */
  private async finish(link: ConnectLinkRecord, result: ConnectResult): Promise<ConnectOutcome> {
    await setConnectLinkResult(this.deps.db, link.id, result);
    return { kind: 'redirect', url: signedResultUrl(link.returnUrl, result, this.settings().resultSecret, this.now()), result };
  }

  /** A failed sign-in: the link is spent, the person sees why and goes back with the signed error. */
  private async failed(link: ConnectLinkRecord, error: string, message: string, status = 400): Promise<ConnectOutcome> {
    await setConnectLinkResult(this.deps.db, link.id, { status: 'error', owner: link.owner, error, message });
    return this.refusal(link, error, message, status);
  }

  /**
   * `/oauth2/{provider}/callback` with a link's state: single use with the link (a replayed answer
   * finds it used), then the code exchange with the template's app, the account check, and the
   * owner's mailbox made or updated with a verified token.
   */
  async callback(params: URLSearchParams, via: OAuthProvider): Promise<ConnectOutcome> {
    const state = params.get('state') ?? '';
    const link = await findConnectLinkByState(this.deps.db, hash(state));
    if (!link) return { kind: 'page', status: 400, title: 'Your mailbox was not connected', lines: ['This sign-in answer does not belong to a link Mailroom knows.', 'Open the link you were given again.'] };
    const now = this.now();
    if (link.usedAt) return this.spent(link, 'This sign-in answer was already used (the page was reloaded or opened twice).');
    if (!link.stateExpiresAt || link.stateExpiresAt <= now.toISOString()) return this.refusal(link, 'sign_in_expired', 'The sign-in took longer than 10 minutes. Open the link again and click the button once more.', 400);
    if (!(await consumeConnectLink(this.deps.db, link.id, now))) return this.spent(link, 'This sign-in answer was already used.');
    const template = link.templateServerId ? await findMailServer(this.deps.db, link.templateServerId) : undefined;
    const provider = template && oauthProviderOf(template);
    if (!template || !provider) return this.failed(link, 'template_missing', 'The mailbox settings this link was made with no longer exist.', 410);
    if (provider !== via) return this.failed(link, 'provider_error', `This sign-in answer came from ${via.accountName}, but the link connects a ${provider.accountName} mailbox.`);

    const authError = provider.authorizeErrorEvidence(params);
    if (authError) {
      if (authError.error === 'access_denied') return this.failed(link, 'access_denied', `You cancelled the sign-in, so no mailbox was connected. Open the link again to ${connectLabel(provider).toLowerCase()}.`);
      return this.failed(link, 'provider_error', this.explain(authError));
    }
    let account: string | undefined;
    let tenantId: string | null = null;
    let tokens;
    try {
      const app = appFor(template, this.deps.config, this.deps.sealer, await registrationOf(this.deps.db, template));
      const codeVerifier = this.deps.sealer.open(link.codeVerifierSealed!, `connect_link:${link.id}`);
      const r = await provider.exchangeCode(app, params, { codeVerifier, nonce: link.nonce!, now });
      account = r.identity.account;
      tenantId = r.identity.tenantId;
      tokens = r.tokens;
    } catch (e) {
      if (!isMailroomError(e)) throw e;
      const ev = e.evidence as Evidence | undefined;
      return this.failed(link, 'provider_error', ev && 'kind' in ev && ev.kind === 'oauth' ? this.explain(ev) : e.message, 502);
    }
    if (!account) return this.failed(link, 'wrong_account', `${provider.accountName} did not say which mailbox signed in, so Mailroom cannot tell whose mailbox this is.`);
    if (link.loginHint && account !== link.loginHint) {
      return this.failed(link, 'wrong_account', `You signed in as ${account}, but this link is for ${link.loginHint}. Open the link again and sign in as ${link.loginHint}.`);
    }
    if (!tokens.refreshToken) return this.failed(link, 'no_refresh_token', `${provider.accountName} did not allow Mailroom to stay signed in (no refresh token). ${provider.noRefreshTokenFix}`);

    const outgoing = await this.upsertMailbox(template, link.owner, account, 'outgoing', undefined, now);
    await replaceToken(
      this.deps.db,
      outgoing.id,
      {
        status: 'valid',
        statusReason: null,
        account,
        tenantId,
        scope: tokens.scope ?? null,
        accessTokenSealed: this.deps.sealer.seal(tokens.accessToken, tokenAad(outgoing.id, 'access_token')),
        accessTokenExpiresAt: tokens.expiresAt.toISOString(),
        refreshTokenSealed: this.deps.sealer.seal(tokens.refreshToken, tokenAad(outgoing.id, 'refresh_token')),
        connectedAt: now.toISOString(),
        refreshedAt: now.toISOString(),
      },
      now,
    );
    // Token Valid is said only after a refresh with the copied app registration worked: the grant is
    // usable from here on, not just at this minute.
    try {
      await this.deps.tokens.getAccessToken(outgoing.id, { forceRefresh: true });
    } catch (e) {
      if (!isMailroomError(e)) throw e;
      return this.failed(link, 'token_invalid', `Signed in, but the first token renewal failed: ${e.message}`, 502);
    }
    const incoming = link.purposes.includes('receive') ? await this.upsertMailbox(template, link.owner, account, 'incoming', outgoing.id, now) : undefined;
    return this.finish(link, { status: 'connected', owner: link.owner, mailbox: account, serverId: outgoing.id, ...(incoming && { incomingServerId: incoming.id }) });
  }

  /**
   * `POST /api/v1/mailboxes`: an owner's mailbox in a tenant the template reaches with application
   * access (client credentials), so nobody signs in: the new servers reuse the template's connection,
   * which may act for any mailbox of its tenant.
   */
  async addApplicationMailbox(body: unknown): Promise<{ owner: string; mailbox: string; serverId: string | null; incomingServerId: string | null }> {
    const input = parseInput(createMailboxSchema, body);
    const template = await findMailServer(this.deps.db, input.templateServerId);
    if (!template || template.direction !== 'outgoing') throw validationError({ templateServerId: 'No outgoing mail server with this id' });
    if (template.access !== 'application') {
      throw new MailroomError('MR_UNPROCESSABLE', `The mail server "${template.name}" uses delegated access: each person must sign in themselves.`, {
        field: 'templateServerId',
        fields: { templateServerId: 'The template must use Access: Application (no user sign-in); for delegated templates send a connect link (POST /api/v1/connect-links)' },
        fix: 'Give a template with Access: Application, or create a connect link for this person.',
      });
    }
    const now = this.now();
    const outgoing = input.purposes.includes('send') ? await this.upsertMailbox(template, input.owner, input.mailbox, 'outgoing', template.id, now) : undefined;
    const incoming = input.purposes.includes('receive') ? await this.upsertMailbox(template, input.owner, input.mailbox, 'incoming', template.id, now) : undefined;
    return { owner: input.owner, mailbox: input.mailbox, serverId: outgoing?.id ?? null, incomingServerId: incoming?.id ?? null };
  }

  private explain(ev: Evidence): string {
    const d = diagnose(ev);
    return `${d.cause} ${d.fix}`.trim();
  }

  /**
   * The owner's mailbox for this address: the template's app registration, tenant, transport, limits
   * and hosts, under the owner's name. An incoming one reuses the outgoing one's connection (one
   * consent covers both) and takes its IMAP settings from the template's own incoming server if it has
   * one, else the provider's.
   */
  private async upsertMailbox(template: MailServerRecord, owner: string, account: string, direction: 'outgoing' | 'incoming', tokenSourceId: string | undefined, now: Date): Promise<MailServerRecord> {
    const provider = oauthProviderOf(template)!;
    const existing = (await listOwnedServers(this.deps.db, owner, direction)).find((s) => s.username === account);
    const id = existing?.id ?? randomUUID();
    let imap = null;
    let transport = template.transport;
    if (direction === 'incoming') {
      const model = await findIncomingUsing(this.deps.db, template.id);
      const host = provider.hosts.imap;
      imap = model?.imap ?? { host: host.host, port: host.port, security: host.security, folder: 'INBOX', afterFetch: 'mark_read' as const, moveToFolder: null, intervalMinutes: 5 };
      transport = template.transport === 'graph' ? 'graph' : 'imap';
    }
    const values = {
      name: `${account} (${owner})`,
      authType: template.authType,
      username: account,
      clientId: template.clientId,
      // No copy of a credential: the outgoing server signs in with the template's registration (a
      // secret renewed or a certificate rolled there serves every mailbox made from it); the incoming
      // one reuses the outgoing server's connection.
      clientSecretSealed: null,
      appSourceId: direction === 'outgoing' && !tokenSourceId ? (template.appSourceId ?? template.id) : null,
      access: template.access,
      clientCredential: template.clientCredential,
      clientSecretExpiresAt: null,
      tenant: template.tenant,
      smtpHost: template.smtpHost,
      smtpPort: template.smtpPort,
      smtpSecurity: template.smtpSecurity,
      priority: template.priority,
      fromFilter: null,
      active: true,
      lastError: null,
      direction,
      imap,
      transport,
      limits: template.limits,
      tokenSourceId: tokenSourceId ?? null,
      owner,
    };
    if (existing) return (await updateMailServer(this.deps.db, id, values, now))!;
    return insertMailServer(this.deps.db, id, values, now);
  }
}
