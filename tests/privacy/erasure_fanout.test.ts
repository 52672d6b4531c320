/**
 * An erasure that meets an unfinished fan-out: the fan-out resolved its audience before the
 * erasure, so it would write the erased user's item after it. The erasure waits for the
 * fan-outs under way, then erases what they wrote.
 */

import assert from "node:assert/strict";
import type { Store } from "../../src/store/store.ts";
import { envelope, eventually, SERVICE_KEY, startServer } from "../_support/server.ts";

const VICTIM = "erased-during-fanout";

/** Every key of the database with a string part containing `user`. */
async function keysNaming(kv: Deno.Kv, user: string): Promise<Deno.KvKey[]> {
  const out: Deno.KvKey[] = [];
  for await (const e of kv.list({ prefix: [] })) {
    if (e.key.some((part) => typeof part === "string" && part.includes(user))) out.push(e.key);
  }
  return out;
}

Deno.test("an erasure during a fan-out to the user waits for it and leaves none of its items", async () => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/relais.kv`;
  // The fan-out job is durable once the publish is answered; its run waits for the gate,
  // opened once the erasure asks which fan-outs are unfinished (or once it answered).
  let open!: () => void;
  const gate = new Promise<void>((resolve) => open = resolve);
  let asked!: () => void;
  const erasureAsked = new Promise<void>((resolve) => asked = resolve);
  let store!: Store;
  const server = await startServer({ RELAIS_KV_PATH: kvPath, RELAIS_OUTBOX_DIR: `${dir}/outbox` }, {
    adapt(deps) {
      store = deps.store;
      return {
        ...deps,
        store: {
          ...deps.store,
          runFanout: async (...args) => {
            await gate;
            return await store.runFanout(...args);
          },
          unfinishedFanouts: async () => {
            const ids = await store.unfinishedFanouts();
            if (ids.length > 0) asked();
            return ids;
          },
        },
      };
    },
  });
  const kv = await Deno.openKv(kvPath);
  try {
    const targets = [...Array.from({ length: 1199 }, (_, i) => `reader-${i}`), VICTIM];
    const e = envelope(targets);
    const id = (e.metadata as { id: string }).id;
    assert.equal((await server.publish(e)).status, 202);
    assert.deepEqual(await store.unfinishedFanouts(), [id], "a job, not one commit");

    const erasing = server.request(`/v1/users/${VICTIM}`, {
      method: "DELETE",
      apiKey: SERVICE_KEY,
    });
    await Promise.race([erasing, erasureAsked]);
    open();
    const erased = await erasing;
    assert.equal(erased.status, 200, JSON.stringify(erased.body));
    await eventually(
      async () => (await store.unfinishedFanouts()).length === 0 || undefined,
      10_000,
      "the fan-out to end",
    );
    assert.deepEqual(
      await keysNaming(kv, VICTIM),
      [["seq", VICTIM]],
      "only the stream's last seq names the erased user",
    );
    const status = await server.request(`/v1/events/${id}`, { apiKey: SERVICE_KEY });
    assert.equal(status.body.targeted, 1200);
    assert.equal((status.body.pending_users as string[]).includes(VICTIM), false);
  } finally {
    open();
    kv.close();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
