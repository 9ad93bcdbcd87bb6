import cookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MailroomError } from '../errors/errors.ts';
import type { Mailroom } from '../mailroom.ts';
import { ApiDoc } from './openapi.ts';
import { healthRoutes } from './routes/health-routes.ts';
import { apiKeyRoutes } from './routes/api-key-routes.ts';
import { healthPageRoutes } from './routes/health-page-routes.ts';
import { inboundRoutes } from './routes/inbound-routes.ts';
import { mailServerRoutes } from './routes/mail-server-routes.ts';
import { messageRoutes } from './routes/message-routes.ts';
import { oauthRoutes } from './routes/oauth-routes.ts';
import { sessionRoutes } from './routes/session-routes.ts';
import { registerSessionAuth } from './session-auth.ts';

export const WEB_DIST = fileURLToPath(new URL('../../web/dist/', import.meta.url));

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "form-action 'self'",
  "base-uri 'none'",
].join('; ');

export async function buildApp(mr: Mailroom, opts: { webDist?: string } = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: mr.logger as FastifyBaseLogger,
    trustProxy: mr.config.baseUrl.protocol === 'https:',
    bodyLimit: 1024 * 1024,
  });
  const doc = new ApiDoc();

  await app.register(cookie);
  registerSessionAuth(app, mr);

  app.addHook('onSend', async (_req, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    // The OAuth callback URL carries the authorization code: never leak it in a Referer.
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-frame-options', 'DENY');
    reply.header('content-security-policy', CSP);
  });

  app.setErrorHandler((err: FastifyError | MailroomError, req, reply) => {
    if (err instanceof MailroomError) {
      if (err.statusCode >= 500) req.log.error({ err, code: err.code }, err.message);
      return reply.code(err.statusCode).send({ error: err.toJSON() });
    }
    const status = err.statusCode ?? 500;
    if (status < 500) {
      // Fastify's own 4xx (bad JSON, wrong content type, body too large).
      const message =
        err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? 'Send the request body as JSON (Content-Type: application/json).'
          : err.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
            ? 'The request body is too large.'
            : err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY'
              ? 'The request body is empty; send a JSON object.'
              : `The request body is not valid JSON: ${err.message}`;
      return reply.code(status).send({ error: { code: 'MR_VALIDATION', message, field: 'body' } });
    }
    req.log.error({ err }, 'unhandled error');
    return reply.code(500).send({ error: { code: 'MR_INTERNAL', message: 'Something went wrong on the server. The details are in the server log.' } });
  });

  sessionRoutes(app, mr, doc);
  mailServerRoutes(app, mr, doc);
  messageRoutes(app, mr, doc);
  apiKeyRoutes(app, mr, doc);
  inboundRoutes(app, mr, doc);
  healthPageRoutes(app, mr, doc);
  oauthRoutes(app, mr);
  healthRoutes(app, mr);
  app.get('/api/openapi.json', async () => doc.document(mr.config.baseUrl.href));

  const webDist = opts.webDist ?? WEB_DIST;
  const hasUi = existsSync(`${webDist}/index.html`);
  if (hasUi) {
    await app.register(fastifyStatic, { root: webDist, wildcard: false, index: false });
  }
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!;
    if (req.method !== 'GET' || path.startsWith('/api/') || path.startsWith('/oauth2/')) {
      return reply.code(404).send({ error: { code: 'MR_NOT_FOUND', message: `No route for ${req.method} ${path}.` } });
    }
    if (!hasUi) {
      return reply.code(503).type('text/plain').send('The web UI is not built. Run: npm run build:web');
    }
    // Client-side routes (/login, /settings/...) all load the single-page app.
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').sendFile('index.html');
  });

  return app;
}
