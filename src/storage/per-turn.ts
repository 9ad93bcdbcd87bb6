/**
 * Group commit: what arrives in one event-loop turn goes to `flush` together (one transaction, one
 * fsync), and each caller gets its own item's answer, or the batch's error. `gatherMs`: what arrives
 * within that many milliseconds of the first item goes too, for bookkeeping nobody waits on (an
 * outcome already delivered, a fetch's stamp), where fewer commits matter more than a few
 * milliseconds.
 */
export function perTurn<T, R = void>(flush: (items: T[]) => Promise<R[] | void>, opts: { gatherMs?: number } = {}): (item: T) => Promise<R> {
  let queue: Array<{ item: T; resolve: (r: R) => void; reject: (e: unknown) => void }> = [];
  const run = () => {
    const batch = queue;
    queue = [];
    flush(batch.map((b) => b.item)).then(
      (answers) => batch.forEach((b, i) => b.resolve((answers ? answers[i] : undefined) as R)),
      (e: unknown) => batch.forEach((b) => b.reject(e)),
    );
  };
  return (item) =>
    new Promise<R>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      if (queue.length > 1) return;
      if (opts.gatherMs) setTimeout(run, opts.gatherMs);
      else setImmediate(run);
    });
}
