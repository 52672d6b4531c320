/**
 * What the Deno KV conversation store keeps per user beside conversations: blocks (both
 * ways) and the structures the user's credentials last carried.
 */

import * as keys from "../store/keys.ts";
import type { ConversationStore } from "./conversation_store.ts";
import { listValues } from "./kv_conversation_records.ts";

/** Creates the block and structure ports on an open Deno KV handle. */
export function createKvConversationUsers(kv: Deno.Kv): Pick<
  ConversationStore,
  | "setBlock"
  | "isBlocked"
  | "blocksOf"
  | "blockersOf"
  | "rememberStructures"
  | "structuresOf"
> {
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
  };
}
