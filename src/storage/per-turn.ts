/**
 * Group commit: what arrives in one event-loop turn goes to `flush` together (one transaction, one
 * fsync), and each caller gets its own item's answer, or the batch's error.
 */
export function perTurn<T, R = void>(flush: (items: T[]) => Promise<R[] | void>): (item: T) => Promise<R> {
  let queue: Array<{ item: T; resolve: (r: R) => void; reject: (e: unknown) => void }> = [];
  return (item) =>
    new Promise<R>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      if (queue.length > 1) return;
      setImmediate(() => {
        const batch = queue;
        queue = [];
        flush(batch.map((b) => b.item)).then(
          (answers) => batch.forEach((b, i) => b.resolve((answers ? answers[i] : undefined) as R)),
          (e: unknown) => batch.forEach((b) => b.reject(e)),
        );
      });
    });
}
