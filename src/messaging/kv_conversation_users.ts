/**
 * What the Deno KV conversation store keeps per user beside conversations: blocks (both
 * ways) and the structures the user's credentials last carried; and the erasure of a
 * user from the conversations they were in.
 */

import { deleteAll, retryPause } from "../store/kv/_commit.ts";
import { MAX_BYTES, MAX_CHECKS } from "../store/kv/limits.ts";
import * as keys from "../store/keys.ts";
import type {
  ConversationInfo,
  ConversationStore,
  FanoutJob,
  Head,
  MessageRecord,
} from "./conversation_store.ts";
import { listValues, messageBytes } from "./kv_conversation_records.ts";

/** Attempts of an erasure commit that keeps losing races with the conversation's actor. */
const ERASE_ATTEMPTS = 20;
/** Messages marked per commit: each one is checked (KV: 100 checks). */
const MARK_BATCH = Math.min(50, MAX_CHECKS);

/** Creates the block, structure and erasure ports on an open Deno KV handle. */
export function createKvConversationUsers(kv: Deno.Kv): Pick<
  ConversationStore,
  | "setBlock"
  | "isBlocked"
  | "blocksOf"
  | "blockersOf"
  | "rememberStructures"
  | "structuresOf"
  | "eraseMember"
  | "markAuthorErased"
  | "forgetUser"
> {
  async function eraseMember(id: string, user: string): Promise<boolean> {
    const own = [
      keys.conversationMemberKey(id, user),
      keys.userConversationKey(user, id),
      keys.conversationUnreadKey(id, user),
    ];
    for (let attempt = 0; attempt < ERASE_ATTEMPTS; attempt++) {
      const [info, head, job] = await kv.getMany<[ConversationInfo, Head, FanoutJob]>([
        keys.conversationKey(id),
        keys.conversationHeadKey(id),
        keys.conversationJobKey(id),
      ]);
      if (!info.value || !head.value) {
        // No conversation (or a half-created one): only stray records of the user remain.
        await deleteAll(kv, own);
        return false;
      }
      if (job.value) {
        // A fan-out covers the members as they were: let the actor finish it first.
        await retryPause(attempt, 50);
        continue;
      }
      const member = info.value.members.includes(user);
      const creator = info.value.createdBy === user && !info.value.creatorErased;
      const op = kv.atomic()
        .check(head, job)
        // Rewritten as it is: its new versionstamp makes a live actor reload.
        .set(keys.conversationHeadKey(id), head.value);
      if (member || creator) {
        op.set(
          keys.conversationKey(id),
          {
            ...info.value,
            members: info.value.members.filter((m) => m !== user),
            // As an erased author's messages are, but the id itself goes: a conversation's
            // creator is shown to every member and has no other use.
            ...(creator ? { createdBy: "", creatorErased: true as const } : {}),
          } satisfies ConversationInfo,
        );
      }
      for (const key of own) op.delete(key);
      if ((await op.commit()).ok) return member;
      await retryPause(attempt);
    }
    throw new Error(`Cannot remove a member of conversation "${id}": it kept changing`);
  }

  /** Marks `batch` (entries as read) in one commit; false when one of them changed. */
  async function mark(batch: Deno.KvEntry<MessageRecord>[]): Promise<boolean> {
    const op = kv.atomic();
    for (const e of batch) op.check(e).set(e.key, { ...e.value, authorErased: true });
    return (await op.commit()).ok;
  }

  async function markAuthorErased(id: string, user: string): Promise<number> {
    let marked = 0;
    let batch: Deno.KvEntry<MessageRecord>[] = [];
    let bytes = 0;
    const flush = async () => {
      for (let attempt = 0; batch.length > 0; attempt++) {
        if (await mark(batch)) break;
        if (attempt >= ERASE_ATTEMPTS) {
          throw new Error(`Cannot mark the messages of conversation "${id}": they kept changing`);
        }
        // An owner deleted or the actor rewrote one meanwhile: mark them as they are now.
        const fresh = await kv.getMany<MessageRecord[]>(batch.map((e) => e.key));
        batch = fresh.filter((e): e is Deno.KvEntry<MessageRecord> =>
          e.value !== null && !e.value.authorErased
        );
        await retryPause(attempt);
      }
      marked += batch.length;
      batch = [];
      bytes = 0;
    };
    const iter = kv.list<MessageRecord>({ prefix: keys.messagePrefix(id) }, { batchSize: 500 });
    for await (const e of iter) {
      if (e.value.from !== user || e.value.authorErased) continue;
      const size = messageBytes(e.value);
      if (batch.length >= MARK_BATCH || bytes + size > MAX_BYTES) await flush();
      batch.push(e);
      bytes += size;
    }
    await flush();
    const clientIds: Deno.KvKey[] = [];
    for await (const e of kv.list({ prefix: keys.messageClientPrefix(id, user) })) {
      clientIds.push(e.key);
    }
    await deleteAll(kv, clientIds);
    return marked;
  }

  async function forgetUser(user: string): Promise<void> {
    const doomed: Deno.KvKey[] = [keys.userStructuresKey(user)];
    for (const e of await listValues(kv, keys.blockPrefix(user))) {
      doomed.push(e.key, keys.blockedByKey(e.key[2] as string, user));
    }
    for (const e of await listValues(kv, keys.blockedByPrefix(user))) {
      doomed.push(e.key, keys.blockKey(e.key[2] as string, user));
    }
    await deleteAll(kv, doomed);
  }

  return {
    async setBlock(blocker, blocked, on, now) {
      const entry = await kv.get(keys.blockKey(blocker, blocked));
      if ((entry.value !== null) === on) return false;
      const op = kv.atomic().check(entry);
      if (on) {
        op.set(keys.blockKey(blocker, blocked), { at: now });
        op.set(keys.blockedByKey(blocked, blocker), { at: now });
      } else {
        op.delete(keys.blockKey(blocker, blocked));
        op.delete(keys.blockedByKey(blocked, blocker));
      }
      // A concurrent identical change won the race: the end state is the one asked for.
      return (await op.commit()).ok;
    },

    async isBlocked(blocker, blocked) {
      return (await kv.get(keys.blockKey(blocker, blocked))).value !== null;
    },

    async blocksOf(user) {
      return (await listValues(kv, keys.blockPrefix(user))).map((e) => e.key[2] as string);
    },

    async blockersOf(user) {
      return (await listValues(kv, keys.blockedByPrefix(user))).map((e) => e.key[2] as string);
    },

    async rememberStructures(user, structures) {
      await kv.set(keys.userStructuresKey(user), structures);
    },

    async structuresOf(user) {
      return (await kv.get<string[]>(keys.userStructuresKey(user))).value ?? undefined;
    },

    eraseMember,
    markAuthorErased,
    forgetUser,
  };
}
