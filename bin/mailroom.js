#!/usr/bin/env node
// Runs the TypeScript sources through tsx's loader: one code path for `npm start`, the CLI and tests.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
