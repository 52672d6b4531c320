/**
 * Users' ordered streams in memory: the last seq, a resume's read, one item's lookup,
 * and the ranges of seqs reserved for stream heads.
 */

import { isHidden } from "../items.ts";
import type { SeqRange, StreamItem, StreamRead, StreamStore } from "../store.ts";
import { copy, expired, type MemoryState, userState } from "./_state.ts";

/** The items of `stream` with a seq in `(after, last]`, in ascending order. */
function* inRange(stream: Map<number, StreamItem>, after: number, last: number) {
  // Seq by seq when the range is the shorter, else the whole stream (kept in order).
  if (last - after <= stream.size) {
    for (let seq = after + 1; seq <= last; seq++) {
      const item = stream.get(seq);
      if (item) yield item;
    }
    return;
  }
  for (const [seq, item] of stream) {
    if (seq > last) return;
    if (seq > after) yield item;
  }
}

/** Creates the stream port over `state`. */
export function createMemoryStreamStore(state: MemoryState): StreamStore {
  const lastSeq = (user: string) => state.users.get(user)?.seq ?? 0;

  function readStream(
    user: string,
    after: number,
    options: { limit: number; windowMs: number; now: number; upTo?: number },
  ): Promise<StreamRead> {
    const last = options.upTo ?? lastSeq(user);
    const read: StreamRead = { items: [], last, complete: after <= last };
    const stream = state.users.get(user)?.items;
    if (!read.complete || !stream) return Promise.resolve(read);
    // Gaps are seqs never written (ephemeral items kept in memory, reserved seqs unused).
    for (const item of inRange(stream, after, last)) {
      if (expired(item, options.now) || isHidden(item)) continue;
      else if (!item.durable && item.at + options.windowMs < options.now) read.complete = false;
      else if (read.items.length < options.limit) read.items.push(copy(item));
      else {
        read.complete = false;
        break;
      }
    }
    return Promise.resolve(read);
  }

  function reserveSeqs(user: string, count: number, after?: number): Promise<SeqRange | undefined> {
    if (!Number.isSafeInteger(count) || count < 1) {
      return Promise.reject(
        new RangeError(`Cannot reserve "${count}" seqs: expected a positive integer`),
      );
    }
    const found = userState(state, user);
    if (after !== undefined && found.seq > after) return Promise.resolve(undefined);
    // After an erasure the stored seq is gone: the head's range still goes on from `after`.
    const from = (after ?? found.seq) + 1;
    found.seq = from + count - 1;
    return Promise.resolve({ from, to: found.seq });
  }

  function findItem(user: string, id: string): Promise<StreamItem | undefined> {
    const found = state.users.get(user);
    const seq = found?.byId.get(id);
    return Promise.resolve(seq === undefined ? undefined : copy(found!.items.get(seq)));
  }

  return {
    lastSeq: (user) => Promise.resolve(lastSeq(user)),
    readStream,
    reserveSeqs,
    findItem,
  };
}
