/**
 * The fan-out of the Deno KV conversation store: a batch's own writes and its members'
 * stream items, in as few commits as KV's budgets allow.
 *
 * Every commit checks the conversation's head versionstamp: a second writer is detected,
 * never interleaved. Commits of different conversations go through one group commit, so
 * concurrent batches share a KV commit (KV commits one at a time), each keeping its own
 * checks: a conversation is the group's id (its writes never share a commit) and a member
 * on the stored path, whose last seq is checked and written, is one of its users.
 *
 * A member whose stream head is live in this process (`seqs`) gets their items at the seqs
 * the head hands out, reserved already: no read, check or write of their stored last seq,
 * so such members cost no check and many more of them share one commit. The others get
 * the seqs after their stored last seq, checked.
 */

import * as keys from "../store/keys.ts";
import type {
  ConversationState,
  FanoutEntry,
  FanoutJob,
  MessageItem,
} from "./conversation_store.ts";
import {
  type CommitCost,
  createVersionedGroupCommit,
  MAX_RETRIES,
  retryPause,
} from "../store/kv/_commit.ts";
import {
  keyBytesOf,
  MAX_BYTES,
  MAX_CHECKS,
  MAX_KEY_BYTES,
  MAX_MUTATIONS,
} from "../store/kv/limits.ts";
import { getManyEntries } from "../store/kv_reads.ts";
import { HeadConflictError } from "./conversation_store.ts";
import type { SeqSource } from "../store/store.ts";
import { countsUnread, own, receives } from "./rules.ts";

/** A batch's own mutations (messages, head, members…), carried by its first commit. */
export interface Accept {
  write(op: Deno.AtomicOperation): void;
  /** Checks `write` adds, if any. */
  checks?: number;
  /**
   * Whether one of those checks fails: asked when the commit did not land and the head
   * had not moved. The fan-out then throws {@linkcode StaleBatchError}.
   */
  stale?(): Promise<boolean>;
  mutations: number;
  /** Bytes of the keys it writes, an upper bound. */
  keyBytes: number;
  bytes: number;
}

/** Thrown when a batch's own checks failed its commit: the caller plans it again. */
export class StaleBatchError extends Error {
  constructor(conversation: string) {
    super(`The batch of conversation "${conversation}" no longer holds`);
    this.name = "StaleBatchError";
  }
}

/** A stream item written for a member. */
export interface Written {
  user: string;
  item: MessageItem;
}

/** Where a fan-out starts and what its first commit carries. */
export interface FanOutOptions {
  /** The first member (in sorted order) to write for. */
  offset: number;
  accept?: Accept;
  /** Whether a fan-out job is stored, to delete when done. */
  hasJob: boolean;
  seqs?: SeqSource;
}

/**
 * Writes the members' stream items of `entries` for conversation `id`; answers the head
 * versionstamp its commits were fenced with (the new one when `accept` moved the head)
 * and the items written. Throws {@linkcode HeadConflictError} when another writer moved
 * the head.
 */
export type FanOut = (
  id: string,
  state: Pick<ConversationState, "members" | "blocks" | "headVersion">,
  entries: FanoutEntry[],
  options: FanOutOptions,
) => Promise<{ headVersion: string; items: Written[] }>;

/**
 * Takes `count` seqs of `user`'s stream from its live head, in order. Answers `undefined`
 * when the user has no head, or when the head could not give them all (it closed, or could
 * not extend its range): those it gave are dropped and the member takes the stored path.
 */
async function takeSeqs(
  source: SeqSource,
  user: string,
  count: number,
): Promise<number[] | undefined> {
  const first = source.take(user);
  if (first === undefined) return undefined;
  const taking = [first];
  for (let i = 1; i < count; i++) {
    const next = source.take(user);
    if (next === undefined) break;
    taking.push(next);
  }
  const settled = await Promise.allSettled(taking);
  const seqs = settled.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
  if (seqs.length === count) return seqs;
  for (const seq of seqs) source.drop(user, seq);
  return undefined;
}

