// Worker thread body: parses the raw messages the pool sends.
import { parentPort } from 'node:worker_threads';
import { parseMessage } from './parse-message.ts';
import type { ParseJob, ParseReply } from './parse-pool.ts';

parentPort!.on('message', (job: ParseJob) => {
  parseMessage(Buffer.from(job.source.buffer, job.source.byteOffset, job.source.byteLength)).then(
    (parsed) => parentPort!.postMessage({ seq: job.seq, parsed } satisfies ParseReply),
    (e: unknown) => parentPort!.postMessage({ seq: job.seq, error: e instanceof Error ? e.message : String(e) } satisfies ParseReply),
  );
});
