/** Erasure and export of a user's deliveries on Deno KV. */

import * as keys from "../keys.ts";
import { getManyEntries } from "../kv_reads.ts";
import type {
  DeadLetter,
  Erased,
  ErasureStore,
  ExportedItem,
  StreamItem,
  TargetRecord,
} from "../store.ts";
import { deleteAll } from "./_commit.ts";

/** Creates the erasure port on an open Deno KV handle. */
export function createKvErasureStore(kv: Deno.Kv): ErasureStore {
  async function keysOf(prefix: Deno.KvKey): Promise<Deno.KvKey[]> {
    const out: Deno.KvKey[] = [];
    for await (const e of kv.list({ prefix }, { batchSize: 500 })) out.push(e.key);
    return out;
  }

  /** The user's dead letters: the log is ordered by time, so every letter is looked at. */
  async function deadLettersOf(user: string): Promise<Deno.KvKey[]> {
    const out: Deno.KvKey[] = [];
    const iter = kv.list<DeadLetter>({ prefix: keys.deadLetterPrefix() }, { batchSize: 500 });
    for await (const e of iter) if (e.key[2] === user) out.push(e.key);
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
      ...await deadLettersOf(user),
    ];
    // The stored last seq stays: a seq never names two items, and the user's devices may
    // still hold positions in the erased stream (a later item goes above them).
    await deleteAll(kv, [...pending, ...targets, ...rest, ...stream]);
    return { streamItems: stream.length, pendingAcks: pending.length };
  }

  async function exportItems(
    user: string,
    { after, limit }: { after: number; limit: number },
  ): Promise<ExportedItem[]> {
    const items: StreamItem[] = [];
    const iter = kv.list<StreamItem>({
      start: keys.streamKey(user, after + 1),
      end: keys.streamKey(user, Number.MAX_SAFE_INTEGER),
    }, { limit, batchSize: Math.min(limit, 500) });
    for await (const e of iter) items.push(e.value);
    const records = await getManyEntries<TargetRecord>(
      kv,
      items.map((item) => keys.targetKey(item.id, user)),
    );
    return items.map((item, i) => {
      const delivery = records[i].value;
      return delivery ? { item, delivery } : { item };
    });
  }

  return { eraseUser, exportItems };
}
