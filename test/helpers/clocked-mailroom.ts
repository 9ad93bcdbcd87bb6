// `mailroom serve` with a clock the parent process moves: for tests of time windows (a day's quota,
// a minute's rate) against real peers. The clock runs with real time plus an offset; the parent sends
// { advanceMs } over IPC and gets { offsetMs } back once the worker has been woken.
import { loadConfig } from '../../src/config/config.ts';
import { buildApp } from '../../src/http/app.ts';
import { createLogger } from '../../src/logger.ts';
import { createMailroom } from '../../src/mailroom.ts';

let offsetMs = 0;
const now = () => new Date(Date.now() + offsetMs);
const config = loadConfig(process.env);
const mr = await createMailroom(config, createLogger(config.logLevel), { now });
const app = await buildApp(mr);
await app.listen({ port: config.port, host: config.host });
mr.startWorkers();
process.on('message', (m: { advanceMs?: number }) => {
  offsetMs += m.advanceMs ?? 0;
  mr.worker.kick();
  process.send!({ offsetMs });
});
process.once('SIGTERM', () => void app.close().then(() => mr.close()).then(() => process.exit(0)));
