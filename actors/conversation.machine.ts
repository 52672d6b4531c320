/**
 * The conversation actor: one per active conversation, the single writer of its messages.
 *
 * Requests (send, read, edit, delete, membership, mute) queue up in the actor and are
 * committed in order, one batch at a time: consecutive sends and reads share one commit,
 * so a burst costs a few KV commits instead of one each, and the sequence has one total
 * order without KV contention. A request is answered only after its batch is committed;
 * then the batch's stream items are pushed to the members. Typing is ephemeral and
 * throttled. KV stays the source of truth: the actor is rebuilt from it, and resumes a
 * fan-out a crash interrupted before anything else.
 */

import { assign, enqueueActions, fromPromise, setup } from "xstate";
import type {
  Attachment,
  Batch,
  Caller,
  CommitInput,
  CommitOutput,
  ConversationInfo,
  ConversationState,
  FanoutJob,
  Head,
  MemberRole,
  MemberState,
  OpError,
  OpResult,
} from "../src/messaging/conversation_store.ts";
import { blocks, checkMessage, notMember, own, peerOf } from "../src/messaging/rules.ts";

/** Version of the context shape, stored with inspected snapshots. */
export const CONVERSATION_MACHINE_VERSION = 1;

/** Limits a conversation actor enforces. */
export interface ConversationLimits {
  maxMembers: number;
  maxMessageLength: number;
  /** A member's typing is broadcast at most once per this interval. */
  typingMs: number;
  /** An actor with nothing to do stops after this long. */
  idleMs: number;
  /** Sends committed together, at most. */
  maxBatch: number;
}

/** A request to the conversation; `requestId` routes the answer back to the caller. */
export type ConversationOp =
  | {
    kind: "send";
    requestId: string;
    from: string;
    text: string;
    clientId?: string;
    attachments?: Attachment[];
  }
  | { kind: "read"; requestId: string; user: string; seq: number }
  | { kind: "edit"; requestId: string; by: string; seq: number; text: string }
  | { kind: "delete"; requestId: string; by: string; seq: number }
  | { kind: "add"; requestId: string; by: Caller; users: { user: string; role: MemberRole }[] }
  | { kind: "remove"; requestId: string; by: Caller; user: string }
  | { kind: "mute"; requestId: string; user: string; muted: boolean };

/** What the conversation actor remembers. */
export interface ConversationContext {
  version: number;
  id: string;
  info: ConversationInfo;
  head: Head;
  headVersion: string;
  /**
   * Members with their role and read position. Keys are user ids: read them with `own`,
   * never `members[user]`, which answers for `constructor` too.
   */
  members: Record<string, MemberState>;
  /** For each member, the users they blocked (read with `own` too). */
  blocks: Record<string, string[]>;
  /** A fan-out a crash interrupted, resumed before anything else. */
  job?: FanoutJob;
  /** Requests waiting for a commit, in arrival order. */
  queue: ConversationOp[];
  /** The batch being committed and the requests it answers. */
  batch?: Batch;
  inflight: string[];
  /** Requests answered without a commit when the batch was taken. */
  answered: { requestId: string; result: OpResult }[];
  /** Members typing, with when their typing was last broadcast (epoch ms; read with `own`). */
  typing: Record<string, number>;
  limits: ConversationLimits;
}

/** What the registry gives a new conversation actor. */
export interface ConversationInput {
  state: ConversationState;
  limits: ConversationLimits;
}

/** Events the conversation actor understands. */
export type ConversationEvent =
  | { type: "op.submit"; op: ConversationOp }
  | { type: "typing"; requestId: string; user: string }
  | { type: "typing.expire"; user: string }
  | { type: "blocks.changed"; blocker: string; blocked: string; on: boolean };

/** What the `deliver` effect pushes to members after a commit. */
export interface DeliverParams {
  conversation: string;
  output: CommitOutput;
  members: string[];
  blocks: Record<string, string[]>;
}

/** Largest total text committed in one batch, in characters (KV commits are 800 KB). */
const MAX_BATCH_CHARS = 150_000;
/** Requests waiting at most; more are refused so a flood cannot grow memory without bound. */
export const MAX_QUEUE = 5_000;

const fail = (error: OpError): OpResult => ({ ok: false, error });

function isOwner(context: ConversationContext, caller: Caller): boolean {
  return "service" in caller || own(context.members, caller.user)?.role === "owner";
}

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