/** Creates the fan-out of conversations stored on `kv`, their commits grouped. */
export function createFanOut(kv: Deno.Kv): FanOut {
  const commitGrouped = createVersionedGroupCommit<Written[]>(kv);

  /**
   * With `seqs`, a member's seqs are taken from their live head before the commit that
   * writes them reads anything, and kept across its retries; if the fan-out fails, every
   * seq taken and not committed is dropped.
   */
  return async function fanOut(id, state, entries, options) {
    const users = Object.keys(state.members).sort();
    const items: Written[] = [];
    const source = options.seqs;
    // Seqs taken from live heads and not committed yet, in entry order, by member.
    const held = new Map<string, number[]>();
    let headVersion = state.headVersion;
    let offset = options.offset;
    let accept = options.accept;
    let jobExists = options.hasJob;
    const targeted = (user: string) =>
      entries.filter((e) => receives(user, own(state.members, user)!, state.blocks, e));
    const jobBytes = entries.length * 120 + 100;

    try {
      while (accept || offset < users.length) {
        // Pack as many members as the commit's budgets hold: a member on the stored path
        // costs a check and a seq write, one with a live head neither. The head check and
        // the job's write or delete come on top.
        const cost: CommitCost = {
          checks: 1 + (accept?.checks ?? 0),
          mutations: (accept?.mutations ?? 0) + 2,
          keyBytes: (accept?.keyBytes ?? 0) + 2 * keyBytesOf(id),
          bytes: (accept?.bytes ?? 0) + jobBytes,
        };
        const group: string[] = [];
        for (let i = offset; i < users.length; i++) {
          const user = users[i];
          const n = targeted(user).length;
          if (n > 0 && source && !held.has(user)) {
            const taken = await takeSeqs(source, user, n);
            if (taken) held.set(user, taken);
          }
          const check = n > 0 && !held.has(user) ? 1 : 0;
          const mutations = n === 0 ? 0 : 1 + check + n;
          // Items, and a checked last seq, are keyed by user; the unread count by both.
          const keyBytes = n === 0 ? 0 : (n + 2 * check) * keyBytesOf(user) + keyBytesOf(id, user);
          const size = n * (220 + user.length * 2) + 100;
          // A member that does not fit keeps the seqs it took for the next commit.
          const fits = cost.checks + check <= MAX_CHECKS &&
            cost.mutations + mutations <= MAX_MUTATIONS &&
            cost.keyBytes + keyBytes <= MAX_KEY_BYTES;
          if (n > 0 && !fits) break;
          if (n > 0 && cost.bytes + size > MAX_BYTES && group.length > 0) break;
          group.push(user);
          if (n > 0) {
            cost.checks += check;
            cost.mutations += mutations;
            cost.keyBytes += keyBytes;
            cost.bytes += size;
          }
        }
        const next = offset + group.length;
        const done = next >= users.length;
        const job: FanoutJob | undefined = done ? undefined : { entries, offset: next };
        const first = accept;

        let written: Written[] = [];
        for (let attempt = 0;; attempt++) {
          const active = group.filter((u) => targeted(u).length > 0);
          const unheaded = active.filter((u) => !held.has(u));
          const lasts = await getManyEntries<number>(kv, unheaded.map((u) => keys.seqKey(u)));
          // A head that opened (or began to) since the first take reserved its range above
          // what was just read: such a member takes from it instead, or this write could
          // land inside the head's range.
          if (source) {
            for (const user of unheaded) {
              const taken = await takeSeqs(source, user, targeted(user).length);
              if (taken) held.set(user, taken);
            }
          }
          const stored = unheaded.filter((u) => !held.has(u));
          const lastOf = new Map(
            unheaded.flatMap((u, i) => held.has(u) ? [] : [[u, lasts[i]] as const]),
          );
          const now = Date.now();
          const landed = await commitGrouped({
            id,
            // Members on the stored path check and write their last seq: a commit holding
            // two writes of one such member would let both pass the same check.
            users: stored,
            cost,
            // Built again if its group fails and it is retried alone.
            build(op) {
              op.check({ key: keys.conversationHeadKey(id), versionstamp: headVersion });
              // The batch's own writes go first: its unread resets come before the sums.
              first?.write(op);
              const out: Written[] = [];
              for (const user of active) {
                const taken = held.get(user);
                const last = lastOf.get(user);
                let seq = last?.value ?? 0;
                let unread = 0;
                if (last) op.check(last);
                targeted(user).forEach((entry, k) => {
                  seq = taken ? taken[k] : seq + 1;
                  const item: MessageItem = {
                    seq,
                    id: entry.itemId,
                    type: "MESSAGE",
                    durable: true,
                    ack: false,
                    at: now,
                    msg: { c: id, s: entry.seq, op: entry.op },
                  };
                  op.set(keys.streamKey(user, seq), item);
                  out.push({ user, item });
                  if (countsUnread(user, own(state.members, user)!, entry)) unread++;
                });
                if (!taken) op.set(keys.seqKey(user), seq);
                if (unread > 0) op.sum(keys.conversationUnreadKey(id, user), BigInt(unread));
              }
              if (job) op.set(keys.conversationJobKey(id), job);
              else if (jobExists) op.delete(keys.conversationJobKey(id));
              return out;
            },
          });
          if (landed) {
            written = landed.written;
            if (first) headVersion = landed.versionstamp;
            break;
          }
          const head = await kv.get(keys.conversationHeadKey(id));
          if (head.versionstamp !== headVersion) throw new HeadConflictError(id);
          if (first?.stale && await first.stale()) throw new StaleBatchError(id);
          // Another conversation or a publish moved one of these members' stream seq.
          if (attempt >= MAX_RETRIES) {
            throw new Error(`Fan-out of conversation "${id}" keeps conflicting`);
          }
          await retryPause(attempt, 4);
        }
        for (const user of group) held.delete(user);
        items.push(...written);
        jobExists = job !== undefined;
        accept = undefined;
        offset = next;
      }
    } finally {
      // Whatever was taken and not committed goes back to its head.
      for (const [user, seqs] of held) for (const seq of seqs) source?.drop(user, seq);
    }
    return { headVersion, items };
  };
}
