// Entry of the delivery thread from the sources: loads the TypeScript body through tsx, as
// bin/mailroom.js does for the main thread (a worker does not inherit loader hooks registered there).
import { tsImport } from 'tsx/esm/api';

await tsImport('./delivery-thread-main.ts', import.meta.url);
