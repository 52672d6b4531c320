/**
 * What the conversation actor remembers and hears: its context, input, limits and events,
 * the requests it queues, and what it pushes to members after a commit.
 */

import type {
  Attachment,
  Batch,
  Caller,
  CommitOutput,
  ConversationState,
  MemberRole,
  OpResult,
} from "../src/messaging/conversation_store.ts";

/** Version of the context shape, stored with inspected snapshots. */
export const CONVERSATION_MACHINE_VERSION = 2;

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
    /**
     * Given by the node that forwards a send made without `clientId`, so that its own
     * retries of it (its owner died before answering) store it once; never shown.
     */
    resendKey?: string;
    attachments?: Attachment[];
  }
  | { kind: "read"; requestId: string; user: string; seq: number }
  | { kind: "edit"; requestId: string; by: string; seq: number; text: string }
  | { kind: "delete"; requestId: string; by: string; seq: number }
  | { kind: "add"; requestId: string; by: Caller; users: { user: string; role: MemberRole }[] }
  | { kind: "remove"; requestId: string; by: Caller; user: string }
  | { kind: "mute"; requestId: string; user: string; muted: boolean };

/**
 * What the conversation actor remembers: the conversation's state as the store holds it
 * (members and blocks are keyed by user id: read them with `own`, never `members[user]`,
 * which answers for `constructor` too; `job` is a fan-out a crash interrupted, resumed
 * before anything else), plus its requests in flight.
 */
export interface ConversationContext extends ConversationState {
  version: number;
  id: string;
  /** Requests waiting for a commit, in arrival order. */
  queue: ConversationOp[];
  /** The batch being committed and the requests it answers. */
  batch?: Batch;
  inflight: string[];
  /** Requests answered without a commit when the batch was taken. */
  answered: { requestId: string; result: OpResult }[];
  /** Members typing, with when their typing was last broadcast (epoch ms; read with `own`). */
  typing: Record<string, number>;
  /**
   * Requests received so far: the idle check passivates an actor whose count did not move
   * since the previous check (one timer per idle period, not one per commit).
   */
  activity: number;
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
  | { type: "blocks.changed"; blocker: string; blocked: string; on: boolean }
  /** Raised every `idleMs`: `seen` is the activity count when it was raised. */
  | { type: "idle.check"; seen: number };

/** What the `deliver` effect pushes to members after a commit. */
export interface DeliverParams {
  conversation: string;
  output: CommitOutput;
  members: string[];
  blocks: Record<string, string[]>;
}
