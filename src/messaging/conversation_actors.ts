/**
 * Wires conversation actors to their effects: commits through the conversation store,
 * live pushes through the members' user actors and the hub, answers back to callers.
 */

import { createActor, fromPromise } from "xstate";
import {
  type ConversationEvent,
  type ConversationLimits,
  conversationMachine,
  type ConversationOp,
  type DeliverParams,
} from "../../actors/conversation.machine.ts";
import type { Registry } from "../../actors/registry.ts";
import type { LiveItem } from "../../actors/user.machine.ts";
import type { UserActors } from "../delivery/user_actors.ts";
import { AppError } from "../errors.ts";
import type { Hub } from "../realtime/hub.ts";
import { encodeFrame } from "../schemas/frames.ts";
import type { SeqSource } from "../store/store.ts";
import { endWhenSettled, type SpanContext, type Tracing } from "../tracing.ts";
import type { CommitInput, ConversationStore, OpResult } from "./conversation_store.ts";
import { encodeMsgFrame, messageView } from "./message_view.ts";
import { blocks } from "./rules.ts";

/** A request without its routing id (each kind of request keeps its own fields). */
export type ConversationRequest = ConversationOp extends infer O
  ? (O extends unknown ? Omit<O, "requestId"> : never)
  : never;

/** Talks to conversation actors and waits for their answers. */
export interface ConversationActors {
  /**
   * Queues a request in the conversation's actor and resolves with its answer; `trace` is
   * the caller's span when the request is traced (its commit and deliveries go under it).
   */
  submit(id: string, request: ConversationRequest, trace?: SpanContext): Promise<OpResult>;
  /** Tells the conversation that `user` is typing. */
  typing(id: string, user: string): Promise<OpResult>;
  /** Tells the live conversation actor that a member's block list changed. */
  blockChanged(id: string, blocker: string, blocked: string, on: boolean): void;
  /**
   * Resumes the fan-outs a previous process left unfinished (those of the conversations
   * `ids` only, when given).
   */
  resumeUnfinished(ids?: string[]): Promise<number>;
}

/** Dependencies of {@linkcode defineConversationActors}. */
export interface ConversationActorDeps {
  registry: Registry;
  store: ConversationStore;
  hub: Hub;
  limits: ConversationLimits;
  /** Hands stream items to the members' user actors (plain pushes skip the machine). */
  users: Pick<UserActors, "deliver">;
  /** How long a caller waits for an answer before getting `unavailable`. */
  answerTimeoutMs?: number;
  /** The live stream heads of this process: members with one take their seqs from it. */
  seqs?: SeqSource;
  onError(message: string, error: unknown): void;
  /** A `conversation.commit` span per traced message; none when traces are off. */
  tracing?: Tracing;
  /**
   * Sends a frame to every connection of `users` (default: this process's connections;
   * in cluster mode, every node's).
   */
  toUsers?(users: string[], frame: string): void;
}

