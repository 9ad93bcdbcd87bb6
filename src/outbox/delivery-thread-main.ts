// Body of the delivery thread (see DeliveryThread): the outbox worker with its own database
// connection and the process's connection gates; tokens are asked from the main thread.
import { parentPort, workerData } from 'node:worker_threads';
import type { AccessToken } from '../oauth/token-manager.ts';
import type { MailLogin } from '../credentials/auth-method.ts';
import type { ApplicationContext } from '../diagnose/evidence.ts';
import { createLogger, logWarnings } from '../logger.ts';
import { setOutboundPolicy } from '../net/outbound-policy.ts';
import { ConnectionGates } from '../smtp/connection-gate.ts';
import { serveSlots } from '../smtp/remote-gates.ts';
import { openDatabase } from '../storage/database.ts';
import { startWakeups } from '../storage/wakeups.ts';
import { type DeliveryThreadData, type FromThread, receivedError, type SentError, type ToThread } from './delivery-thread.ts';
import { OutboxWorker } from './outbox-worker.ts';

const port = parentPort!;
const data = workerData as DeliveryThreadData;
const send = (m: FromThread) => port.postMessage(m);
setOutboundPolicy(data.outbound);
// The same JSON lines, written by the main thread to its own destination.
const logger = createLogger(data.logLevel, { write: (line: string) => send({ t: 'log', line }) });
logWarnings(logger);

const database = await openDatabase(data.databaseUrl, data.databaseTimeouts, { migrate: false, ...(data.turns && { turns: data.turns }) });
const { db, dialect } = database;
const wakeups = startWakeups(db, data.databaseUrl, logger, { connectionTimeoutMs: data.databaseTimeouts.connectMs });
const gates = new ConnectionGates(dialect === 'postgres' ? { db, instance: data.instance, wakeups, leaseMs: data.outbox.leaseMs, now: () => new Date(), logger } : undefined, db);

let nextId = 0;
const tokenAsked = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
const token = <T>(kind: 'access' | 'login' | 'context', serverId: string, forceRefresh = false) =>
  new Promise<T>((resolve, reject) => {
    const id = ++nextId;
    tokenAsked.set(id, { resolve: resolve as (v: unknown) => void, reject });
    send({ t: 'token', id, kind, serverId, forceRefresh });
  });
const tokens = {
  getAccessToken: (serverId: string, opts: { forceRefresh?: boolean } = {}) => token<AccessToken>('access', serverId, opts.forceRefresh),
  getLogin: (serverId: string, opts: { forceRefresh?: boolean } = {}) => token<MailLogin>('login', serverId, opts.forceRefresh),
  applicationContext: (serverId: string) => token<ApplicationContext | undefined>('context', serverId),
};

const worker = new OutboxWorker({ db, dialect, config: data.outbox, graphHost: data.graphHost, tokens, gates, logger });
const slots = serveSlots(gates, (r) => send({ t: 'slot', r }));

async function stop(): Promise<void> {
  await worker.stop();
  await gates.close();
  await wakeups.close();
  await database.close();
  send({ t: 'stopped' });
  port.close();
}

port.on('message', (m: ToThread) => {
  switch (m.t) {
    case 'kick':
      worker.kick();
      return;
    case 'slot':
      slots(m.r);
      return;
    case 'token': {
      const asked = tokenAsked.get(m.id);
      tokenAsked.delete(m.id);
      if (m.error) asked?.reject(receivedError(m.error as SentError));
      else asked?.resolve(m.value);
      return;
    }
    case 'holders':
      gates.holders(m.instance).then(
        (h) => send({ t: 'holders', id: m.id, holders: [...h] }),
        () => send({ t: 'holders', id: m.id, holders: [] }),
      );
      return;
    case 'stop':
      void stop().catch((e: unknown) => {
        logger.error({ event: 'outbox.thread_stop_error', err: e }, 'the delivery thread did not stop cleanly');
        send({ t: 'stopped' });
      });
      return;
  }
});
// Other instances' new mail (PostgreSQL NOTIFY); this process's comes as 'kick'.
wakeups.on('mailroom_outbox', () => worker.kick());
worker.start();
send({ t: 'started' });
