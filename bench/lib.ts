// Shared pieces of the benchmarks: a Mailroom child process, a small keep-alive HTTP client, cleanup that
// runs on every exit path, an overall deadline, CPU accounting and result printing. Everything binds and
// talks to 127.0.0.1 only.
import SQLite from 'better-sqlite3';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from '../test/helpers/mailroom-process.ts';

export { freePort };

const BIN = fileURLToPath(new URL('../bin/mailroom.js', import.meta.url));

// ------------------------------------------------------------------------------------------------
// Cleanup and deadline

type Cleanup = { name: string; run: () => Promise<void> | void; sync?: () => void };
const cleanups: Cleanup[] = [];

/** Registers a teardown step; steps run in reverse order. `sync` is the last resort on process exit. */
export function onCleanup(name: string, run: () => Promise<void> | void, sync?: () => void): () => void {
  const c: Cleanup = { name, run, ...(sync && { sync }) };
  cleanups.push(c);
  return () => {
    const i = cleanups.indexOf(c);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

async function runCleanups(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) {
    try {
      await c.run();
    } catch (e) {
      console.error(`cleanup "${c.name}" failed: ${(e as Error).message}`);
    }
  }
}

process.once('exit', () => {
  for (const c of cleanups.splice(0).reverse()) {
    try {
      c.sync?.();
    } catch {
      // best effort
    }
  }
});

/**
 * Runs a benchmark with a hard time limit; whatever happens (success, error, deadline, Ctrl-C) every
 * registered cleanup runs and the process exits.
 */
export function runBenchmark(name: string, limitSeconds: number, main: () => Promise<void>): void {
  let finished = false;
  const finish = async (code: number, why?: string) => {
    if (finished) return;
    finished = true;
    if (why) console.error(why);
    await runCleanups();
    process.exit(code);
  };
  const timer = setTimeout(() => void finish(2, `${name}: stopped at the ${limitSeconds} s time limit`), limitSeconds * 1000);
  timer.unref();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void finish(130, `${name}: ${sig}`));
  main().then(
    () => finish(Number(process.exitCode ?? 0)),
    (e: unknown) => finish(1, `${name} failed: ${(e as Error)?.stack ?? String(e)}`),
  );
}

