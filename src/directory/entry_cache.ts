/**
 * Directory entries kept in memory for a short while.
 *
 * Every connection reads its user's entry (memberships) and every `USER` audience reads
 * all its targets' (to report unknown ones): a 10,000-user list would be a thousand reads
 * of the store per publish. See `src/read_cache.ts` for what is trusted and for how long.
 */

import { createReadCache, type ReadCacheOptions } from "../read_cache.ts";
import type { Directory, DirectoryEntry } from "./directory.ts";

/** Wraps `directory` so that `get` and `getMany` answer from memory while fresh. */
export function withEntryCache(directory: Directory, options: ReadCacheOptions = {}): Directory {
  const cache = createReadCache<DirectoryEntry>(options);
  return {
    put: (entry) => cache.writing(entry.id, () => directory.put(entry)),
    update: (id, change) => cache.writing(id, () => directory.update(id, change)),
    delete: (id) => cache.writing(id, () => directory.delete(id)),
    get: (id) => cache.get(id, (one) => directory.get(one)),
    getMany: (ids) => cache.getMany(ids, (many) => directory.getMany(many)),
    members: (dim, value, visit) => directory.members(dim, value, visit),
  };
}
