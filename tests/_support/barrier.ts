/** A meeting point for concurrent callers in tests. */

/** A barrier for `parties` callers: each call resolves once all of them have called. */
export function barrier(parties: number): () => Promise<void> {
  let arrived = 0;
  const { promise, resolve } = Promise.withResolvers<void>();
  return () => {
    if (++arrived === parties) resolve();
    return promise;
  };
}
