/** The preferences cache: reads from memory while fresh, writes through it forget at once. */

import assert from "node:assert/strict";
import { DEFAULT_PREFERENCES } from "../../src/preferences/preferences.ts";
import { createKvPreferences } from "../../src/preferences/kv_preferences.ts";
import { withPreferencesCache } from "../../src/preferences/preferences_cache.ts";
import type { PreferencesStore } from "../../src/preferences/preferences_store.ts";

Deno.test("preferences cache: a batch reads the store once, and a change shows at once", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const inner = createKvPreferences(kv);
    let reads = 0;
    const counted: PreferencesStore = {
      ...inner,
      getMany: (users) => {
        reads += users.length;
        return inner.getMany(users);
      },
    };
    const cached = withPreferencesCache(counted);
    const users = ["camille", "yanis", "constructor"];
    assert.deepEqual(await cached.getMany(users), [undefined, undefined, undefined]);
    assert.deepEqual(await cached.getMany(users), [undefined, undefined, undefined]);
    assert.equal(reads, 3, "the second batch came from memory");
    await cached.update("yanis", (p) => ({ ...(p ?? DEFAULT_PREFERENCES), enabled: false }));
    const [, yanis] = await cached.getMany(users);
    assert.equal(yanis?.enabled, false);
    assert.equal(reads, 4, "only the changed user was read again");
    assert.equal(await cached.delete("yanis"), true);
    assert.equal(await cached.get("yanis"), undefined);
  } finally {
    kv.close();
  }
});