export function envNumber(name: string, def: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number (got "${raw}")`);
  return n;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A temp directory removed at cleanup. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onCleanup(`temp dir ${dir}`, () => rmSync(dir, { recursive: true, force: true }), () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ------------------------------------------------------------------------------------------------
// HTTP client: node:http with keep-alive (lighter on the benchmark's own CPU than fetch)

export interface HttpReply {
  status: number;
  json: any;
}

export function httpClient(baseUrl: string, key: string, maxSockets = 64) {
  const agent = new http.Agent({ keepAlive: true, maxSockets });
  onCleanup('http agent', () => agent.destroy());
  const request = (method: string, path: string, body?: unknown): Promise<HttpReply> =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = http.request(
        new URL(path, baseUrl),
        {
          method,
          agent,
          headers: {
            authorization: `Bearer ${key}`,
            ...(payload !== undefined && { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown = null;
            try {
              json = JSON.parse(text);
            } catch {
              json = text;
            }
            resolve({ status: res.statusCode ?? 0, json });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  return { request, agent };
}

// ------------------------------------------------------------------------------------------------
// Mailroom as a child process

export interface MailroomChild {
  baseUrl: string;
  port: number;
  dataDir: string;
  logFile: string;
  pid: number;
  env: Record<string, string>;
  cli(...args: string[]): Promise<string>;
  /** SIGTERM (graceful: the worker finishes its messages), SIGKILL after 10 s; the data dir is kept. */
  stop(): Promise<void>;
  logTail(lines?: number): string;
}

/**
 * Starts `mailroom serve` (bin/mailroom.js, as `npm start` does) with stdout/stderr going to a log file,
 * like a service writing its log, and waits for /healthz. The data dir (a temp dir unless given) is
 * removed at cleanup.
 */
export async function startMailroom(
  env: Record<string, string>,
  opts: { port?: number; dataDir?: string; workDir?: string; nodeArgs?: string[] } = {},
): Promise<MailroomChild> {
  const port = opts.port ?? (await freePort());
  const dataDir = opts.dataDir ?? tempDir('mailroom-bench-data-');
  const logDir = opts.workDir ?? dataDir;
  const logFile = join(logDir, `mailroom-${port}-${Date.now()}.log`);
  const fullEnv: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    PORT: String(port),
    HOST: '127.0.0.1',
    BASE_URL: `http://127.0.0.1:${port}`,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'info',
    ...env,
    // BENCH_MAILROOM_ENV="OUTBOX_CONCURRENCY=64,SMTP_IDLE_CLOSE_SECONDS=5": settings tried on every Mailroom of the run.
    ...Object.fromEntries((process.env.BENCH_MAILROOM_ENV ?? '').split(',').map((kv) => kv.trim()).filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
  };
  const fd = openSync(logFile, 'a');
  const execArgv = [...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []), ...(opts.nodeArgs ?? [])];
  const child: ChildProcess = spawn(process.execPath, [...execArgv, BIN, 'serve'], { env: fullEnv, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    if (!alive()) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };
  const keepLog = async () => {
    const to = process.env.BENCH_KEEP_LOGS;
    if (to) {
      mkdirSync(to, { recursive: true });
      copyFileSync(logFile, join(to, basename(logFile)));
    }
  };
  const unregister = onCleanup('mailroom process', async () => {
    await stop();
    await keepLog();
  }, () => {
    if (alive()) child.kill('SIGKILL');
  });
  const logTail = (n = 30) => {
    try {
      return readFileSync(logFile, 'utf8').split('\n').slice(-n).join('\n');
    } catch {
      return '';
    }
  };
  const baseUrl = fullEnv.BASE_URL!;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (!alive()) throw new Error(`mailroom exited with ${child.exitCode ?? child.signalCode}:\n${logTail()}`);
    try {
      if ((await fetch(`${baseUrl}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`mailroom did not start:\n${logTail()}`);
    await sleep(100);
  }
  return {
    baseUrl,
    port,
    dataDir,
    logFile,
    pid: child.pid!,
    env: fullEnv,
    async cli(...args) {
      const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], { env: fullEnv });
      return stdout + stderr;
    },
    async stop() {
      await stop();
      unregister();
      await keepLog();
    },
    logTail,
  };
}

export async function createApiKey(mr: MailroomChild, scope = 'admin'): Promise<string> {
  const out = await mr.cli('apikey', 'create', '--name', `bench-${scope}`, '--scope', scope);
  const key = /\n(mr_\S+)/.exec(out)?.[1];
  if (!key) throw new Error(`no API key in: ${out}`);
  return key;
}

// ------------------------------------------------------------------------------------------------
// Disk: how long one durable SQLite commit takes right now, where DATA_DIR lives

/**
 * Median and p99 of `count` single-row commits with Mailroom's settings (WAL, synchronous=FULL), in a
 * temp dir on the same file system as the benchmark's DATA_DIR. The disk is shared with everything
 * else on the machine, so this varies between runs; it puts the enqueue numbers in context.
 */
export function commitProbe(count = 300): { p50: number; p99: number } {
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-bench-fsync-'));
  try {
    const db = new SQLite(join(dir, 'probe.sqlite'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('create table t (id integer primary key, v text)');
    const insert = db.prepare('insert into t (v) values (?)');
    const value = 'x'.repeat(1500);
    const ms: number[] = [];
    for (let i = 0; i < count; i++) {
      const t = performance.now();
      insert.run(value);
      ms.push(performance.now() - t);
    }
    db.close();
    ms.sort((a, b) => a - b);
    return { p50: ms[Math.floor(count / 2)]!, p99: ms[Math.floor(count * 0.99)]! };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function printCommitProbe(): void {
  const c = commitProbe();
  console.log(`# disk: one SQLite commit (WAL, synchronous=FULL) takes p50 ${c.p50.toFixed(2)} ms, p99 ${c.p99.toFixed(2)} ms right now (${tmpdir()})`);
}

// ------------------------------------------------------------------------------------------------
// CPU accounting: whole machine (/proc/stat), child processes and process trees (/proc/PID/stat), this process

function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Fields of /proc/PID/stat after the command name: [0] is field 3 (state). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** utime + stime of a process, all its threads, in clock ticks; 0 once it is gone. */
function processTicks(pid: number): number {
  const f = statFields(pid);
  return f ? Number(f[11]) + Number(f[12]) : 0; // utime + stime (fields 14, 15)
}

const CLK_TCK = 100;

/** Cores the processes `pids` used over their whole lifetime so far, spread over `seconds`. */
export function lifetimeCores(pids: number[], seconds: number): number {
  return pids.reduce((sum, pid) => sum + processTicks(pid), 0) / CLK_TCK / seconds;
}

/** Live processes by parent pid, with their command names (/proc/PID/comm). */
function processTable(): Map<number, Array<{ pid: number; comm: string }>> {
  const byParent = new Map<number, Array<{ pid: number; comm: string }>>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const f = statFields(pid);
    if (!f) continue;
    let comm = '';
    try {
      comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    const ppid = Number(f[1]);
    byParent.set(ppid, [...(byParent.get(ppid) ?? []), { pid, comm }]);
  }
  return byParent;
}

/** This process's child processes named `comm`, e.g. the Dovecot master the peers started. */
export function childProcesses(comm: string): number[] {
  return (processTable().get(process.pid) ?? []).filter((c) => c.comm === comm).map((c) => c.pid);
}

/**
 * Starts measuring the CPU of the process trees rooted at `roots`: the roots, their live descendants
 * and everything they have reaped (cutime + cstime), so short-lived children (Dovecot's imap and login
 * processes) count too. The returned function gives cores since then.
 */
export function treeMeter(roots: number[]): () => number {
  const tree = () => {
    const byParent = processTable();
    const ticks = (pid: number): number => {
      const f = statFields(pid);
      if (!f) return 0;
      const own = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]); // utime stime cutime cstime
      return own + (byParent.get(pid) ?? []).reduce((sum, c) => sum + ticks(c.pid), 0);
    };
    return roots.reduce((sum, pid) => sum + ticks(pid), 0);
  };
  const t0 = performance.now();
  const k0 = tree();
  return () => (tree() - k0) / CLK_TCK / ((performance.now() - t0) / 1000);
}

/** In cores (1.0 = one core fully busy) over the measured interval. */
export interface CpuReport {
  /** The whole machine (all processes, kernel). */
  machineCores: number;
  /** The child processes given to cpuMeter (Mailroom), all their threads. */
  childCores: number;
  /** This process. */
  selfCores: number;
  /** machine − child − self: Dovecot, the kernel, anything else. */
  otherCores: number;
}

/**
 * Starts measuring; the returned function gives CPU use since then (call it while the children still
 * run). `children`: a pid or pids of running processes, or a function giving, at the end, the pids of
 * processes started after this call (their whole lifetime is then counted).
 */
export function cpuMeter(children?: number | number[] | (() => number[])): () => CpuReport {
  const ticks = (pids: number[]) => pids.reduce((sum, pid) => sum + processTicks(pid), 0);
  const later = typeof children === 'function' ? children : undefined;
  const pids0 = typeof children === 'function' || children === undefined ? [] : [children].flat();
  const m0 = machineTicks();
  const c0 = ticks(pids0);
  const s0 = process.cpuUsage();
  const t0 = performance.now();
  return () => {
    const m1 = machineTicks();
    const seconds = (performance.now() - t0) / 1000;
    const s = process.cpuUsage(s0);
    const machineCores = ((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)) * cpus().length;
    const childCores = (later ? ticks(later()) : ticks(pids0) - c0) / CLK_TCK / seconds;
    const selfCores = (s.user + s.system) / 1e6 / seconds;
    return { machineCores, childCores, selfCores, otherCores: Math.max(0, machineCores - childCores - selfCores) };
  };
}

// ------------------------------------------------------------------------------------------------
// Output

export function header(title: string): void {
  const c = cpus();
  console.log(`# ${title}`);
  console.log(
    `# ${new Date().toISOString()} · ${c.length} cores (${c[0]?.model ?? 'unknown cpu'}) · Node ${process.version} · ${process.platform}` +
      ` · load average before the run ${loadavg().map((l) => l.toFixed(2)).join(' ')} (other processes on the machine share these cores)`,
  );
}

export function table(rows: Array<Record<string, string | number>>): void {
  const cols = Object.keys(rows[0] ?? {});
  const cell = (v: string | number) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : v);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c] ?? '').length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(width[i]!)).join('  ');
  console.log(line(cols));
  console.log(line(width.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line(cols.map((c) => cell(r[c] ?? ''))));
}

