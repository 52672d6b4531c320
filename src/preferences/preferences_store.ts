/** The preferences store port; the Deno KV adapter is `kv_preferences.ts`. */

import type { Preferences } from "./preferences.ts";

/** Where preferences are kept. */
export interface PreferencesStore {
  /** A user's preferences; `undefined` when never set. */
  get(user: string): Promise<Preferences | undefined>;
  /** Preferences of several users, in the same order. */
  getMany(users: string[]): Promise<(Preferences | undefined)[]>;
  put(user: string, prefs: Preferences): Promise<void>;
  /**
   * Changes a user's preferences from their current value, retrying on a concurrent
   * change; returns the new value.
   */
  update(
    user: string,
    change: (current: Preferences | undefined) => Preferences,
  ): Promise<Preferences>;
  /** Forgets a user's preferences; false if there were none. */
  delete(user: string): Promise<boolean>;
}
