import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';

/**
 * What a refused outbound connection would have reached, on 127.0.0.1: an HTTP listener that keeps
 * every request (the "metadata service" a webhook was aimed at) and a TCP listener that counts
 * connections and closes them (a mail server port). A test asserts that nothing arrived.
 */
export interface OutboundTargets {
  httpPort: number;
  tcpPort: number;
  requests: Array<{ url: string; body: string }>;
  /** TCP connections accepted so far. */
  connections(): number;
  stop(): Promise<void>;
}

export async function startOutboundTargets(): Promise<OutboundTargets> {
  const requests: OutboundTargets['requests'] = [];
  let connections = 0;
  const http = createHttpServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      requests.push({ url: req.url ?? '', body });
      res.end('ok');
    });
  });
  const tcp = createTcpServer((s) => {
    connections++;
    s.destroy();
  });
  await Promise.all([new Promise<void>((r) => http.listen(0, '127.0.0.1', r)), new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r))]);
  return {
    httpPort: (http.address() as { port: number }).port,
    tcpPort: (tcp.address() as { port: number }).port,
    requests,
    connections: () => connections,
    async stop() {
      http.closeAllConnections();
      await Promise.all([new Promise((r) => http.close(r)), new Promise((r) => tcp.close(r))]);
    },
  };
}
