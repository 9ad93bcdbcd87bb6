// Entry of a parse worker thread: loads the TypeScript body through tsx, as bin/mailroom.js does
// for the main thread (a worker does not inherit loader hooks registered there).
import { tsImport } from 'tsx/esm/api';

await tsImport('./parse-worker.ts', import.meta.url);
