/** Erasure of a user's deliveries on Deno KV. */

import * as keys from "../keys.ts";
import type { Erased, ErasureStore, StreamItem } from "../store.ts";
import { deleteAll } from "./_commit.ts";

/** Creates the erasure port on an open Deno KV handle. */
export function createKvErasureStore(kv: Deno.Kv): ErasureStore {
  async function keysOf(prefix: Deno.KvKey): Promise<Deno.KvKey[]> {
    const out: Deno.KvKey[] = [];
    for await (const e of kv.list({ prefix }, { batchSize: 500 })) out.push(e.key);
    return out;
  }

  async function eraseUser(user: string): Promise<Erased> {
    const stream: Deno.KvKey[] = [];
    const targets: Deno.KvKey[] = [];
    for await (const e of kv.list<StreamItem>({ prefix: keys.streamPrefix(user) })) {
      stream.push(e.key);
      targets.push(keys.targetKey(e.value.id, user));
    }
    const pending = await keysOf(keys.pendingPrefix(user));
    const rest = [
      ...await keysOf(keys.byIdPrefix(user)),
      ...await keysOf(keys.unreadPrefix(user)),
      ...await keysOf(keys.collapsePrefix(user)),
      ...await keysOf(keys.mailDigestUserPrefix(user)),
      ...await keysOf(keys.mailDigestDuePrefix(user)),
    ];
    // The stored last seq stays: a seq never names two items, and the user's devices may
    // still hold positions in the erased stream (a later item goes above them).
    await deleteAll(kv, [...pending, ...targets, ...rest, ...stream]);
    return { streamItems: stream.length, pendingAcks: pending.length };
  }

  return { eraseUser };
}
