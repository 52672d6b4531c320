/** A KV handle that records the keys it reads, for tests. */

/**
 * Wraps `kv`: the first part of every key read with `get` or `getMany` is pushed to
 * `reads` (lists are not recorded).
 */
export function readingKv(kv: Deno.Kv): { kv: Deno.Kv; reads: string[] } {
  const reads: string[] = [];
  const proxy = new Proxy(kv, {
    get(target, prop) {
      const value = Reflect.get(target, prop);
      if (prop === "get" || prop === "getMany") {
        return (arg: Deno.KvKey | Deno.KvKey[], options?: unknown) => {
          const list = (prop === "get" ? [arg] : arg) as Deno.KvKey[];
          reads.push(...list.map((k) => String(k[0])));
          return value.call(target, arg, options);
        };
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { kv: proxy, reads };
}
