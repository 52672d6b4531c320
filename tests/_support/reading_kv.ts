/** KV handles that record or act around the reads they serve, for tests. */

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

/** The entries a `getMany` answers. */
type Entries = Deno.KvEntryMaybe<unknown>[];

/**
 * Wraps `kv`: every `getMany` goes through `hook`, given the keys asked and the real read
 * to run (or not), for tests that act around a read.
 */
export function hookedGetMany(
  kv: Deno.Kv,
  hook: (list: Deno.KvKey[], read: () => Promise<Entries>) => Promise<Entries>,
): Deno.Kv {
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "getMany") {
        return (list: Deno.KvKey[]) => hook(list, () => target.getMany(list));
      }
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
