import { createServer, type Server, type Socket, connect } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Refuses connections (the port is closed) and cuts the ones open: an outage as clients see it. */
  down(): Promise<void>;
  /**
   * Accepts connections and never answers, and cuts the ones open: a black-holed network path, the
   * worst case for a client that does not bound its waits.
   */
  blackhole(): Promise<void>;
  /** Forwards again (listening again on the same port after `down`). */
  up(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A TCP forwarder on 127.0.0.1 in front of a peer, so tests can take "the mail server" (or
 * PostgreSQL) down and up. `join` connects the two sides of a connection (default: each piped into
 * the other); a benchmark passes one that shapes the traffic.
 */
export async function startTcpProxy(targetPort: number, join: (client: Socket, upstream: Socket) => void = (c, u) => c.pipe(u).pipe(c)): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  let forward = true;
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  };
  const cut = () => {
    for (const s of sockets) s.destroy();
  };
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      if (server) return resolve();
      server = createServer((client) => {
        track(client);
        if (!forward) {
          client.on('error', () => undefined);
          return;
        }
        const upstream = connect(targetPort, '127.0.0.1');
        track(upstream);
        for (const s of [client, upstream]) {
          s.on('error', () => {
            client.destroy();
            upstream.destroy();
          });
        }
        join(client, upstream);
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as { port: number }).port;
        resolve();
      });
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      cut();
      if (!server) return resolve();
      server.close(() => resolve());
      server = undefined;
    });
  await listen();
  return {
    get port() {
      return port;
    },
    down: stop,
    async blackhole() {
      forward = false;
      cut();
      await listen();
    },
    async up() {
      forward = true;
      await listen();
    },
    close: stop,
  };
}
