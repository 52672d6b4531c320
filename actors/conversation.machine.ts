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
 *
 * The machine's states and transitions are here; its context, events and limits are in
 * `conversation.context.ts`, and how queued requests become batches in
 * `conversation.batch.ts`.
 */

import { assign, enqueueActions, fromPromise, setup } from "xstate";
import type {
  CommitInput,
  CommitOutput,
  ConversationState,
  OpResult,
} from "../src/messaging/conversation_store.ts";
import { blocks, notMember, own } from "../src/messaging/rules.ts";
import { fail, MAX_QUEUE, takeBatch } from "./conversation.batch.ts";
import {
  CONVERSATION_MACHINE_VERSION,
  type ConversationContext,
  type ConversationEvent,
  type ConversationInput,
  type DeliverParams,
} from "./conversation.context.ts";

export {
  CONVERSATION_MACHINE_VERSION,
  type ConversationContext,
  type ConversationEvent,
  type ConversationInput,
  type ConversationLimits,
  type ConversationOp,
  type DeliverParams,
} from "./conversation.context.ts";

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
    enqueue: assign(({ context, event }) =>
      event.type === "op.submit"
        ? { queue: [...context.queue, event.op], activity: context.activity + 1 }
        : {}
    ),
    /** Checks again for idleness one idle period from now. */
    checkIdleLater: enqueueActions(({ context, enqueue }) => {
      enqueue.raise({ type: "idle.check", seen: context.activity }, {
        id: "idle",
        delay: context.limits.idleMs,
      });
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
    activity: 0,
    limits: input.limits,
  }),
  entry: "checkIdleLater",
  on: {
    // Busy, or not ready: look again later (`ready` passivates an actor left alone).
    "idle.check": { actions: "checkIdleLater" },
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
      on: {
        // No request since the last check, a whole idle period ago: done.
        "idle.check": [
          {
            guard: ({ context, event }) => event.seen === context.activity,
            actions: [
              { type: "passivate", params: ({ context }) => ({ id: context.id }) },
              "checkIdleLater",
            ],
          },
          { actions: "checkIdleLater" },
        ],
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