/** "0.83 (target ≥ 0.8: met)" or "0.61 (target ≥ 0.8: missed by 24 %)". */
export function verdict(value: number, target: number, higherIsBetter = true): string {
  const met = higherIsBetter ? value >= target : value <= target;
  if (met) return `met`;
  const by = higherIsBetter ? (1 - value / target) * 100 : (value / target - 1) * 100;
  return `MISSED by ${by.toFixed(0)} %`;
}

// ------------------------------------------------------------------------------------------------
// Where the Mailroom process's main thread spends its time (BENCH_CPU_PROF=dir: node --cpu-prof)

/** CLOCK_MONOTONIC in µs: the clock V8 CPU profiles use, the same in every process on the machine. */
export const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string } }>;
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const WRITE_CALLS = new Set(['writev', 'writeBuffer', 'writeString', 'writeUtf8String', 'writeLatin1String', 'writeAsciiString']);

function category(fn: string, url: string): string {
  if (fn === '(idle)') return 'idle (waiting for I/O)';
  if (fn === '(garbage collector)') return 'garbage collection';
  if (url.includes('better-sqlite3') || url.includes('sql-trace') || (url.includes('kysely') && fn === 'executeQuery')) return 'SQLite statements (better-sqlite3, incl. fsync at commit)';
  if (url.includes('kysely')) return 'kysely (query building, transactions)';
  if (WRITE_CALLS.has(fn)) return 'socket and log-file writes (syscalls)';
  if (url.includes('nodemailer')) return 'nodemailer (MIME building, SMTP client)';
  if (/fastify|find-my-way|avvio|light-my-request|fast-json-stringify/.test(url)) return 'fastify (HTTP routing, serialization)';
  if (url.includes('pino')) return 'pino (logging)';
  if (url.includes('zod')) return 'zod (validation)';
  if (url.includes('/src/')) return 'Mailroom code (src/)';
  if (url.startsWith('node:') || url === '') return 'Node core (http, net, tls, streams, crypto)';
  return 'other';
}

