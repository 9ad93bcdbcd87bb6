import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../logger.ts';

// The same depth from src/cli and dist/cli.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WEB = join(ROOT, 'web');

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...readdirSync(path).map((n) => newestMtime(join(path, n))));
}

/** True when web/dist is missing or older than any UI source. */
export function webBuildIsStale(): boolean {
  const built = join(WEB, 'dist', 'index.html');
  if (!existsSync(built)) return true;
  const sources = ['src', 'index.html', 'vite.config.ts'].map((p) => join(WEB, p)).filter(existsSync);
  return Math.max(...sources.map(newestMtime)) > statSync(built).mtimeMs;
}

/** Each line a child process writes, handed over as it completes (a half line waits for the rest). */
export function forEachLine(stream: Readable, onLine: (line: string) => void): void {
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const lines = (rest + chunk).split(/\r?\n/);
    rest = lines.pop()!;
    for (const l of lines) if (l.trim()) onLine(l);
  });
  stream.on('end', () => {
    if (rest.trim()) onLine(rest);
    rest = '';
  });
}

/** Removes the terminal colours Vite adds to its notes. */
const plain = (line: string) => line.replace(/\x1b\[[0-9;]*m/g, '');

/**
 * `npm install` builds the UI (the prepare script). Should the sources be newer after a pull, it is
 * built again at start — in a child process: Vite in the server process took 6.4 s and left it at
 * 452 MB resident for good. What Vite says goes into the log, one entry per line, so that every line
 * `serve` writes is JSON.
 */
export async function buildWebIfNeeded(logger: Pick<Logger, 'info' | 'warn'>): Promise<void> {
  if (!webBuildIsStale()) return;
  const vite = join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
  if (!existsSync(vite)) {
    logger.warn({ event: 'web.not_built' }, 'The web UI is not built and Vite is not installed (npm install without --omit=dev builds it).');
    return;
  }
  logger.info({ event: 'web.building' }, 'Building the web UI…');
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, [vite, 'build', '--config', join(WEB, 'vite.config.ts'), '--logLevel', 'warn'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    forEachLine(child.stdout, (l) => logger.info({ event: 'web.build_output' }, plain(l)));
    forEachLine(child.stderr, (l) => logger.warn({ event: 'web.build_output' }, plain(l)));
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (code !== 0) logger.warn({ event: 'web.build_failed', exitCode: code }, `Building the web UI failed (exit code ${code}); run npm run build:web to see why.`);
}
