import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/mailroom.js', import.meta.url));
const CLOCKED = fileURLToPath(new URL('./clocked-mailroom.ts', import.meta.url));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface MailroomProcess {
  baseUrl: string;
  dataDir: string;
  env: Record<string, string>;
  /** The process id: part of the instance name in lease rows (host:pid:random). */
  pid: number;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Settles when the process has ended, with its exit code (null when a signal ended it). */
  exited: Promise<number | null>;
  /** Runs `mailroom <args>` with the same environment (CLI commands). */
  cli(...args: string[]): Promise<string>;
  /** Only with `clocked`: moves Mailroom's clock forward (the worker is woken at once). */
  advanceClock(ms: number): Promise<void>;
  /** kill -9: no shutdown hooks run, the data directory is left as the crash left it. */
  crash(): Promise<void>;
  /** SIGTERM and wait; then fails if the process ever logged an unhandled rejection or exception. */
  stop(): Promise<void>;
  /** Fails if the process logged `process.unhandled` (an unhandled rejection or uncaught exception) so far. */
  assertNoUnhandled(): void;
}

/** The log lines of an unhandled rejection or uncaught exception (serve logs them and carries on). */
export function unhandledLines(output: string): string[] {
  return output.split('\n').filter((l) => l.includes('"event":"process.unhandled"'));
}

/** Starts `mailroom serve` as a real child process, as `npm start` would, and waits for /healthz. */
export async function startMailroomProcess(env: Record<string, string>, port?: number, reuseDataDir?: string, opts: { clocked?: boolean } = {}): Promise<MailroomProcess> {
  const dataDir = reuseDataDir ?? mkdtempSync(join(tmpdir(), 'mailroom-e2e-'));
  if (port !== undefined) return spawnMailroom(env, port, dataDir, opts.clocked ?? false);
  // A port found free can be taken by a peer before Mailroom binds it: try another one.
  for (let attempt = 1; ; attempt++) {
    try {
      return await spawnMailroom(env, await freePort(), dataDir, opts.clocked ?? false);
    } catch (e) {
      if (attempt >= 5 || !String((e as Error).message).includes('EADDRINUSE')) throw e;
    }
  }
}

async function spawnMailroom(env: Record<string, string>, p: number, dataDir: string, clocked: boolean): Promise<MailroomProcess> {
  const fullEnv: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    PORT: String(p),
    HOST: '127.0.0.1',
    BASE_URL: `http://127.0.0.1:${p}`,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'debug',
    ...env,
  };
  let out = '';
  const child: ChildProcess = clocked
    ? spawn(process.execPath, ['--import', 'tsx', CLOCKED], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
    : spawn(process.execPath, [BIN, 'serve'], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const baseUrl = fullEnv.BASE_URL!;
  const deadline = Date.now() + 120_000; // the first start may build the UI
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mailroom exited with ${child.exitCode}:\n${out}`);
    try {
      if ((await fetch(`${baseUrl}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`mailroom did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const assertNoUnhandled = () => {
    const lines = unhandledLines(out);
    if (lines.length) throw new Error(`mailroom logged ${lines.length} unhandled error(s):\n${lines.slice(0, 3).join('\n')}`);
  };
  return {
    baseUrl,
    dataDir,
    env: fullEnv,
    pid: child.pid!,
    output: () => out,
    exited,
    async cli(...args) {
      const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], { env: fullEnv });
      return stdout + stderr;
    },
    advanceClock(ms) {
      if (!clocked) throw new Error('advanceClock needs a process started with { clocked: true }');
      return new Promise((resolve) => {
        child.once('message', () => resolve());
        child.send({ advanceMs: ms });
      });
    },
    async crash() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dataDir, { recursive: true, force: true });
      assertNoUnhandled();
    },
    assertNoUnhandled,
  };
}
