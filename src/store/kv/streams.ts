/**
 * Users' ordered streams on Deno KV: the last seq, a resume's read, one item's lookup,
 * and the ranges of seqs reserved for stream heads.
 */

import * as keys from "../keys.ts";
import { itemSeq } from "./_items.ts";
import type { SeqRange, StreamItem, StreamRead, StreamStore } from "../store.ts";
import { isHidden } from "../items.ts";
import { createGroupCommit, MAX_RETRIES, retryPause } from "./_commit.ts";

/** Creates the stream port on an open Deno KV handle. */
export function createKvStreamStore(kv: Deno.Kv): StreamStore {
  // Heads open by the thousand when clients reconnect together: their reservations share
  // commits (one check and one write each).
  const commitGrouped = createGroupCommit<true>(kv);

  async function lastSeq(user: string): Promise<number> {
    return (await kv.get<number>(keys.seqKey(user))).value ?? 0;
  }

  async function readStream(
    user: string,
    after: number,
    opts: { limit: number; windowMs: number; now: number; upTo?: number },
  ): Promise<StreamRead> {
    const last = opts.upTo ?? await lastSeq(user);
    if (after > last) return { items: [], last, complete: false };
    const items: StreamItem[] = [];
    let complete = true;
    // Gaps are seqs never written (ephemeral items kept in memory, reserved seqs unused).
    const iter = kv.list<StreamItem>({
      start: keys.streamKey(user, after + 1),
      end: keys.streamKey(user, last + 1),
    }, { batchSize: Math.min(opts.limit + 1, 500) });
    for await (const entry of iter) {
      const item = entry.value;
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
    return { items, last, complete };
  }

  async function reserveSeqs(
    user: string,
    count: number,
    after?: number,
  ): Promise<SeqRange | undefined> {
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new RangeError(`Cannot reserve "${count}" seqs: expected a positive integer`);
    }
    for (let retries = 0;; retries++) {
      const entry = await kv.get<number>(keys.seqKey(user));
      const stored = entry.value ?? 0;
      if (after !== undefined && stored > after) return undefined;
      // After an erasure the stored seq is gone: the head's range still goes on from `after`.
      const from = (after ?? stored) + 1;
      const to = from + count - 1;
      const key = keys.seqKey(user);
      const keyBytes = JSON.stringify(key).length * 2 + 16;
      const reserved = await commitGrouped({
        id: `reserve:${user}`,
        users: [user],
        cost: { checks: 1, mutations: 1, keyBytes: keyBytes * 2, bytes: keyBytes * 2 + 32 },
        build: (op) => {
          op.check(entry).set(key, to);
          return true;
        },
      });
      if (reserved) return { from, to };
      if (retries >= MAX_RETRIES) {
        throw new Error(`Cannot reserve seqs of user "${user}": keeps conflicting`);
      }
      await retryPause(retries);
    }
  }

  async function findItem(user: string, id: string): Promise<StreamItem | undefined> {
    const seq = await itemSeq(kv, user, id);
    if (seq === null) return undefined;
    return (await kv.get<StreamItem>(keys.streamKey(user, seq))).value ?? undefined;
  }

  return { lastSeq, readStream, reserveSeqs, findItem };
}
