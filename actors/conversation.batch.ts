/**
 * The conversation actor's queue: how waiting requests become the next batch to commit.
 * Consecutive sends and reads share one commit; any other request is a batch of its own;
 * a request that fails its checks is answered at once, without a commit. Pure functions
 * of the context: the machine decides when a batch is taken.
 */

import type { Batch, Caller, OpError, OpResult } from "../src/messaging/conversation_store.ts";
import { blocks, checkMessage, notMember, own, peerOf } from "../src/messaging/rules.ts";
import type { ConversationContext, ConversationOp } from "./conversation.context.ts";

/** Largest total text committed in one batch, in characters (KV commits are 800 KB). */
const MAX_BATCH_CHARS = 150_000;
/** Requests waiting at most; more are refused so a flood cannot grow memory without bound. */
export const MAX_QUEUE = 5_000;

/** The answer refusing a request with `error`. */
export const fail = (error: OpError): OpResult => ({ ok: false, error });

function isOwner(context: ConversationContext, caller: Caller): boolean {
  return "service" in caller || own(context.members, caller.user)?.role === "owner";
}

/** Why a send is refused (not a member, invalid message, blocked by the peer), if it is. */
function checkSend(
  context: ConversationContext,
  op: Extract<ConversationOp, { kind: "send" }>,
): OpError | undefined {
  if (!own(context.members, op.from)) return notMember(context.id, op.from);
  const invalid = checkMessage(op.text, op.attachments, context.limits.maxMessageLength);
  if (invalid) return invalid;
  const peer = peerOf(context.info, op.from);
  if (peer && blocks(context.blocks, peer, op.from)) {
    return { code: "blocked", message: `User "${peer}" does not accept your messages` };
  }
  return undefined;
}

/** The state of one membership change, or the answer when it needs no commit. */
function membershipBatch(
  context: ConversationContext,
  op: Extract<ConversationOp, { kind: "add" | "remove" }>,
): Batch | OpResult {
  const { id } = context;
  if (context.info.kind === "direct") {
    return fail({ code: "conflict", message: "The members of a 1:1 conversation are fixed" });
  }
  const by = op.by;
  if ("user" in by && !own(context.members, by.user)) return fail(notMember(id, by.user));
  if (op.kind === "add") {
    if (!isOwner(context, by)) {
      return fail({ code: "forbidden", message: "Only an owner can add members" });
    }
    const added = op.users.filter((u, i) =>
      !own(context.members, u.user) && op.users.findIndex((o) => o.user === u.user) === i
    );
    const total = Object.keys(context.members).length + added.length;
    if (total > context.limits.maxMembers) {
      return fail({
        code: "conversation_full",
        message: `Conversation full: ${total} members, at most ${context.limits.maxMembers}`,
      });
    }
    if (added.length === 0) return { ok: true, members: context.info.members };
    return { kind: "members", requestId: op.requestId, add: added, remove: [] };
  }
  if (!own(context.members, op.user)) return fail(notMember(id, op.user));
  const self = "user" in by && by.user === op.user;
  if (!self && !isOwner(context, by)) {
    return fail({ code: "forbidden", message: "Only an owner can remove other members" });
  }
  return { kind: "members", requestId: op.requestId, add: [], remove: [op.user] };
}

/**
 * Takes the next batch off the queue: the leading run of sends and reads (one commit), or
 * one other request. Requests that fail their checks are answered at once.
 */
export function takeBatch(context: ConversationContext): {
  batch?: Batch;
  inflight: string[];
  answered: { requestId: string; result: OpResult }[];
  queue: ConversationOp[];
} {
  const queue = [...context.queue];
  const answered: { requestId: string; result: OpResult }[] = [];
  const first = queue[0];
  if (!first) return { inflight: [], answered, queue };

  if (first.kind === "send" || first.kind === "read") {
    const sends: Extract<Batch, { kind: "messages" }>["sends"] = [];
    const reads: Extract<Batch, { kind: "messages" }>["reads"] = [];
    let chars = 0;
    while (queue.length > 0) {
      const op = queue[0];
      if (op.kind !== "send" && op.kind !== "read") break;
      if (op.kind === "send") {
        if (sends.length >= context.limits.maxBatch) break;
        if (sends.length > 0 && chars + op.text.length > MAX_BATCH_CHARS) break;
      }
      queue.shift();
      if (op.kind === "read") {
        if (!own(context.members, op.user)) {
          answered.push({ requestId: op.requestId, result: fail(notMember(context.id, op.user)) });
        } else reads.push({ requestId: op.requestId, user: op.user, seq: op.seq });
        continue;
      }
      const error = checkSend(context, op);
      if (error) {
        answered.push({ requestId: op.requestId, result: fail(error) });
        continue;
      }
      chars += op.text.length;
      sends.push({
        requestId: op.requestId,
        from: op.from,
        text: op.text,
        ...(op.clientId !== undefined ? { clientId: op.clientId } : {}),
        ...(op.resendKey !== undefined ? { resendKey: op.resendKey } : {}),
        ...(op.attachments ? { attachments: op.attachments } : {}),
      });
    }
    const ids = [...sends, ...reads].map((s) => s.requestId);
    if (ids.length === 0) return { inflight: [], answered, queue };
    return { batch: { kind: "messages", sends, reads }, inflight: ids, answered, queue };
  }

  queue.shift();
  const one = (batch: Batch | OpResult) =>
    "kind" in batch
      ? { batch, inflight: [first.requestId], answered, queue }
      : { inflight: [], answered: [{ requestId: first.requestId, result: batch }], queue };
  switch (first.kind) {
    case "edit": {
      if (!own(context.members, first.by)) return one(fail(notMember(context.id, first.by)));
      const invalid = checkMessage(first.text, undefined, context.limits.maxMessageLength);
      if (invalid) return one(fail(invalid));
      return one({
        kind: "edit",
        requestId: first.requestId,
        by: first.by,
        seq: first.seq,
        text: first.text,
      });
    }
    case "delete": {
      const member = own(context.members, first.by);
      if (!member) return one(fail(notMember(context.id, first.by)));
      return one({
        kind: "delete",
        requestId: first.requestId,
        by: first.by,
        seq: first.seq,
        asOwner: member.role === "owner",
      });
    }
    case "add":
    case "remove":
      return one(membershipBatch(context, first));
    case "mute":
      if (!own(context.members, first.user)) return one(fail(notMember(context.id, first.user)));
      return one({
        kind: "mute",
        requestId: first.requestId,
        user: first.user,
        muted: first.muted,
      });
  }
}
