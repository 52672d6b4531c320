/**
 * Preferences kept in memory for a short while: every NOTIFICATION fan-out reads each
 * target's, a batch at a time, and most users never change them. See
 * `src/read_cache.ts` for what is trusted and for how long.
 */

import { createReadCache, type ReadCacheOptions } from "../read_cache.ts";
import type { Preferences } from "./preferences.ts";
import type { PreferencesStore } from "./preferences_store.ts";

/** Wraps `store` so that `get` and `getMany` answer from memory while fresh. */
export function withPreferencesCache(
  store: PreferencesStore,
  options: ReadCacheOptions = {},
): PreferencesStore {
  const cache = createReadCache<Preferences>(options);
  return {
    get: (user) => cache.get(user, (one) => store.get(one)),
    getMany: (users) => cache.getMany(users, (many) => store.getMany(many)),
    put: (user, prefs) => cache.writing(user, () => store.put(user, prefs)),
    update: (user, change) => cache.writing(user, () => store.update(user, change)),
    delete: (user) => cache.writing(user, () => store.delete(user)),
  };
}
