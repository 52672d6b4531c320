/**
 * Directory entries kept in memory for a short while.
 *
 * Every connection reads its user's entry (memberships) and every `USER` audience reads
 * all its targets' (to report unknown ones): a 10,000-user list would be a thousand reads
 * of the store per publish. Entries read, and the absence of one, are trusted for `ttlMs`;
 * a write through this directory forgets the entry at once, so only writes made elsewhere
 * (another process) take up to `ttlMs` to show.
 */

import type { Directory, DirectoryEntry } from "./directory.ts";

/** Options of {@linkcode withEntryCache}. */
export interface EntryCacheOptions {
  /** How long a looked-up entry is trusted (default 10 s). */
  ttlMs?: number;
  /** Entries kept at most; the oldest go first (default 50,000). */
  maxEntries?: number;
  now?: () => number;
}

interface Cached {
  entry: DirectoryEntry | undefined;
  until: number;
}

/** Wraps `directory` so that `get` and `getMany` answer from memory while fresh. */
export function withEntryCache(directory: Directory, options: EntryCacheOptions = {}): Directory {
  const ttlMs = options.ttlMs ?? 10_000;
  const maxEntries = options.maxEntries ?? 50_000;
  const now = options.now ?? Date.now;
  // In insertion order, which is expiry order: the stale ones are at the front.
  const cache = new Map<string, Cached>();
  // Counts writes: a read that a write overtook does not cache what it read.
  let writes = 0;

  function remember(id: string, entry: DirectoryEntry | undefined, at: number, since: number) {
    if (since !== writes) return;
    cache.delete(id);
    for (const [key, cached] of cache) {
      if (cached.until > at && cache.size < maxEntries) break;
      cache.delete(key);
    }
    cache.set(id, { entry, until: at + ttlMs });
  }

  function fresh(id: string, at: number): Cached | undefined {
    const cached = cache.get(id);
    return cached && cached.until > at ? cached : undefined;
  }

  /** Runs a write of `id`'s entry, forgetting it before and after. */
  async function writing<T>(id: string, write: () => Promise<T>): Promise<T> {
    writes++;
    cache.delete(id);
    try {
      return await write();
    } finally {
      writes++;
      cache.delete(id);
    }
  }

  return {
    ...directory,
    put: (entry) => writing(entry.id, () => directory.put(entry)),
    update: (id, change) => writing(id, () => directory.update(id, change)),
    delete: (id) => writing(id, () => directory.delete(id)),
    async get(id) {
      const at = now();
      const cached = fresh(id, at);
      if (cached) return cached.entry;
      const since = writes;
      const entry = await directory.get(id);
      remember(id, entry, at, since);
      return entry;
    },
    async getMany(ids) {
      const at = now();
      const out: (DirectoryEntry | undefined)[] = new Array(ids.length);
      const missing: string[] = [];
      const where: number[] = [];
      ids.forEach((id, i) => {
        const cached = fresh(id, at);
        if (cached) out[i] = cached.entry;
        else {
          missing.push(id);
          where.push(i);
        }
      });
      if (missing.length === 0) return out;
      const since = writes;
      const read = await directory.getMany(missing);
      read.forEach((entry, k) => {
        out[where[k]] = entry;
        remember(missing[k], entry, at, since);
      });
      return out;
    },
    members: (dim, value, visit) => directory.members(dim, value, visit),
  };
}
