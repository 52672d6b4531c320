/**
 * Directory entries kept in memory for a short while.
 *
 * Every connection reads its user's entry (memberships), every `USER` audience reads all
 * its targets' (to report unknown ones) and every `STRUCTURE`, `GROUP`... audience lists
 * its members: a 10,000-user audience would be a thousand reads of the store per publish.
 * See `src/read_cache.ts` for what is trusted and for how long.
 */

import { createReadCache, type ReadCacheOptions } from "../read_cache.ts";
import { GET_MANY } from "../store/kv/limits.ts";
import { createBatchedReads } from "./batched_reads.ts";
import type { Dimension, Directory, DirectoryEntry } from "./directory.ts";

/** Member lists longer than this are read from the directory every time. */
const MAX_CACHED_MEMBERS = 20_000;
/** Ids handed to a `members` visitor at a time. */
const MEMBER_PAGE = 1_000;

/** Options of {@linkcode withEntryCache}. */
export interface EntryCacheOptions extends ReadCacheOptions {
  /** Told of every write through the cache, once it is done (to tell other nodes). */
  onWrite?(id: string): void;
}

/** A directory read through the cache. */
export interface CachedDirectory extends Directory {
  /** Forgets these users' entries, written elsewhere, and every member list. */
  forget(ids: readonly string[]): void;
}

/**
 * Wraps `directory` so that `get`, `getMany` and `members` answer from memory while
 * fresh. Entries missing from memory that concurrent callers ask for in the same turn
 * (many publishes or connections at once) are read together, a store read of up to ten
 * at a time. Any write forgets every member list: it may move its user in or out of any.
 */
export function withEntryCache(
  directory: Directory,
  options: EntryCacheOptions = {},
): CachedDirectory {
  const cache = createReadCache<DirectoryEntry>(options);
  // Ten keys is what one `getMany` reads on every database the store runs on.
  const read = createBatchedReads<DirectoryEntry>((ids) => directory.getMany(ids), {
    maxBatch: GET_MANY,
  });
  const lists = createReadCache<string[]>({ ...options, maxEntries: 1_000 });
  const writing = <R>(id: string, write: () => Promise<R>) => {
    lists.clear();
    return cache.writing(id, async () => {
      try {
        return await write();
      } finally {
        lists.clear();
        options.onWrite?.(id);
      }
    });
  };

  /** Every member of one value, or `undefined` when there are too many to keep. */
  async function allMembers(dim: Dimension, value: string): Promise<string[] | undefined> {
    const all: string[] = [];
    let tooMany = false;
    await directory.members(dim, value, (page) => {
      all.push(...page);
      if (all.length <= MAX_CACHED_MEMBERS) return;
      tooMany = true;
      return false;
    });
    return tooMany ? undefined : all;
  }

  return {
    put: (entry) => writing(entry.id, () => directory.put(entry)),
    update: (id, change) => writing(id, () => directory.update(id, change)),
    delete: (id) => writing(id, () => directory.delete(id)),
    get: (id) => cache.get(id, async (one) => (await read([one]))[0]),
    getMany: (ids) => cache.getMany(ids, read),
    forget(ids) {
      cache.forget(ids);
      lists.clear();
    },
    async members(dim, value, visit) {
      const ids = await lists.get(`${dim}\u0000${value}`, () => allMembers(dim, value));
      if (ids === undefined) return await directory.members(dim, value, visit);
      for (let i = 0; i < ids.length; i += MEMBER_PAGE) {
        if (visit(ids.slice(i, i + MEMBER_PAGE)) === false) return;
      }
    },
  };
}
