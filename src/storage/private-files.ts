import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';

/**
 * DATA_DIR holds the secret key, the database and raw mail: only the account Mailroom runs as may
 * read it. Folders Mailroom creates are 0700, files 0600.
 */
export function privateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/** An existing DATA_DIR that others may read (made by an older version, or by hand) is tightened. */
export function tightenDir(dir: string): void {
  if (existsSync(dir)) tighten(dir, 0o700);
}

/** Creates the file 0600 if it does not exist yet (so SQLite's -wal and -shm files are 0600 too). */
export function privateFile(file: string): void {
  try {
    closeSync(openSync(file, 'wx', 0o600));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    tighten(file, 0o600);
  }
}

function tighten(path: string, mode: number): void {
  try {
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, mode);
  } catch {
    // Not ours to change (another owner): leave it, the operator chose it.
  }
}
