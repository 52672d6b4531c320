/** A KV handle that counts its atomic commits (and the failed ones), for tests. */

/**
 * Wraps `kv`: every atomic commit is counted, runs `beforeCommit(n)` first (`n` counts
 * from 0), and is counted as failed when a check fails.
 */
export function countingKv(
  kv: Deno.Kv,
  beforeCommit?: (n: number) => Promise<unknown> | unknown,
) {
  const counts = { commits: 0, failed: 0 };
  const proxy = new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const commit = op.commit.bind(op);
          op.commit = async () => {
            const n = counts.commits++;
            await beforeCommit?.(n);
            const res = await commit();
            if (!res.ok) counts.failed++;
            return res;
          };
          return op;
        };
      }
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { kv: proxy, counts };
}