const stateOf = (c: ConversationContext): CommitInput["state"] => ({
  info: c.info,
  head: c.head,
  headVersion: c.headVersion,
  members: c.members,
  blocks: c.blocks,
});

/** The conversation machine; effects are named and provided at wiring time. */
export const conversationMachine = setup({
  types: {
    context: {} as ConversationContext,
    events: {} as ConversationEvent,
    input: {} as ConversationInput,
  },
  actions: {
    /** Answers one request. */
    reply: (_, _params: { requestId: string; result: OpResult }) => {},
    /** Pushes a commit's stream items and receipts to the members' connections. */
    deliver: (_, _params: DeliverParams) => {},
    /** Tells members that `user` is typing. */
    broadcastTyping: (_, _params: { conversation: string; user: string; to: string[] }) => {},
    /** Asks the registry to stop this idle actor. */
    passivate: (_, _params: { id: string }) => {},
    /** Reports a failed commit or load. */
    reportError: (_, _params: { id: string; error: unknown }) => {},
    enqueue: assign({
      queue: ({ context, event }) =>
        event.type === "op.submit" ? [...context.queue, event.op] : context.queue,
    }),
    take: assign(({ context }) => {
      const { batch, inflight, answered, queue } = takeBatch(context);
      return { batch, inflight, answered, queue };
    }),
    applyCommit: assign(({ context }, output: CommitOutput) => {
      const typing = { ...context.typing };
      for (const d of output.deliveries) if (d.op === "new") delete typing[d.message.from];
      return {
        head: output.head,
        headVersion: output.headVersion,
        members: output.members,
        info: output.info,
        blocks: Object.fromEntries(
          Object.entries({ ...context.blocks, ...output.blocks })
            .filter(([user, list]) => own(output.members, user) && list.length > 0),
        ),
        typing,
      };
    }),
  },
  actors: {
    commit: fromPromise<CommitOutput, CommitInput>(() => {
      throw new Error("The commit effect is not provided");
    }),
    resume: fromPromise<CommitOutput, ConversationState>(() => {
      throw new Error("The resume effect is not provided");
    }),
    load: fromPromise<ConversationState | undefined, { id: string }>(() => {
      throw new Error("The load effect is not provided");
    }),
  },
  guards: {
    hasQueue: ({ context }) => context.queue.length > 0,
    hasJob: ({ context }) => context.job !== undefined,
    hasBatch: ({ context }) => context.batch !== undefined,
  },
  delays: {
    idle: ({ context }) => context.limits.idleMs,
    retry: 1000,
  },
}).createMachine({
  id: "conversation",
  context: ({ input }) => ({
    version: CONVERSATION_MACHINE_VERSION,
    id: input.state.info.id,
    info: input.state.info,
    head: input.state.head,
    headVersion: input.state.headVersion,
    members: input.state.members,
    blocks: input.state.blocks,
    ...(input.state.job ? { job: input.state.job } : {}),
    queue: [],
    inflight: [],
    answered: [],
    typing: {},
    limits: input.limits,
  }),
  on: {
    "op.submit": [
      {
        guard: ({ context }) => context.queue.length >= MAX_QUEUE,
        actions: {
          type: "reply",
          params: ({ event }) => ({
            requestId: event.op.requestId,
            result: fail({ code: "unavailable", message: "The conversation is busy; try again" }),
          }),
        },
      },
      { actions: "enqueue" },
    ],
    typing: {
      actions: enqueueActions(({ context, event, enqueue }) => {
        if (event.type !== "typing") return;
        const { user, requestId } = event;
        if (!own(context.members, user)) {
          enqueue({
            type: "reply",
            params: { requestId, result: fail(notMember(context.id, user)) },
          });
          return;
        }
        enqueue({ type: "reply", params: { requestId, result: { ok: true } } });
        const now = Date.now();
        if (now - (own(context.typing, user) ?? 0) < context.limits.typingMs) return;
        enqueue({
          type: "broadcastTyping",
          params: {
            conversation: context.id,
            user,
            to: Object.keys(context.members).filter((m) =>
              m !== user && !blocks(context.blocks, m, user)
            ),
          },
        });
        enqueue.assign({ typing: { ...context.typing, [user]: now } });
        enqueue.cancel(`typing:${user}`);
        enqueue.raise({ type: "typing.expire", user }, {
          delay: context.limits.typingMs * 2,
          id: `typing:${user}`,
        });
      }),
    },
    "typing.expire": {
      actions: assign({
        typing: ({ context, event }) => {
          const { [event.user]: _, ...rest } = context.typing;
          return rest;
        },
      }),
    },
    "blocks.changed": {
      actions: assign({
        blocks: ({ context, event }) => {
          if (!own(context.members, event.blocker)) return context.blocks;
          const list = (own(context.blocks, event.blocker) ?? []).filter((u) =>
            u !== event.blocked
          );
          return { ...context.blocks, [event.blocker]: event.on ? [...list, event.blocked] : list };
        },
      }),
    },
  },
  initial: "starting",
  states: {
    starting: {
      always: [{ guard: "hasJob", target: "resuming" }, { target: "ready" }],
    },
    resuming: {
      invoke: {
        src: "resume",
        input: ({ context }) => ({ ...stateOf(context), job: context.job }),
        onDone: {
          target: "ready",
          actions: [
            { type: "applyCommit", params: ({ event }) => event.output },
            assign({ job: undefined }),
            {
              type: "deliver",
              params: ({ context, event }) => ({
                conversation: context.id,
                output: event.output,
                members: Object.keys(context.members),
                blocks: context.blocks,
              }),
            },
          ],
        },
        onError: {
          target: "reloading",
          actions: {
            type: "reportError",
            params: ({ context, event }) => ({ id: context.id, error: event.error }),
          },
        },
      },
    },
    ready: {
      always: { guard: "hasQueue", target: "taking" },
      after: {
        idle: { actions: { type: "passivate", params: ({ context }) => ({ id: context.id }) } },
      },
    },
    taking: {
      entry: [
        "take",
        enqueueActions(({ context, enqueue }) => {
          for (const a of context.answered) enqueue({ type: "reply", params: a });
          enqueue.assign({ answered: [] });
        }),
      ],
      always: [{ guard: "hasBatch", target: "committing" }, { target: "ready" }],
    },
    committing: {
      invoke: {
        src: "commit",
        input: ({ context }) => ({ state: stateOf(context), batch: context.batch! }),
        onDone: {
          target: "ready",
          actions: [
            { type: "applyCommit", params: ({ event }) => event.output },
            {
              type: "deliver",
              params: ({ context, event }) => ({
                conversation: context.id,
                output: event.output,
                members: Object.keys(context.members),
                blocks: context.blocks,
              }),
            },
            enqueueActions(({ context, event, enqueue }) => {
              for (const requestId of context.inflight) {
                const result = event.output.results[requestId] ?? { ok: true };
                enqueue({ type: "reply", params: { requestId, result } });
              }
              enqueue.assign({ batch: undefined, inflight: [] });
            }),
          ],
        },
        onError: {
          target: "reloading",
          actions: [
            {
              type: "reportError",
              params: ({ context, event }) => ({ id: context.id, error: event.error }),
            },
            // Resends with the same client_id are safe: what was committed is found again.
            enqueueActions(({ context, enqueue }) => {
              for (const requestId of context.inflight) {
                enqueue({
                  type: "reply",
                  params: {
                    requestId,
                    result: fail({
                      code: "unavailable",
                      message: "The conversation could not be saved; try again",
                    }),
                  },
                });
              }
              enqueue.assign({ batch: undefined, inflight: [] });
            }),
          ],
        },
      },
    },
    reloading: {
      invoke: {
        src: "load",
        input: ({ context }) => ({ id: context.id }),
        onDone: [
          {
            guard: ({ event }) => event.output === undefined,
            target: "gone",
          },
          {
            target: "starting",
            actions: assign(({ event }) => {
              const state = event.output!;
              return {
                info: state.info,
                head: state.head,
                headVersion: state.headVersion,
                members: state.members,
                blocks: state.blocks,
                job: state.job,
              };
            }),
          },
        ],
        onError: { target: "backoff" },
      },
    },
    backoff: {
      after: { retry: "reloading" },
    },
    gone: {
      entry: [
        enqueueActions(({ context, enqueue }) => {
          for (const op of context.queue) {
            enqueue({
              type: "reply",
              params: {
                requestId: op.requestId,
                result: fail({
                  code: "not_found",
                  message: `Unknown conversation "${context.id}"`,
                }),
              },
            });
          }
          enqueue.assign({ queue: [] });
        }),
        { type: "passivate", params: ({ context }) => ({ id: context.id }) },
      ],
    },
  },
});
