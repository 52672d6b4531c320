/**
 * Preferences kept in memory for a short while: every NOTIFICATION fan-out reads each
 * target's, a batch at a time, and most users never change them. See
 * `src/read_cache.ts` for what is trusted and for how long.
 */

import { createReadCache, type ReadCacheOptions } from "../read_cache.ts";
import type { Preferences } from "./preferences.ts";
import type { PreferencesStore } from "./preferences_store.ts";

/** Options of {@linkcode withPreferencesCache}. */
export interface PreferencesCacheOptions extends ReadCacheOptions {
  /** Told of every write through the cache, once it is done (to tell other nodes). */
  onWrite?(user: string): void;
}

/** Preferences read through the cache. */
export interface CachedPreferences extends PreferencesStore {
  /** Forgets these users' preferences, written elsewhere. */
  forget(users: readonly string[]): void;
}

/** Wraps `store` so that `get` and `getMany` answer from memory while fresh. */
export function withPreferencesCache(
  store: PreferencesStore,
  options: PreferencesCacheOptions = {},
): CachedPreferences {
  const cache = createReadCache<Preferences>(options);
  const writing = async <R>(user: string, write: () => Promise<R>) => {
    try {
      return await cache.writing(user, write);
    } finally {
      options.onWrite?.(user);
    }
  };
  return {
    get: (user) => cache.get(user, (one) => store.get(one)),
    getMany: (users) => cache.getMany(users, (many) => store.getMany(many)),
    put: (user, prefs) => writing(user, () => store.put(user, prefs)),
    update: (user, change) => writing(user, () => store.update(user, change)),
    delete: (user) => writing(user, () => store.delete(user)),
    forget: (users) => cache.forget(users),
  };
}
