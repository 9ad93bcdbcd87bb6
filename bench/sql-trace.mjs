// Diagnostic preload for the Mailroom child process (node --import bench/sql-trace.mjs): times every
// better-sqlite3 statement on the calling (event-loop) thread, by SQL text. On SIGUSR2 it appends the
// totals since the previous SIGUSR2 to $BENCH_SQL_TRACE_FILE as one "=== " section and starts over.
// Used by bench/outbox-throughput.ts with BENCH_SQL_TRACE=1. Plain JS: it loads before tsx does.
import { appendFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isMainThread, threadId } from 'node:worker_threads';

const require = createRequire(new URL('../package.json', import.meta.url));
const Database = require('better-sqlite3');
const probe = new Database(':memory:');
const Statement = Object.getPrototypeOf(probe.prepare('select 1'));
probe.close();

let stats = new Map();
for (const method of ['run', 'get', 'all', 'iterate']) {
  const original = Statement[method];
  Statement[method] = function (...args) {
    const t = performance.now();
    try {
      return original.apply(this, args);
    } finally {
      const sql = this.source.replace(/\s+/g, ' ');
      const s = stats.get(sql) ?? { count: 0, ms: 0 };
      s.count++;
      s.ms += performance.now() - t;
      stats.set(sql, s);
    }
  };
}

// The delivery thread's statements go to "<file>.thread<id>", a section at each of the main thread's marks.
const marks = new BroadcastChannel('mailroom-sql-trace');
marks.unref();
const dump = (file) => {
  const rows = [...stats].sort((a, b) => b[1].ms - a[1].ms).map(([sql, s]) => JSON.stringify({ sql, ...s }));
  appendFileSync(file, `=== ${rows.length}\n${rows.join('\n')}\n`);
  stats = new Map();
};
if (isMainThread) {
  process.on('SIGUSR2', () => {
    dump(process.env.BENCH_SQL_TRACE_FILE);
    marks.postMessage('mark');
  });
} else {
  marks.onmessage = () => dump(`${process.env.BENCH_SQL_TRACE_FILE}.thread${threadId}`);
}
