/**
 * The Deno KV adapter of the conversation store, assembled from its parts:
 * `kv_conversation_state.ts` (creating and loading a conversation),
 * `kv_conversation_commit.ts` (the batch commit and its fan-out's resumption, over
 * `kv_conversation_fanout.ts`), `kv_conversation_views.ts` (the reads a user's views
 * need), and `kv_conversation_users.ts` (blocks and structures), which share the record
 * helpers of `kv_conversation_records.ts`.
 *
 * Every commit checks the conversation's head versionstamp: a second writer is detected,
 * never interleaved (see `kv_conversation_commit.ts`).
 */

import type { ConversationStore } from "./conversation_store.ts";
import { createKvConversationCommit } from "./kv_conversation_commit.ts";
import { createKvConversationState } from "./kv_conversation_state.ts";
import { createKvConversationUsers } from "./kv_conversation_users.ts";
import { createKvConversationViews } from "./kv_conversation_views.ts";

/** Creates the conversation store on an open Deno KV handle. */
export function createKvConversationStore(kv: Deno.Kv): ConversationStore {
  return {
    ...createKvConversationState(kv),
    ...createKvConversationCommit(kv),
    ...createKvConversationViews(kv),
    ...createKvConversationUsers(kv),
  };
}
