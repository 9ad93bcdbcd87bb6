import type { FastifyInstance } from 'fastify';
import type { Mailroom } from '../../mailroom.ts';
import { OAUTH_PROVIDERS } from '../../oauth/oauth-providers.ts';
import { LINK_STATE_PREFIX } from '../../connect/connect-link-service.ts';
import { sendConnectOutcome } from './connect-link-routes.ts';

const formPath = (direction: 'outgoing' | 'incoming') =>
  direction === 'incoming' ? '/settings/technical/incoming-mail-servers' : '/settings/technical/mail-servers';

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function oauthRoutes(app: FastifyInstance, mr: Mailroom): void {
  for (const provider of OAUTH_PROVIDERS) {
    app.get(`/oauth2/${provider.id}/callback`, async (req, reply) => {
      const url = new URL(req.url, mr.config.baseUrl);
      // A person who opened a connect link: no Mailroom account, the state names the link.
      if (url.searchParams.get('state')?.startsWith(LINK_STATE_PREFIX)) {
        const outcome = await mr.connectLinks.callback(url.searchParams, provider);
        if (outcome.kind === 'redirect' && outcome.result) {
          const r = outcome.result;
          req.log.info({ event: `connect_link.${r.status}`, provider: provider.id, owner: r.owner, ...(r.status === 'connected' && { mailServerId: r.serverId, account: r.mailbox }), ...(r.status === 'error' && { code: r.error }) }, 'connect link finished');
          await mr.audit.record('connect_link', `connect_link.${r.status}`, { type: 'owner', id: r.owner }, r.status === 'connected' ? { mailServerId: r.serverId, account: r.mailbox } : {});
        } else if (outcome.kind === 'page') {
          req.log.warn({ event: 'connect_link.refused', provider: provider.id, status: outcome.status }, 'connect link sign-in refused');
        }
        return sendConnectOutcome(reply, outcome);
      }
      if (!req.admin) {
        // The state stays valid for 10 minutes: log in and come straight back here to finish.
        return reply.redirect(`/login?next=${encodeURIComponent(url.pathname + url.search)}`);
      }
      const outcome = await mr.connect.callback(url.searchParams, req.admin.id, provider);
      const log = { event: `oauth.${outcome.kind}`, adminId: req.admin.id, provider: provider.id };
      if (outcome.kind === 'connected') {
        req.log.info({ ...log, mailServerId: outcome.mailServerId, account: outcome.account }, `${provider.id} account connected`);
        await mr.audit.record(`admin:${req.admin.id}`, 'oauth.connected', { type: 'mail_server', id: outcome.mailServerId }, { account: outcome.account });
        return reply.redirect(`${formPath(outcome.direction)}/${outcome.mailServerId}?oauth=connected`);
      }
      if (outcome.kind === 'admin_consent') {
        req.log.info({ ...log, mailServerId: outcome.mailServerId }, 'admin consent granted');
        await mr.audit.record(`admin:${req.admin.id}`, 'oauth.admin_consent', { type: 'mail_server', id: outcome.mailServerId });
        return reply.redirect(`${formPath(outcome.direction)}/${outcome.mailServerId}?oauth=admin_consent`);
      }
      if (outcome.kind === 'failed') {
        await mr.audit.record(`admin:${req.admin.id}`, 'oauth.failed', { type: 'mail_server', id: outcome.mailServerId }, { code: outcome.error.code });
        req.log.warn({ ...log, mailServerId: outcome.mailServerId, code: outcome.error.code }, `${provider.id} connection failed`);
        return reply.redirect(`${formPath(outcome.direction)}/${outcome.mailServerId}?oauth=error`);
      }
      req.log.warn(log, 'oauth callback rejected');
      return reply
        .code(400)
        .type('text/html; charset=utf-8')
        .send(
          `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Connection not completed — Mailroom</title></head>` +
            `<body style="font-family:system-ui;max-width:40rem;margin:4rem auto"><h1>Connection not completed</h1>` +
            `<p>${escape(outcome.message)}</p><p>${escape(outcome.fix)}</p>` +
            `<p><a href="/settings/technical/mail-servers">Back to Mail Servers</a></p></body></html>`,
        );
    });
  }
}
