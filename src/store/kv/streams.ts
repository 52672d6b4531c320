/** Users' ordered streams on Deno KV: the last seq, a resume's read, one item's lookup. */

import * as keys from "../keys.ts";
import type { StreamItem, StreamRead, StreamStore } from "../store.ts";
import { isHidden } from "../items.ts";

/** Creates the stream port on an open Deno KV handle. */
export function createKvStreamStore(kv: Deno.Kv): StreamStore {
  async function lastSeq(user: string): Promise<number> {
    return (await kv.get<number>(keys.seqKey(user))).value ?? 0;
  }

  async function readStream(
    user: string,
    after: number,
    opts: { limit: number; windowMs: number; now: number },
  ): Promise<StreamRead> {
    const last = await lastSeq(user);
    if (after > last) return { items: [], last, complete: false };
    const items: StreamItem[] = [];
    let expected = after + 1;
    let complete = true;
    const iter = kv.list<StreamItem>({
      start: keys.streamKey(user, after + 1),
      end: keys.streamKey(user, last + 1),
    }, { batchSize: Math.min(opts.limit + 1, 500) });
    for await (const entry of iter) {
      const item = entry.value;
      if (item.seq !== expected) complete = false;
      expected = item.seq + 1;
      if (item.exp !== undefined && item.exp <= opts.now) continue;
      if (isHidden(item)) continue;
      if (!item.durable && item.at + opts.windowMs < opts.now) {
        complete = false;
        continue;
      }
      if (items.length >= opts.limit) {
        complete = false;
        break;
      }
      items.push(item);
    }
    if (complete && expected !== last + 1) complete = false;
    return { items, last, complete };
  }

  async function findItem(user: string, id: string): Promise<StreamItem | undefined> {
    const seq = (await kv.get<number>(keys.byIdKey(user, id))).value;
    if (seq === null) return undefined;
    return (await kv.get<StreamItem>(keys.streamKey(user, seq))).value ?? undefined;
  }

  return { lastSeq, readStream, findItem };
}
