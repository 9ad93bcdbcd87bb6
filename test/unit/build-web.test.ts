import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { forEachLine } from '../../src/cli/build-web.ts';

// What the UI build (a Vite child process) writes reaches serve's log one line at a time, never as
// raw text on serve's own stdout or stderr.
test('forEachLine hands over each line a child writes, whole, however the writes are cut', async () => {
  const child = spawn(process.execPath, [
    '-e',
    "process.stdout.write('first li'); setTimeout(() => { process.stdout.write('ne\\r\\nsecond line\\n\\n'); process.stderr.write('(!) Some chunks are larger than 500 kB'); }, 50);",
  ]);
  const out: string[] = [];
  const err: string[] = [];
  forEachLine(child.stdout, (l) => out.push(l));
  forEachLine(child.stderr, (l) => err.push(l));
  await once(child, 'close');
  assert.deepEqual(out, ['first line', 'second line']);
  assert.deepEqual(err, ['(!) Some chunks are larger than 500 kB']);
});