/**
 * Reads the profiles of `pid` in `dir` (the main thread's, and each worker thread's: the delivery
 * thread, parser threads) and prints, for each window, the share of wall time per category (by the
 * function on top of the stack) and the functions with the most self time.
 */
export function printProfile(dir: string, pid: number, windows: Array<{ name: string; fromUs: number; toUs: number }>, opts: { top?: number } = {}): void {
  // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: thread 0 is the main thread.
  const files = readdirSync(dir).filter((f) => f.includes(`.${pid}.`) && f.endsWith('.cpuprofile')).sort();
  if (!files.length) {
    console.log(`# no CPU profile of process ${pid} in ${dir}`);
    return;
  }
  for (const file of files) {
    const thread = Number(file.split('.').at(-3));
    const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    const frame = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
    const cat = new Map(p.nodes.map((n) => [n.id, category(n.callFrame.functionName, n.callFrame.url)]));
    for (const w of windows) {
      const shares = new Map<string, number>();
      const self = new Map<string, number>();
      let t = p.startTime;
      let total = 0;
      p.samples.forEach((id, i) => {
        const prev = t;
        t += p.timeDeltas[i] ?? 0;
        if (t < w.fromUs || t > w.toUs) return;
        const d = t - prev;
        total += d;
        const c = cat.get(id) ?? 'other';
        shares.set(c, (shares.get(c) ?? 0) + d);
        const f = frame.get(id);
        const name = f ? `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(node_modules|src)\//, '$1/')}` : '?';
        self.set(name, (self.get(name) ?? 0) + d);
      });
      if (total < 0.5e6) continue;
      console.log(`# Mailroom ${thread === 0 ? 'main thread' : `thread ${thread}`}, ${w.name} (${(total / 1e6).toFixed(1)} s sampled):`);
      for (const [c, us] of [...shares].sort((a, b) => b[1] - a[1])) {
        if (us / total >= 0.01) console.log(`#   ${((100 * us) / total).toFixed(0).padStart(3)} %  ${c}`);
      }
      if (opts.top) {
        console.log(`#   most self time:`);
        for (const [f, us] of [...self].filter(([f]) => !f.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, opts.top)) console.log(`#   ${((100 * us) / total).toFixed(1).padStart(5)} %  ${f}`);
      }
    }
  }
  console.log(`# profiles: ${files.map((f) => join(dir, f)).join(', ')}`);
}

