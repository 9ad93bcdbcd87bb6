import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const WEB = fileURLToPath(new URL('../../web/', import.meta.url));

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

/** Builds the UI with Vite when needed, so `npm start` after a pull serves the current UI. */
export async function buildWebIfNeeded(log: (msg: string) => void): Promise<void> {
  if (!webBuildIsStale()) return;
  let vite: typeof import('vite');
  try {
    vite = await import('vite');
  } catch {
    log('The web UI is not built and Vite is not installed (npm install without --omit=dev builds it).');
    return;
  }
  log('Building the web UI…');
  await vite.build({ configFile: join(WEB, 'vite.config.ts'), logLevel: 'warn' });
}