/** Registers how conversation actors are spawned and returns the way to reach them. */
export function defineConversationActors(deps: ConversationActorDeps): ConversationActors {
  const { registry, store, hub, tracing } = deps;
  const timeoutMs = deps.answerTimeoutMs ?? 30_000;
  // Callers waiting for an answer, by request id, with the conversation they asked, when
  // they stop waiting and, when traced, the span their request's next step goes under. In
  // order of their deadlines: every request waits as long.
  const waiting = new Map<
    string,
    {
      conversation: string;
      resolve: (r: OpResult) => void;
      deadline: number;
      trace?: SpanContext;
    }
  >();
  // One timer for the earliest deadline, not one per request.
  let timer: ReturnType<typeof setTimeout> | undefined;

  /** Stops waiting for `requestId`, and for any deadline once nobody waits. */
  function forget(requestId: string) {
    const entry = waiting.get(requestId);
    waiting.delete(requestId);
    if (waiting.size === 0 && timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    return entry;
  }

  function answer(requestId: string, result: OpResult) {
    forget(requestId)?.resolve(result);
  }

  /** Answers the requests past their deadline, then waits for the next deadline. */
  function expire() {
    timer = undefined;
    const now = Date.now();
    for (const [requestId, entry] of waiting) {
      if (entry.deadline > now) {
        timer = setTimeout(expire, entry.deadline - now);
        return;
      }
      answer(requestId, {
        ok: false,
        error: { code: "unavailable", message: "The conversation did not answer in time" },
      });
    }
  }

  function toMembers(members: string[], frame: string) {
    if (deps.toUsers) return deps.toUsers(members, frame);
    for (const member of members) {
      for (const conn of hub.ofUser(member)) hub.send(conn.id, frame);
    }
  }

  /**
   * Commits a batch; each traced message in it gets a `conversation.commit` span, which its
   * deliveries then go under.
   */
  function commit(input: Omit<CommitInput, "seqs">) {
    const committed = store.commit({ ...input, seqs: deps.seqs });
    if (!tracing || input.batch.kind !== "messages") return committed;
    for (const { requestId } of input.batch.sends) {
      const entry = waiting.get(requestId);
      if (!entry?.trace) continue;
      const span = tracing.start("conversation.commit", entry.trace, {
        "relais.conversation": entry.conversation,
        "relais.batch": input.batch.sends.length,
      });
      entry.trace = span.spanContext();
      endWhenSettled(span, committed).catch(() => {});
    }
    return committed;
  }

  /** The commit span of each traced new message, by message seq. */
  function tracesOf(output: DeliverParams["output"]): Map<number, SpanContext> {
    const traces = new Map<number, SpanContext>();
    for (const [requestId, result] of Object.entries(output.results)) {
      const trace = waiting.get(requestId)?.trace;
      if (trace && "message" in result) traces.set(result.message.seq, trace);
    }
    return traces;
  }

  function deliver({ conversation, output, members, blocks: lists }: DeliverParams) {
    const traces = tracing && tracesOf(output);
    for (const delivery of output.deliveries) {
      const json = JSON.stringify(messageView(conversation, delivery.message));
      const trace = delivery.op === "new" ? traces?.get(delivery.message.seq) : undefined;
      for (const { user, item } of delivery.items) {
        const live: LiveItem = {
          item,
          frame: encodeMsgFrame(json, { seq: item.seq, op: item.msg.op }),
          acceptedAt: delivery.op === "new" ? delivery.message.at : Date.now(),
          // A conversation is never folded into a summary nor held for grouping.
          pace: "critical",
        };
        if (trace) live.trace = trace;
        deps.users.deliver(user, live);
      }
    }
    for (const { user, seq } of output.receipts) {
      const frame = encodeFrame({ type: "receipt", conversation, user, seq });
      toMembers(members.filter((m) => !blocks(lists, m, user)), frame);
    }
  }

  const machine = conversationMachine.provide({
    actions: {
      reply: (_, { requestId, result }) => answer(requestId, result),
      deliver: (_, params) => deliver(params),
      broadcastTyping: (_, { conversation, user, to }) =>
        toMembers(to, encodeFrame({ type: "typing", conversation, user })),
      passivate: (_, { id }) => {
        // Stopping from inside the actor's own transition is deferred to the next turn.
        setTimeout(() => {
          const actor = registry.peek("conversation", id);
          const snapshot = actor?.getSnapshot();
          if (!snapshot) return;
          const idle = snapshot.matches("ready") && snapshot.context.queue.length === 0;
          if (idle || snapshot.matches("gone")) registry.stop("conversation", id);
        }, 0);
      },
      reportError: (_, { id, error }) =>
        deps.onError(`Conversation "${id}" failed to commit`, error),
    },
    actors: {
      commit: fromPromise(({ input }) => commit(input)),
      resume: fromPromise(({ input }) => store.resume(input, { seqs: deps.seqs })),
      load: fromPromise(({ input }) => store.load(input.id)),
    },
  });

  registry.define("conversation", async (id) => {
    const state = await store.load(id);
    if (!state) throw new AppError("not_found", `Unknown conversation "${id.slice(0, 100)}"`);
    // The registry starts it once it listens for its failures.
    return createActor(machine, {
      id: `conversation:${id}`,
      input: { state, limits: deps.limits },
    });
  }, {
    // Rebuilt at once from the store, so a fan-out the failure interrupted resumes.
    restart: () => true,
    // The failed actor's queue went with it: its callers hear now rather than at the
    // timeout. A resend with the same client_id is safe, whatever was committed.
    onFailure(id) {
      for (const [requestId, entry] of waiting) {
        if (entry.conversation !== id) continue;
        answer(requestId, {
          ok: false,
          error: { code: "unavailable", message: "The conversation failed; try again" },
        });
      }
    },
  });

  /**
   * Sends to the live actor, spawning it if needed. `registry.get` is called before any
   * await, so requests from one caller reach the actor in the order they were made.
   */
  function send(id: string, event: ConversationEvent): Promise<void> {
    return registry.get("conversation", id).then((actor) => {
      if (actor.getSnapshot().status !== "active") return send(id, event);
      actor.send(event);
    });
  }

  function request(
    id: string,
    make: (requestId: string) => ConversationEvent,
    trace?: SpanContext,
  ) {
    const requestId = crypto.randomUUID();
    return new Promise<OpResult>((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      waiting.set(requestId, { conversation: id, resolve, deadline, ...(trace ? { trace } : {}) });
      timer ??= setTimeout(expire, timeoutMs);
      send(id, make(requestId)).catch((error) => {
        forget(requestId);
        reject(error);
      });
    });
  }

  return {
    submit: (id, req, trace) =>
      request(id, (requestId) => ({
        type: "op.submit",
        op: { ...req, requestId } as ConversationOp,
      }), trace),
    typing: (id, user) => request(id, (requestId) => ({ type: "typing", requestId, user })),
    blockChanged(id, blocker, blocked, on) {
      registry.peek("conversation", id)?.send(
        { type: "blocks.changed", blocker, blocked, on } satisfies ConversationEvent,
      );
    },
    async resumeUnfinished(only) {
      const ids = only ?? await store.unfinished();
      await Promise.all(
        ids.map((id) =>
          registry.get("conversation", id).catch((e) =>
            deps.onError(`Cannot resume conversation "${id}"`, e)
          )
        ),
      );
      return ids.length;
    },
  };
}