// ------------------------------------------------------------------------------------------------
// BENCH_SQL_TRACE: per-statement SQLite time inside the Mailroom process, per window

export interface SqlStat {
  sql: string;
  count: number;
  ms: number;
  /** A worker thread's (the delivery thread's); the main thread's have none. */
  thread?: number;
}

/**
 * BENCH_SQL_TRACE: the env and node arguments that load bench/sql-trace.mjs into the Mailroom child,
 * and `marker(pid)`, which ends a window and returns the per-statement totals of that window.
 */
export function sqlTraceSetup() {
  const file = join(tempDir('mailroom-bench-sql-'), 'trace.jsonl');
  return {
    env: { BENCH_SQL_TRACE_FILE: file },
    nodeArgs: ['--import', fileURLToPath(new URL('./sql-trace.mjs', import.meta.url))],
    marker: (pid: number) => sqlMarker(pid, file),
  };
}

function sqlMarker(pid: number, file: string) {
  let sections = 0;
  /** Ends the current window: the child appends its totals since the previous mark. */
  return async (): Promise<SqlStat[]> => {
    process.kill(pid, 'SIGUSR2');
    sections++;
    for (let i = 0; i < 200; i++) {
      const parts = existsSync(file) ? readFileSync(file, 'utf8').split('=== ').slice(1) : [];
      if (parts.length >= sections) {
        const stats = parts[sections - 1]!.split('\n').slice(1).filter(Boolean).map((l) => JSON.parse(l) as SqlStat);
        // Worker threads (the delivery thread) write their own files at the same marks.
        await sleep(200);
        const dir = dirname(file);
        for (const f of readdirSync(dir).filter((x) => x.startsWith(`${basename(file)}.thread`))) {
          const thread = Number(f.slice(`${basename(file)}.thread`.length));
          const section = readFileSync(join(dir, f), 'utf8').split('=== ').slice(1)[sections - 1];
          for (const l of section?.split('\n').slice(1).filter(Boolean) ?? []) stats.push({ ...(JSON.parse(l) as SqlStat), thread });
        }
        return stats;
      }
      await sleep(10);
    }
    throw new Error('no SQL trace from the Mailroom process');
  };
}

export function printSql(title: string, all: SqlStat[], seconds: number, messages: number): void {
  for (const thread of [...new Set(all.map((s) => s.thread ?? 0))].sort()) {
    const stats = all.filter((s) => (s.thread ?? 0) === thread).sort((a, b) => b.ms - a.ms);
    const total = stats.reduce((a, s) => a + s.ms, 0);
    console.log(`# SQLite on Mailroom's ${thread ? `thread ${thread}` : 'event loop'}, ${title}: ${(total / 1000).toFixed(2)} s of ${seconds.toFixed(2)} s wall (${((100 * total) / 1000 / seconds).toFixed(0)} %), ${(total / messages).toFixed(2)} ms per message`);
    for (const s of stats.slice(0, 8)) {
      console.log(`#   ${s.ms.toFixed(0).padStart(6)} ms  ${String(s.count).padStart(5)}×  ${(s.ms / s.count).toFixed(3)} ms  ${s.sql.slice(0, 110)}`);
    }
  }
}
