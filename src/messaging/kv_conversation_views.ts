/**
 * The reads of the Deno KV conversation store that a user's views need: a conversation's
 * info, head and member record, message pages, the user's conversation list with unread
 * counts, and their contacts.
 */

import * as keys from "../store/keys.ts";
import type {
  ConversationInfo,
  ConversationListing,
  ConversationStore,
  Head,
  HistoryPage,
  MemberState,
  MessageRecord,
} from "./conversation_store.ts";
import { listValues } from "./kv_conversation_records.ts";
import { GET_MANY } from "../store/kv/limits.ts";
import { chunk, getManyEntries } from "../store/kv_reads.ts";
import { isMemberState } from "./rules.ts";

/** Creates the read ports of a user's views on an open Deno KV handle. */
export function createKvConversationViews(kv: Deno.Kv): Pick<
  ConversationStore,
  | "info"
  | "head"
  | "member"
  | "messages"
  | "history"
  | "listForUser"
  | "conversationsOf"
  | "contactsOf"
> {
  async function conversationsOf(user: string): Promise<string[]> {
    return (await listValues(kv, keys.userConversationPrefix(user))).map((e) => e.key[2] as string);
  }

  return {
    async info(id) {
      return (await kv.get<ConversationInfo>(keys.conversationKey(id))).value ?? undefined;
    },

    async head(id) {
      return (await kv.get<Head>(keys.conversationHeadKey(id))).value ?? undefined;
    },

    async member(id, user) {
      const value = (await kv.get<MemberState>(keys.conversationMemberKey(id, user))).value;
      return isMemberState(value) ? value : undefined;
    },

    async messages(id, seqs) {
      const entries = await getManyEntries<MessageRecord>(
        kv,
        seqs.map((s) => keys.messageKey(id, s)),
      );
      return entries.flatMap((e) => e.value ? [e.value] : []);
    },

    async history(id, { before, since, limit, exclude }): Promise<HistoryPage> {
      const start = keys.messageKey(id, Math.max(1, since));
      const selector = before === undefined
        ? { prefix: keys.messagePrefix(id), start }
        : { start, end: keys.messageKey(id, before) };
      const messages: MessageRecord[] = [];
      let more = false;
      if (before !== undefined && before <= Math.max(1, since)) return { messages };
      for await (const { value: m } of kv.list<MessageRecord>(selector, { reverse: true })) {
        if (exclude.includes(m.from)) continue;
        if (messages.length >= limit) {
          more = true;
          break;
        }
        messages.push(m);
      }
      return more ? { messages, next: messages.at(-1)!.seq } : { messages };
    },

    async listForUser(user) {
      const ids = await conversationsOf(user);
      const out: ConversationListing[] = [];
      await Promise.all(
        chunk(ids, GET_MANY).map(async (part) => {
          const [infos, heads, members, unread] = await Promise.all([
            kv.getMany<ConversationInfo[]>(part.map((id) => keys.conversationKey(id))),
            kv.getMany<Head[]>(part.map((id) => keys.conversationHeadKey(id))),
            kv.getMany<MemberState[]>(part.map((id) => keys.conversationMemberKey(id, user))),
            kv.getMany<Deno.KvU64[]>(part.map((id) => keys.conversationUnreadKey(id, user))),
          ]);
          part.forEach((_, i) => {
            const info = infos[i].value;
            const head = heads[i].value;
            const member = members[i].value;
            if (!info || !head || !isMemberState(member)) return;
            out.push({ info, head, member, unread: Number(unread[i].value?.value ?? 0n) });
          });
        }),
      );
      return out;
    },

    conversationsOf,

    async contactsOf(user) {
      const ids = await conversationsOf(user);
      const infos = await getManyEntries<ConversationInfo>(
        kv,
        ids.map((id) => keys.conversationKey(id)),
      );
      const contacts = new Set<string>();
      for (const e of infos) for (const m of e.value?.members ?? []) contacts.add(m);
      contacts.delete(user);
      return [...contacts];
    },
  };
}
