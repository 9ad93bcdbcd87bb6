import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

/**
 * `npm install` builds the UI (the prepare script). Should the sources be newer after a pull, it is
 * built again at start — in a child process: Vite in the server process took 6.4 s and left it at
 * 452 MB resident for good.
 */
export async function buildWebIfNeeded(log: (msg: string) => void): Promise<void> {
  if (!webBuildIsStale()) return;
  const vite = join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
  if (!existsSync(vite)) {
    log('The web UI is not built and Vite is not installed (npm install without --omit=dev builds it).');
    return;
  }
  log('Building the web UI…');
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, [vite, 'build', '--config', join(WEB, 'vite.config.ts'), '--logLevel', 'warn'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', reject);
    child.once('exit', resolve);
  });
  if (code !== 0) log(`Building the web UI failed (exit code ${code}); run npm run build:web to see why.`);
}
