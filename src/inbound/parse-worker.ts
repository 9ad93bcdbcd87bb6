// Worker thread body: parses the raw messages the pool sends, one at a time (parsing is CPU work:
// running several at once in one thread would only hold more of them in memory).
import { parentPort } from 'node:worker_threads';
import { loadParser, parseMessage } from './parse-message.ts';
import type { ParseJob, ParseReply } from './parse-pool.ts';

let queue: Promise<void> = Promise.resolve();
parentPort!.on('message', (job: ParseJob) => {
  queue = queue.then(() =>
    parseMessage(Buffer.from(job.source.buffer, job.source.byteOffset, job.source.byteLength)).then(
      (parsed) => parentPort!.postMessage({ seq: job.seq, parsed } satisfies ParseReply),
      (e: unknown) => parentPort!.postMessage({ seq: job.seq, error: e instanceof Error ? e.message : String(e) } satisfies ParseReply),
    ),
  );
});
// Loaded: the pool's parse deadline counts from here, not from the thread's start (about half a second).
await loadParser();
parentPort!.postMessage({ ready: true } satisfies ParseReply);
