/** The Deno KV adapter of the preferences store: one record per user. */

import * as keys from "../store/keys.ts";
import { getManyEntries } from "../store/kv_reads.ts";
import type { Preferences } from "./preferences.ts";
import type { PreferencesStore } from "./preferences_store.ts";

/** Creates the preferences store on an open Deno KV handle. */
export function createKvPreferences(kv: Deno.Kv): PreferencesStore {
  return {
    async get(user) {
      return (await kv.get<Preferences>(keys.preferencesKey(user))).value ?? undefined;
    },
    async getMany(users) {
      const entries = await getManyEntries<Preferences>(
        kv,
        users.map((u) => keys.preferencesKey(u)),
      );
      return entries.map((e) => e.value ?? undefined);
    },
    async put(user, prefs) {
      await kv.set(keys.preferencesKey(user), prefs);
    },
    async update(user, change) {
      for (let attempt = 0; attempt < 20; attempt++) {
        const current = await kv.get<Preferences>(keys.preferencesKey(user));
        const next = change(current.value ?? undefined);
        const res = await kv.atomic().check(current).set(keys.preferencesKey(user), next).commit();
        if (res.ok) return next;
      }
      throw new Error(`Preferences of user "${user}" keep changing`);
    },
    async delete(user) {
      const current = await kv.get(keys.preferencesKey(user));
      if (current.value === null) return false;
      await kv.delete(keys.preferencesKey(user));
      return true;
    },
  };
}
