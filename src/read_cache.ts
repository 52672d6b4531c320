/**
 * A read-through cache of records by id, for stores read far more often than written
 * (directory entries, preferences): a record read, or its absence, is trusted for
 * `ttlMs`, and a write through the cache forgets it at once. Only writes made elsewhere
 * (another process) take up to `ttlMs` to show.
 */

/**
 * How long a read is trusted. A single process makes every write itself, through the
 * cache, so a long time costs nothing but memory (bounded by `maxEntries`): reading the
 * 10,000 targets of a `USER` audience again costs the store about a quarter of a second.
 * The nodes of a cluster announce what they write, and each forgets what the others
 * wrote (`src/cluster/shared_caches.ts`); the TTL only bounds how long an announcement
 * the bus lost goes unnoticed.
 */
export const readCacheTtlMs = (shared: boolean): number => shared ? 60_000 : 300_000;

/** Options of {@linkcode createReadCache}. */
export interface ReadCacheOptions {
  /** How long a record read is trusted (default 10 s). */
  ttlMs?: number;
  /** Records kept at most; the oldest go first (default 50,000). */
  maxEntries?: number;
  now?: () => number;
}

/** The cache: reads through it, and writes that forget what they change. */
export interface ReadCache<T> {
  get(id: string, load: (id: string) => Promise<T | undefined>): Promise<T | undefined>;
  getMany(
    ids: string[],
    load: (ids: string[]) => Promise<(T | undefined)[]>,
  ): Promise<(T | undefined)[]>;
  /** Runs a write of `id`'s record, forgetting it before and after. */
  writing<R>(id: string, write: () => Promise<R>): Promise<R>;
  /** Forgets every record (a write that may change any of them). */
  clear(): void;
  /** Forgets these records (written elsewhere), and what reads in flight bring of them. */
  forget(ids: readonly string[]): void;
}

interface Cached<T> {
  value: T | undefined;
  until: number;
}

/** Creates an empty read cache. */
export function createReadCache<T>(options: ReadCacheOptions = {}): ReadCache<T> {
  const ttlMs = options.ttlMs ?? 10_000;
  const maxEntries = options.maxEntries ?? 50_000;
  const now = options.now ?? Date.now;
  // In insertion order, which is expiry order: the stale ones are at the front.
  const cache = new Map<string, Cached<T>>();
  // Counts writes: a read that a write overtook does not cache what it read.
  let writes = 0;

  function remember(id: string, value: T | undefined, at: number, since: number) {
    if (since !== writes) return;
    cache.delete(id);
    for (const [key, cached] of cache) {
      if (cached.until > at && cache.size < maxEntries) break;
      cache.delete(key);
    }
    cache.set(id, { value, until: at + ttlMs });
  }

  function fresh(id: string, at: number): Cached<T> | undefined {
    const cached = cache.get(id);
    return cached && cached.until > at ? cached : undefined;
  }

  return {
    async get(id, load) {
      const at = now();
      const cached = fresh(id, at);
      if (cached) return cached.value;
      const since = writes;
      const value = await load(id);
      remember(id, value, at, since);
      return value;
    },
    async getMany(ids, load) {
      const at = now();
      const out: (T | undefined)[] = new Array(ids.length);
      const missing: string[] = [];
      const where: number[] = [];
      ids.forEach((id, i) => {
        const cached = fresh(id, at);
        if (cached) out[i] = cached.value;
        else {
          missing.push(id);
          where.push(i);
        }
      });
      if (missing.length === 0) return out;
      const since = writes;
      const read = await load(missing);
      read.forEach((value, k) => {
        out[where[k]] = value;
        remember(missing[k], value, at, since);
      });
      return out;
    },
    clear() {
      writes++;
      cache.clear();
    },
    forget(ids) {
      writes++;
      for (const id of ids) cache.delete(id);
    },
    async writing(id, write) {
      writes++;
      cache.delete(id);
      try {
        return await write();
      } finally {
        writes++;
        cache.delete(id);
      }
    },
  };
}
