/** Users' ordered streams in memory: the last seq, a resume's read, one item's lookup. */

import { isHidden } from "../items.ts";
import type { StreamItem, StreamRead, StreamStore } from "../store.ts";
import { copy, expired, type MemoryState } from "./_state.ts";

/** Creates the stream port over `state`. */
export function createMemoryStreamStore(state: MemoryState): StreamStore {
  const lastSeq = (user: string) => state.users.get(user)?.seq ?? 0;

  function readStream(
    user: string,
    after: number,
    options: { limit: number; windowMs: number; now: number },
  ): Promise<StreamRead> {
    const last = lastSeq(user);
    const read: StreamRead = { items: [], last, complete: after <= last };
    const stream = state.users.get(user)?.items;
    // Every seq of the range is looked up: a missing one is an item the window dropped.
    for (let seq = after + 1; seq <= last; seq++) {
      const item = stream?.get(seq);
      if (!item) read.complete = false;
      else if (expired(item, options.now) || isHidden(item)) continue;
      else if (!item.durable && item.at + options.windowMs < options.now) read.complete = false;
      else if (read.items.length < options.limit) read.items.push(copy(item));
      else {
        read.complete = false;
        break;
      }
    }
    return Promise.resolve(read);
  }

  function findItem(user: string, id: string): Promise<StreamItem | undefined> {
    const found = state.users.get(user);
    const seq = found?.byId.get(id);
    return Promise.resolve(seq === undefined ? undefined : copy(found!.items.get(seq)));
  }

  return { lastSeq: (user) => Promise.resolve(lastSeq(user)), readStream, findItem };
}
