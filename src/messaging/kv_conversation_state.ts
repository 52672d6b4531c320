/**
 * A conversation's state in the Deno KV conversation store: its creation, the state its
 * actor loads (info, head, members, their blocks, an unfinished fan-out job), and the
 * conversations whose fan-out a crash left unfinished.
 */

import * as keys from "../store/keys.ts";
import type {
  ConversationInfo,
  ConversationState,
  ConversationStore,
  FanoutJob,
  Head,
  MemberState,
} from "./conversation_store.ts";
import { listValues } from "./kv_conversation_records.ts";
import { isMemberState, setOwn } from "./rules.ts";

/** Creates the ports that create and load conversations on an open Deno KV handle. */
export function createKvConversationState(
  kv: Deno.Kv,
): Pick<ConversationStore, "create" | "load" | "unfinished"> {
  return {
    async create(info, members) {
      const id = info.id;
      const op = kv.atomic()
        .check({ key: keys.conversationKey(id), versionstamp: null })
        .set(keys.conversationKey(id), info)
        .set(keys.conversationHeadKey(id), { seq: 0, at: info.createdAt } satisfies Head);
      for (const [user, member] of Object.entries(members)) {
        op.set(keys.conversationMemberKey(id, user), member);
        op.set(keys.userConversationKey(user, id), { at: info.createdAt });
      }
      const res = await op.commit();
      if (res.ok) return { created: true, info };
      const existing = (await kv.get<ConversationInfo>(keys.conversationKey(id))).value;
      if (existing) return { created: false, info: existing };
      throw new Error(`Cannot create conversation "${id}"`);
    },

    async load(id) {
      const [info, head, job] = await kv.getMany<[ConversationInfo, Head, FanoutJob]>([
        keys.conversationKey(id),
        keys.conversationHeadKey(id),
        keys.conversationJobKey(id),
      ]);
      if (!info.value || !head.value || !head.versionstamp) return undefined;
      // Only the listed members count: a stray record (a read position an older version
      // saved for a non-member) neither makes its user a member nor breaks the actor.
      const listed = new Set(info.value.members);
      const members: Record<string, MemberState> = {};
      for (const e of await listValues<MemberState>(kv, keys.conversationMemberPrefix(id))) {
        const user = e.key[2] as string;
        if (listed.has(user) && isMemberState(e.value)) setOwn(members, user, e.value);
      }
      const blocks: Record<string, string[]> = {};
      await Promise.all(
        Object.keys(members).map(async (user) => {
          const list = (await listValues(kv, keys.blockPrefix(user))).map((e) =>
            e.key[2] as string
          );
          if (list.length > 0) setOwn(blocks, user, list);
        }),
      );
      return {
        info: info.value,
        head: head.value,
        headVersion: head.versionstamp,
        members,
        blocks,
        ...(job.value ? { job: job.value } : {}),
      } satisfies ConversationState;
    },

    async unfinished() {
      return (await listValues(kv, keys.conversationJobPrefix())).map((e) => e.key[1] as string);
    },
  };
}
