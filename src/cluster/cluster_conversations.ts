/**
 * Conversation actors across the cluster: each conversation has one owner node, the
 * holder of its lease, which alone runs its actor; a request that arrives on another
 * node is forwarded to the owner over the bus and answered from there.
 *
 * - `submit` and `typing` run on the local actor when this node owns the conversation
 *   (taking the lease when nobody holds it), else go to the owner with the bus RPC (the
 *   trace stays behind). An owner that does not answer (it died, or left the cluster) is
 *   looked up once more: when the lease moved, the request is sent to the new owner
 *   (this node, often, once the dead node's lease lapsed); when it did not, the caller
 *   gets `unavailable`, as from a local actor that does not answer. A node that received
 *   a request but no longer owns the conversation says so, and the caller asks again. A
 *   send without `client_id` is given a resend key first, so that asking again never
 *   stores it twice.
 * - `blockChanged` reaches the live actor on every node: here at once, elsewhere through
 *   the bus, ahead of any request this node forwards afterwards (one stream, in order).
 * - `resumeUnfinished` resumes the fan-outs of the conversations this node owns or can
 *   take; the others are resumed by their owners' live actors. The cluster's janitor
 *   calls it with the conversations it saw unfinished twice, so that a fan-out whose
 *   owner died goes on without waiting for the next request.
 *
 * @module
 */

import type { Registry } from "../../actors/registry.ts";
import { AppError } from "../errors.ts";
import type { ConversationActors, ConversationRequest } from "../messaging/conversation_actors.ts";
import type { ConversationStore, OpResult } from "../messaging/conversation_store.ts";
import type { Bus, BusMessage } from "./bus.ts";
import { type BusRpc, NodeUnreachableError } from "./bus_rpc.ts";
import type { Owner, Ownership } from "./ownership.ts";

/** The bus topic of block changes. */
export const BLOCKS_TOPIC = "conversation:blocks";
/** The RPC method of a forwarded `submit`. */
export const SUBMIT_METHOD = "conversation.submit";
/** The RPC method of a forwarded `typing`. */
export const TYPING_METHOD = "conversation.typing";

/** Dependencies of {@linkcode createClusterConversations}. */
export interface ClusterConversationsDeps {
  /** This node's conversation actors. */
  local: ConversationActors;
  /** The ownership of kind `conversation`. */
  ownership: Ownership;
  rpc: BusRpc;
  bus: Bus;
  /** Where the conversations with an unfinished fan-out are listed. */
  store: Pick<ConversationStore, "unfinished">;
  /** Where this node's conversation actors live (spawning one resumes its fan-out). */
  registry: Pick<Registry, "get">;
  /**
   * How long a forwarded request waits for the owner's answer, ms (default 35,000: a
   * little more than the owner's own wait for its actor).
   */
  forwardTimeoutMs?: number;
  onError(message: string, error: unknown): void;
}

/** The cluster's conversation actors, as this node reaches them. */
export interface ClusterConversations extends ConversationActors {
  /** Stops answering other nodes' requests and block changes. */
  close(): void;
}

/** What the owner answers to a forwarded request. */
type Reply = { result: OpResult } | { moved: string };

// Owners asked for one request at most: a moved conversation, then a dead owner.
const MAX_HOPS = 3;

const KINDS: ReadonlySet<string> = new Set([
  "send",
  "read",
  "edit",
  "delete",
  "add",
  "remove",
  "mute",
]);

const clip = (id: string) => (id.length > 100 ? `${id.slice(0, 100)}…` : id);

const unavailable = (message: string): OpResult => ({
  ok: false,
  error: { code: "unavailable", message },
});

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : undefined;
}

function malformed(what: string): AppError {
  return new AppError("invalid_request", `Malformed forwarded ${what}`);
}

function submitArgs(raw: unknown): { id: string; request: ConversationRequest } {
  const args = record(raw);
  const request = record(args?.request);
  if (
    typeof args?.id !== "string" || !request || typeof request.kind !== "string" ||
    !KINDS.has(request.kind) ||
    (request.resendKey !== undefined &&
      (typeof request.resendKey !== "string" || request.resendKey.length > 100))
  ) {
    throw malformed("request");
  }
  return { id: args.id, request: request as unknown as ConversationRequest };
}

function typingArgs(raw: unknown): { id: string; user: string } {
  const args = record(raw);
  if (typeof args?.id !== "string" || typeof args.user !== "string") throw malformed("typing");
  return { id: args.id, user: args.user };
}

/** The owner's answer, or `undefined` when it is not one. */
function replyOf(raw: unknown): Reply | undefined {
  const reply = record(raw);
  if (typeof reply?.moved === "string") return { moved: reply.moved };
  const result = record(reply?.result);
  if (typeof result?.ok !== "boolean") return undefined;
  if (!result.ok && typeof record(result.error)?.code !== "string") return undefined;
  return { result: result as unknown as OpResult };
}

/**
 * Wraps this node's conversation actors into the cluster's, and starts answering the
 * requests other nodes forward here.
 *
 * @example
 * ```ts
 * const actors = createClusterConversations({
 *   local: defineConversationActors({ ... }),
 *   ownership: createOwnership({ leases, bus, kind: "conversation", onError }),
 *   rpc: createBusRpc(bus, { onError }),
 *   bus, store, registry, onError,
 * });
 * ```
 */
