// Footprint and start: `node bin/mailroom.js serve` (the compiled build, embedded SQLite in a fresh
// DATA_DIR) beside a bare fastify server started the same way, in the same run. For each: time from
// spawn to the first 200 from /healthz, and resident memory (VmRSS) after it has been idle.
// Targets: /healthz ≤ 1.5 s after start, idle RSS ≤ 120 MB. Needs a build (npm install runs it).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envNumber, freePort, header, onCleanup, runBenchmark, sleep, table, tempDir, verdict } from './lib.ts';

const BIN = fileURLToPath(new URL('../bin/mailroom.js', import.meta.url));
const BARE = fileURLToPath(new URL('./bare-fastify.mjs', import.meta.url));
const COMPILED = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const SRC = fileURLToPath(new URL('../src', import.meta.url));
const RUNS = envNumber('BENCH_RUNS', 5);
const IDLE_MS = envNumber('BENCH_IDLE_SECONDS', 10) * 1000;

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

async function measure(args: (port: number) => string[], env: Record<string, string>): Promise<{ startMs: number; rssMb: number }> {
  const port = await freePort();
  const t0 = performance.now();
  const child: ChildProcess = spawn(process.execPath, args(port), { env: { PATH: process.env.PATH ?? '', ...env, PORT: String(port) }, stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = onCleanup(`process ${child.pid}`, async () => {
    child.kill('SIGKILL');
    await exited;
  }, () => child.kill('SIGKILL'));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${args(port).join(' ')} exited with ${child.exitCode}`);
      try {
        if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) break;
      } catch {
        // not listening yet
      }
      if (performance.now() - t0 > 30_000) throw new Error('no /healthz within 30 s');
      await sleep(10);
    }
    const startMs = performance.now() - t0;
    await sleep(IDLE_MS);
    return { startMs, rssMb: rssMb(child.pid!) };
  } finally {
    child.kill('SIGKILL');
    await exited;
    stop();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

runBenchmark('footprint', 600, async () => {
  header('Footprint: mailroom serve (compiled, embedded SQLite) vs a bare fastify server, same start');
  if (!existsSync(COMPILED)) throw new Error('no build in dist/: run npm run build (npm install does)');
  // bin/mailroom.js would run the sources through tsx: that is not the start being measured.
  const newest = (dir: string): number => Math.max(...readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs)));
  if (newest(SRC) > statSync(COMPILED).mtimeMs) throw new Error('src/ is newer than dist/: run npm run build first');
  console.log(`# ${RUNS} runs each, alternating; RSS read after ${IDLE_MS / 1000} s idle; medians`);
  const mr: Array<{ startMs: number; rssMb: number }> = [];
  const bare: Array<{ startMs: number; rssMb: number }> = [];
  for (let i = 0; i < RUNS; i++) {
    const dataDir = tempDir('mailroom-footprint-');
    mr.push(await measure(() => [BIN, 'serve'], { DATA_DIR: dataDir, HOST: '127.0.0.1', LOG_LEVEL: 'warn' }));
    bare.push(await measure((port) => [BARE, String(port)], {}));
  }
  const m = { start: median(mr.map((r) => r.startMs)), rss: median(mr.map((r) => r.rssMb)) };
  const b = { start: median(bare.map((r) => r.startMs)), rss: median(bare.map((r) => r.rssMb)) };
  table([
    { process: 'mailroom serve', 'start → /healthz (ms)': Math.round(m.start), 'idle RSS (MB)': Number(m.rss.toFixed(1)) },
    { process: 'bare fastify', 'start → /healthz (ms)': Math.round(b.start), 'idle RSS (MB)': Number(b.rss.toFixed(1)) },
    { process: 'ratio', 'start → /healthz (ms)': `${(m.start / b.start).toFixed(2)}×`, 'idle RSS (MB)': `${(m.rss / b.rss).toFixed(2)}×` },
  ]);
  console.log(`# start ${Math.round(m.start)} ms (target ≤ 1,500 ms: ${verdict(m.start, 1500, false)}); idle RSS ${m.rss.toFixed(1)} MB (target ≤ 120 MB: ${verdict(m.rss, 120, false)})`);
  console.log(`# every run: mailroom ${mr.map((r) => `${Math.round(r.startMs)} ms/${r.rssMb.toFixed(0)} MB`).join(', ')}; bare ${bare.map((r) => `${Math.round(r.startMs)} ms/${r.rssMb.toFixed(0)} MB`).join(', ')}`);
});
