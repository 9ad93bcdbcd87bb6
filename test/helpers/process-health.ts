import { readFileSync } from 'node:fs';

/** Resident memory of a process in MB, from /proc (Linux). */
export function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/**
 * Samples a process's resident memory every `everyMs` until stopped; `peak()` is the highest seen.
 * Hostile-peer tests bound how much one bad answer may cost.
 */
export function watchRss(pid: number, everyMs = 50): { peak(): number; stop(): number } {
  let peak = rssMb(pid);
  const t = setInterval(() => {
    try {
      peak = Math.max(peak, rssMb(pid));
    } catch {
      // the process ended: the test's own checks say so
    }
  }, everyMs);
  return {
    peak: () => peak,
    stop() {
      clearInterval(t);
      return peak;
    },
  };
}

/** Fails unless /healthz answers 200 within `ms`: the process is alive and its event loop free. */
export async function assertResponsive(baseUrl: string, ms = 1000): Promise<number> {
  const start = performance.now();
  const r = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(ms) });
  const took = performance.now() - start;
  if (r.status !== 200) throw new Error(`/healthz answered ${r.status}`);
  await r.body?.cancel();
  return took;
}
