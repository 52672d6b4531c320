/**
 * The part of the Deno KV conversation store's batch commit that writes no stream item:
 * membership changes and mutes (`kv_conversation_commit.ts` dispatches to it).
 */

import * as keys from "../store/keys.ts";
import {
  type Batch,
  type CommitInput,
  type CommitOutput,
  HeadConflictError,
  type MemberState,
  type OpResult,
} from "./conversation_store.ts";
import { listValues } from "./kv_conversation_records.ts";
import { own, setOwn } from "./rules.ts";

/**
 * Commits a batch that touches no stream: members added or removed, or a member's mute. One
 * atomic commit checks the conversation's head versionstamp and throws
 * {@linkcode HeadConflictError} when a second writer moved it; an addition is answered with
 * the blocks of the members it adds.
 */
export async function commitMembership(
  kv: Deno.Kv,
  { state, batch }: {
    state: CommitInput["state"];
    batch: Extract<Batch, { kind: "members" | "mute" }>;
  },
): Promise<CommitOutput> {
  const id = state.info.id;
  const now = Date.now();
  const members = { ...state.members };
  const blocks: Record<string, string[]> = {};
  const op = kv.atomic().check({
    key: keys.conversationHeadKey(id),
    versionstamp: state.headVersion,
  }).set(keys.conversationHeadKey(id), state.head);
  let info = state.info;
  let result: OpResult;
  if (batch.kind === "members") {
    const added = batch.add.filter((a) => !own(members, a.user));
    for (const { user, role } of added) {
      const member: MemberState = {
        role,
        since: state.head.seq + 1,
        read: state.head.seq,
        muted: false,
        joinedAt: now,
      };
      setOwn(members, user, member);
      op.set(keys.conversationMemberKey(id, user), member);
      op.set(keys.userConversationKey(user, id), { at: now });
    }
    for (const user of batch.remove.filter((u) => own(members, u))) {
      delete members[user];
      op.delete(keys.conversationMemberKey(id, user));
      op.delete(keys.userConversationKey(user, id));
      op.delete(keys.conversationUnreadKey(id, user));
    }
    info = { ...info, members: Object.keys(members).sort() };
    op.set(keys.conversationKey(id), info);
    await Promise.all(added.map(async ({ user }) => {
      const list = (await listValues(kv, keys.blockPrefix(user))).map((e) => e.key[2] as string);
      setOwn(blocks, user, list);
    }));
    result = { ok: true, members: info.members };
  } else {
    const member = { ...own(members, batch.user)!, muted: batch.muted };
    setOwn(members, batch.user, member);
    op.set(keys.conversationMemberKey(id, batch.user), member);
    result = { ok: true, muted: batch.muted };
  }
  const res = await op.commit();
  if (!res.ok) throw new HeadConflictError(id);
  return {
    head: state.head,
    headVersion: res.versionstamp,
    members,
    info,
    blocks,
    results: { [batch.requestId]: result },
    deliveries: [],
    receipts: [],
  };
}