export function createClusterConversations(
  deps: ClusterConversationsDeps,
): ClusterConversations {
  const { local, ownership, rpc, bus, onError } = deps;
  const forwardTimeoutMs = deps.forwardTimeoutMs ?? 35_000;

  /** Runs `run` on this node's actor, the lease marked in use until it answers. */
  async function here(id: string, run: () => Promise<OpResult>): Promise<OpResult> {
    ownership.touch(id);
    try {
      return await run();
    } finally {
      ownership.touch(id);
    }
  }

  /** Who owns `id`, or the answer to give when that cannot be known now. */
  async function ownerOf(id: string): Promise<Owner | OpResult> {
    try {
      return await ownership.owner(id);
    } catch (error) {
      if (!(error instanceof AppError)) {
        onError(`Cannot find the owner of conversation "${clip(id)}"`, error);
      }
      return unavailable(
        error instanceof AppError
          ? error.message
          : "The conversation's owner is unknown; try again",
      );
    }
  }

  /** Runs a request here when this node owns `id`, else on the owner. */
  async function route(
    id: string,
    method: string,
    args: unknown,
    run: () => Promise<OpResult>,
  ): Promise<OpResult> {
    let silent: string | undefined;
    for (let hop = 0; hop < MAX_HOPS; hop++) {
      const where = await ownerOf(id);
      if ("ok" in where) return where;
      if (where.local) return here(id, run);
      // The node that did not answer still holds the lease: it is alive, only slow, and
      // may yet do what was asked; sending it again would not help.
      if (where.node === silent) break;
      let answer: unknown;
      try {
        answer = await rpc.call(where.node, method, args, { timeoutMs: forwardTimeoutMs });
      } catch (error) {
        // Errors the owner threw (`not_found`…) are the caller's, as they are locally.
        if (!(error instanceof NodeUnreachableError)) throw error;
        ownership.forget(id);
        if (silent !== undefined) break;
        silent = where.node;
        continue;
      }
      const reply = replyOf(answer);
      if (!reply) return unavailable("The conversation's owner gave no usable answer; try again");
      if ("result" in reply) return reply.result;
      ownership.forget(id);
    }
    return unavailable("The conversation's owner did not answer; try again");
  }

  /** Answers a request forwarded here: run it when this node owns `id`, else say who does. */
  async function serve(id: string, run: () => Promise<OpResult>): Promise<Reply> {
    const where = await ownerOf(id);
    if ("ok" in where) return { result: where };
    if (!where.local) return { moved: where.node };
    return { result: await here(id, run) };
  }

  function onBlocks(message: BusMessage) {
    if (message.from === bus.node) return; // told at once when it was sent
    let m: Record<string, unknown> | undefined;
    try {
      m = record(JSON.parse(message.data));
    } catch { /* reported below */ }
    if (
      typeof m?.id !== "string" || typeof m.blocker !== "string" ||
      typeof m.blocked !== "string" || typeof m.on !== "boolean"
    ) {
      onError("A malformed block change came over the bus", new Error(message.data.slice(0, 200)));
      return;
    }
    local.blockChanged(m.id, m.blocker, m.blocked, m.on);
  }

  const stops = [
    rpc.handle(SUBMIT_METHOD, (raw) => {
      const { id, request } = submitArgs(raw);
      return serve(id, () => local.submit(id, request));
    }),
    rpc.handle(TYPING_METHOD, (raw) => {
      const { id, user } = typingArgs(raw);
      return serve(id, () => local.typing(id, user));
    }),
    bus.subscribe(BLOCKS_TOPIC, onBlocks),
  ];

  return {
    submit(id, given, trace) {
      // A send without `client_id` gets a key of its own before it is first tried, so
      // trying it again on the next owner (the last one died before answering, perhaps
      // after storing it) stores it once.
      const request = given.kind === "send" && given.clientId === undefined
        ? { ...given, resendKey: crypto.randomUUID() }
        : given;
      return route(id, SUBMIT_METHOD, { id, request }, () => local.submit(id, request, trace));
    },
    typing: (id, user) => route(id, TYPING_METHOD, { id, user }, () => local.typing(id, user)),
    blockChanged(id, blocker, blocked, on) {
      local.blockChanged(id, blocker, blocked, on);
      bus.publish(BLOCKS_TOPIC, JSON.stringify({ id, blocker, blocked, on })).catch((error) =>
        onError(`Cannot tell the other nodes of a block in conversation "${clip(id)}"`, error)
      );
    },
    async resumeUnfinished(only) {
      const ids = only ?? await deps.store.unfinished();
      let resumed = 0;
      await Promise.all(ids.map(async (id) => {
        try {
          const where = await ownership.owner(id);
          // Held elsewhere: the owner's live actor finishes it.
          if (!where.local) return;
          ownership.touch(id);
          await deps.registry.get("conversation", id);
          resumed++;
        } catch (error) {
          onError(`Cannot resume conversation "${clip(id)}"`, error);
        }
      }));
      return resumed;
    },
    close() {
      for (const stop of stops) stop();
    },
  };
}
