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

// `serve` writes only JSON lines (its log). Until its logger exists, this file writes them in the
// same shape (pino's: level 40 is warn), and Node's own warnings go there too instead of plain text.
const args = process.argv.slice(2);
const serving = (args[0] ?? 'serve') === 'serve' && !args.some((a) => a === '--help' || a === '-h');
const note = (event, msg, fields = {}) =>
  serving
    ? process.stdout.write(`${JSON.stringify({ level: 40, time: new Date().toISOString(), service: 'mailroom', event, ...fields, msg })}\n`)
    : process.stderr.write(`mailroom: ${msg}\n`);
if (serving) {
  process.removeAllListeners('warning');
  process.on('warning', (w) => note('process.warning', w.message, { warning: { name: w.name, ...(w.code && { code: w.code }) } }));
}

// An installed package has dist/ and no src/: nothing to compare.
const stale = !existsSync(compiled) || (existsSync(sources) && newerThan(sources, statSync(compiled).mtimeMs));
if (!stale) {
  await import(compiled);
} else {
  if (existsSync(compiled)) note('start.sources', 'src/ is newer than the build in dist/; running the sources through tsx (slower start). npm run build compiles them.');
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
