import cookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { quietLevel } from '../logger.ts';
import type { Mailroom } from '../mailroom.ts';
import { limitConnectionsPerAddress } from './connection-limits.ts';
import { connectLinkRoutes } from './routes/connect-link-routes.ts';
import { assertDepth, errorBody, handleClientError, handleError, SECURITY_HEADERS } from './http-errors.ts';
import { ApiDoc } from './openapi.ts';
import { healthRoutes } from './routes/health-routes.ts';
import { apiKeyRoutes } from './routes/api-key-routes.ts';
import { healthPageRoutes } from './routes/health-page-routes.ts';
import { bounceRoutes } from './routes/bounce-routes.ts';
import { inboundRoutes } from './routes/inbound-routes.ts';
import { graphNotificationRoutes } from './routes/graph-notification-routes.ts';
import { certificateRoutes } from './routes/certificate-routes.ts';
import { serverActionRoutes } from './routes/server-action-routes.ts';
import { mailServerRoutes } from './routes/mail-server-routes.ts';
import { messageRoutes } from './routes/message-routes.ts';
import { oauthRoutes } from './routes/oauth-routes.ts';
import { sessionRoutes } from './routes/session-routes.ts';
import { registerSessionAuth } from './session-auth.ts';

export const WEB_DIST = fileURLToPath(new URL('../../web/dist/', import.meta.url));

export async function buildApp(mr: Mailroom, opts: { webDist?: string } = {}): Promise<FastifyInstance> {
  const { http } = mr.config;
  const trust = http.trustProxy;
  const app = Fastify({
    loggerInstance: mr.logger as FastifyBaseLogger,
    // Forwarding headers only from the configured proxies, whatever BASE_URL's scheme.
    // A hop count trusts that many proxies nearest to us, as proxy-addr does.
    trustProxy: typeof trust === 'number' ? (_addr: string, hop: number) => hop < trust : trust === false ? false : [...trust],
    bodyLimit: 1024 * 1024,
    // Slow clients: headers must arrive within headersTimeout, the whole request within
    // requestTimeout; Node checks both every second instead of every 30 s.
    http: { headersTimeout: http.headersTimeoutMs, connectionsCheckingInterval: 1000 },
    requestTimeout: http.requestTimeoutMs,
    keepAliveTimeout: http.keepAliveTimeoutMs,
    connectionTimeout: http.requestTimeoutMs,
    clientErrorHandler: handleClientError,
    // Bad URL encoding and over-long path parameters are answered before any hook runs.
    frameworkErrors: (err, req, reply) => handleError(err, req, reply.headers({ ...SECURITY_HEADERS, 'cache-control': 'no-store' })),
  });
  limitConnectionsPerAddress(app.server, http);
  // Reads change nothing and the UI repeats them every few seconds (Mail Health, lists and details
  // while something is pending), as do load balancers (/healthz, /readyz) and Prometheus: their
  // access lines go to debug so that info tells what happened. Changes stay at info. GET /oauth2/…
  // (the sign-in's return) and the UI's pages are not polls.
  const quiet = quietLevel(mr.config.logLevel) as 'warn';
  app.addHook('onRoute', (route) => {
    const methods = [route.method].flat();
    const reads = methods.every((m) => m === 'GET' || m === 'HEAD');
    if (reads && !route.logLevel && (route.url.startsWith('/api/') || ['/healthz', '/readyz', '/metrics'].includes(route.url))) route.logLevel = quiet;
  });
  const doc = new ApiDoc();

  await app.register(cookie);
  registerSessionAuth(app, mr);

  const hsts = mr.config.baseUrl.protocol === 'https:';
  app.addHook('onSend', async (req, reply) => {
    // A route's own policy stands (the public connect page has a stricter one).
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) if (!reply.hasHeader(k)) reply.header(k, v);
    if (hsts) reply.header('strict-transport-security', 'max-age=31536000');
    // API answers carry API keys, webhook secrets and CSRF tokens: no cache may keep any of them.
    if (req.url.startsWith('/api/') || req.url.startsWith('/oauth2/') || req.url.startsWith('/metrics')) reply.header('cache-control', 'no-store');
  });

  // Before any route walks the body (idempotency hashing, validation), bound how deep it nests.
  app.addHook('preValidation', async (req) => assertDepth(req.body, 32));

  app.setErrorHandler(handleError);

  sessionRoutes(app, mr, doc);
  mailServerRoutes(app, mr, doc);
  serverActionRoutes(app, mr, doc, 'outgoing');
  certificateRoutes(app, mr, doc, 'outgoing');
  messageRoutes(app, mr, doc);
  apiKeyRoutes(app, mr, doc);
  inboundRoutes(app, mr, doc);
  serverActionRoutes(app, mr, doc, 'incoming');
  certificateRoutes(app, mr, doc, 'incoming');
  bounceRoutes(app, mr, doc);
  healthPageRoutes(app, mr, doc);
  graphNotificationRoutes(app, mr, doc);
  connectLinkRoutes(app, mr, doc);
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
      return reply.code(404).send(errorBody('MR_NOT_FOUND', `No route for ${req.method} ${path}.`));
    }
    if (!hasUi) {
      return reply.code(503).type('text/plain').send('The web UI is not built. Run: npm run build:web');
    }
    // Client-side routes (/login, /settings/...) all load the single-page app.
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').sendFile('index.html');
  });

  return app;
}
