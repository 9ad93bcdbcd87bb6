#!/usr/bin/env node
// Starts the compiled server (dist/, built by `npm install` through the prepare script): plain
// JavaScript, nothing transpiled at start. A checkout without a build, or with sources newer than the
// build (a pull without npm install), runs the TypeScript sources through tsx instead.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const compiled = join(root, 'dist', 'cli', 'main.js');
const sources = join(root, 'src');

function newerThan(dir, t) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory() ? newerThan(p, t) : statSync(p).mtimeMs > t) return true;
  }
  return false;
}

// An installed package has dist/ and no src/: nothing to compare.
const stale = !existsSync(compiled) || (existsSync(sources) && newerThan(sources, statSync(compiled).mtimeMs));
if (!stale) {
  await import(compiled);
} else {
  if (existsSync(compiled)) process.stderr.write('mailroom: src/ is newer than the build in dist/; running the sources through tsx (slower start). npm run build compiles them.\n');
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
