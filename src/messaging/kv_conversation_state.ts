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
import { keyBytesOf, kvBudgetsOf } from "../store/kv/limits.ts";
import { listValues } from "./kv_conversation_records.ts";
import { isMemberState, setOwn } from "./rules.ts";

/** Creates the ports that create and load conversations on an open Deno KV handle. */
export function createKvConversationState(
  kv: Deno.Kv,
): Pick<ConversationStore, "create" | "load" | "unfinished"> {
  return {
    async create(info, members) {
      const id = info.id;
      const budgets = kvBudgetsOf(kv);
      const absent = { key: keys.conversationKey(id), versionstamp: null };
      // The conversation's own record comes last: until it lands, its member rows are rows
      // of no conversation, which every reader skips (and an erasure removes), and a
      // creation started again writes them anew.
      const last = {
        mutations: 2,
        keyBytes: 2 * keyBytesOf(id),
        bytes: 2 * keyBytesOf(id) + 2 * JSON.stringify(info).length + 200,
      };
      const groups: [string, MemberState][][] = [[]];
      let cost = { ...last };
      for (const entry of Object.entries(members)) {
        const keyBytes = keyBytesOf(id, entry[0]) + keyBytesOf(entry[0], id);
        const bytes = keyBytes + 300;
        if (
          groups.at(-1)!.length > 0 &&
          (cost.mutations + 2 > budgets.mutations || cost.keyBytes + keyBytes > budgets.keyBytes ||
            cost.bytes + bytes > budgets.bytes)
        ) {
          groups.push([]);
          cost = { ...last };
        }
        groups.at(-1)!.push(entry);
        cost.mutations += 2;
        cost.keyBytes += keyBytes;
        cost.bytes += bytes;
      }
      const existing = async () => {
        const value = (await kv.get<ConversationInfo>(keys.conversationKey(id))).value;
        if (value) return { created: false, info: value };
        throw new Error(`Cannot create conversation "${id}"`);
      };
      for (const [i, group] of groups.entries()) {
        // Each commit checks that the conversation does not exist yet: rows of a conversation
        // another creation finished are never overwritten.
        const op = kv.atomic().check(absent);
        for (const [user, member] of group) {
          op.set(keys.conversationMemberKey(id, user), member);
          op.set(keys.userConversationKey(user, id), { at: info.createdAt });
        }
        if (i === groups.length - 1) {
          op.set(keys.conversationKey(id), info)
            .set(keys.conversationHeadKey(id), { seq: 0, at: info.createdAt } satisfies Head);
        }
        if (!(await op.commit()).ok) return await existing();
      }
      return { created: true, info };
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
