/**
 * The user actor: one per active user.
 *
 * It tracks presence across the user's connections, pushes new items to them, and keeps
 * the redelivery schedule of items waiting for an acknowledgment. KV stays the source of
 * truth: the actor is rebuilt from the user's pending acks, and every effect (sending,
 * recording, redelivering) is given at wiring time with `machine.provide()`.
 */

import { assign, fromPromise, not, setup } from "xstate";
import type { PresenceStatus } from "../src/schemas/frames.ts";
import type { PendingAck, StreamItem } from "../src/store/store.ts";

/** Version of the context shape, stored with inspected snapshots. */
export const USER_MACHINE_VERSION = 1;

/** One live connection of the user, by id (the socket itself lives outside the actor). */
export interface UserConnection {
  status: "online" | "away";
  since: number;
}

/** What the user actor remembers. */
export interface UserContext {
  version: number;
  userId: string;
  connections: Record<string, UserConnection>;
  /** The last seq handed to the machine (plain items pushed around it do not move it). */
  lastSeqSent: number;
  /** Items waiting for an ack, by seq. */
  pending: Record<number, PendingAck>;
  ackBaseMs: number;
  idleMs: number;
  /** LOW items waiting to go out together at the end of the grouping window. */
  lowBuffer: LiveItem[];
  /**
   * Pushes the machine made in the current budget window; the wiring adds those made
   * around it (see {@linkcode plainPushAllowed}).
   */
  pushed: number;
  /** Items held back because the budget was spent, summarized at the window's end. */
  folded: { count: number; firstSeq: number; lastSeq: number };
  pacing: Pacing;
}

/** How the user actor paces pushes so that a user is never flooded. */
export interface Pacing {
  /** LOW items are grouped into one frame per this window. */
  lowWindowMs: number;
  /** At most this many pushes per budget window; the excess becomes one summary frame. */
  pushBudget: number;
  budgetWindowMs: number;
}

/** Pacing that never groups nor folds (the default of actors built without one). */
export const NO_PACING: Pacing = {
  lowWindowMs: 0,
  pushBudget: Number.MAX_SAFE_INTEGER,
  budgetWindowMs: 60_000,
};

/** What the registry gives a new user actor. */
export interface UserInput {
  userId: string;
  pending: PendingAck[];
  ackBaseMs: number;
  idleMs: number;
  pacing?: Pacing;
}

/** A new item for the user, with its frame already encoded. */
export interface LiveItem {
  item: StreamItem;
  /** The item's pending ack, as stored, when it needs one. */
  pending?: PendingAck;
  frame: string;
  acceptedAt: number;
  /**
   * `low` items are grouped, `critical` ones (needing an ack, SYSTEM, HIGH from the
   * platform) bypass grouping and the push budget; absent means `normal`.
   */
  pace?: "critical" | "normal" | "low";
}

/** Events the user actor understands. */
export type UserEvent =
  | { type: "conn.open"; connId: string; status?: "online" | "away" }
  | { type: "conn.close"; connId: string }
  | { type: "conn.status"; connId: string; status: "online" | "away" }
  | { type: "item.deliver"; live: LiveItem }
  | { type: "ack.received"; id: string };

/** What a redelivery run is given. */
export interface RedeliverInput {
  userId: string;
  connections: string[];
  due: PendingAck[];
}

/** What a redelivery run reports: items resent (with new schedule) and items given up. */
export interface RedeliverOutput {
  resent: PendingAck[];
  dropped: number[];
}

/** Delay before redelivery number `attempt` (0 = the wait after the first delivery). */
export function backoffDelay(p: Pick<PendingAck, "backoff">, attempt: number, base: number) {
  switch (p.backoff) {
    case "FIXED":
      return base;
    case "LINEAR":
      return base * (attempt + 1);
    case "EXPONENTIAL":
      return base * 2 ** Math.min(attempt, 20);
  }
}

const hasConnections = (c: UserContext) => Object.keys(c.connections).length > 0;
const anyOnline = (c: UserContext) =>
  Object.values(c.connections).some((conn) => conn.status === "online");
const scheduled = (c: UserContext) =>
  Object.values(c.pending).filter((p) => p.nextAt !== undefined) as Required<PendingAck>[];

const NO_FOLD = { count: 0, firstSeq: 0, lastSeq: 0 };

/**
 * Whether a new item may be pushed to the user's connections without a step of the
 * machine, given the actor's current state and `outside` pushes already made that way in
 * the current budget window.
 *
 * Only a plain item qualifies: no ack to track (`item.ack` false, no pending entry), not
 * grouped (not LOW while grouping is on), at least one connection, and a budget window
 * already running (`budget: counting`, so its timer and summary stay the machine's) with
 * room left in it. For such an item the machine would only send the frame and count the
 * push; the caller does both (counting `outside`), and the wiring folds `outside` into the
 * `overBudget` guard and clears it on `budgetReset`. Everything else (the first push of a
 * window, LOW, acks, folding, offline users) goes through `item.deliver`, so presence,
 * pending acks, timers, grouping and summaries stay owned by the machine.
 */
export function plainPushAllowed(
  state: { value: unknown; context: UserContext },
  live: LiveItem,
  outside: number,
): boolean {
  const { context } = state;
  if (live.pending || live.item.ack) return false;
  if (live.pace === "low" && context.pacing.lowWindowMs > 0) return false;
  if ((state.value as { budget?: string }).budget !== "counting") return false;
  for (const _ in context.connections) {
    return live.pace === "critical" || context.pushed + outside < context.pacing.pushBudget;
  }
  return false;
}

const sendParams = ({ context, event }: { context: UserContext; event: UserEvent }) => ({
  userId: context.userId,
  connections: Object.keys(context.connections),
  live: (event as Extract<UserEvent, { type: "item.deliver" }>).live,
});

/**
 * What an item does on arrival: wait for the LOW group, fold into the summary when the
 * budget is spent, or go out at once.
 */
const deliverTransitions = [
  { guard: "isLow", actions: ["bufferLow", "trackItem"] },
  { guard: "overBudget", actions: ["foldItem", "trackItem"] },
  { actions: [{ type: "sendFrame", params: sendParams }, "countPush", "trackItem"] },
] as const;

/** The user machine; effects are named and provided at wiring time. */
export const userMachine = setup({
  types: {
    context: {} as UserContext,
    events: {} as UserEvent,
    input: {} as UserInput,
  },
  actions: {
    /** Sends an encoded frame to every connection of the user. */
    sendFrame: (_, _params: { userId: string; connections: string[]; live: LiveItem }) => {},
    /** Sends several items as one `batch` frame to every connection of the user. */
    sendBatch: (_, _params: { userId: string; connections: string[]; items: LiveItem[] }) => {},
    /** Tells the user's connections how many items the budget held back. */
    sendSummary: (
      _,
      _params: {
        userId: string;
        connections: string[];
        count: number;
        firstSeq: number;
        lastSeq: number;
      },
    ) => {},
    /** Keeps a LOW item for the next group. */
    bufferLow: assign({
      lowBuffer: ({ context, event }) =>
        event.type === "item.deliver" ? [...context.lowBuffer, event.live] : context.lowBuffer,
    }),
    /** Counts an item held back by the budget. */
    foldItem: assign({
      folded: ({ context, event }) => {
        if (event.type !== "item.deliver") return context.folded;
        const { seq } = event.live.item;
        const f = context.folded;
        return f.count === 0 ? { count: 1, firstSeq: seq, lastSeq: seq } : {
          count: f.count + 1,
          firstSeq: Math.min(f.firstSeq, seq),
          lastSeq: Math.max(f.lastSeq, seq),
        };
      },
    }),
    /** Counts a push against the budget (only while someone is connected to see it). */
    countPush: assign({
      pushed: ({ context }) => context.pushed + (hasConnections(context) ? 1 : 0),
    }),
    /**
     * A budget window ended: pushes made outside the machine in that window (see
     * {@linkcode plainPushAllowed}) are forgotten with the machine's own count.
     */
    budgetReset: (_, _params: { userId: string }) => {},
    /** Tells interested parties that the user's presence changed. */
    announcePresence: (_, _params: { userId: string; status: PresenceStatus }) => {},
    /** Asks the registry to stop this idle actor. */
    passivate: (_, _params: { userId: string }) => {},
    /** Reports a failed redelivery run. */
    reportError: (_, _params: { userId: string; error: unknown }) => {},
    /** Remembers a new item that needs an ack, scheduled if it reached a connection. */
    trackItem: assign(({ context, event }) => {
      if (event.type !== "item.deliver") return {};
      const { item } = event.live;
      const lastSeqSent = Math.max(context.lastSeqSent, item.seq);
      const p = context.pending[item.seq] ?? event.live.pending;
      if (!p) return { lastSeqSent };
      const sent = hasConnections(context);
      return {
        lastSeqSent,
        pending: {
          ...context.pending,
          [item.seq]: sent
            ? { ...p, nextAt: Date.now() + backoffDelay(p, p.attempts, context.ackBaseMs) }
            : p,
        },
      };
    }),
    /** Forgets an acknowledged item. */
    dropAcked: assign({
      pending: ({ context, event }) => {
        if (event.type !== "ack.received") return context.pending;
        return Object.fromEntries(
          Object.entries(context.pending).filter(([, p]) => p.id !== event.id),
        );
      },
    }),
    /** A new connection received every pending item: restart each one's wait. */
    scheduleAll: assign({
      pending: ({ context }) =>
        Object.fromEntries(
          Object.entries(context.pending).map(([seq, p]) => [
            seq,
            { ...p, nextAt: Date.now() + backoffDelay(p, p.attempts, context.ackBaseMs) },
          ]),
        ),
    }),
  },
  actors: {
    redeliver: fromPromise<RedeliverOutput, RedeliverInput>(() => {
      throw new Error("The redeliver effect is not provided");
    }),
  },
  guards: {
    anyOnline: ({ context }) => anyOnline(context),
    anyConnection: ({ context }) => hasConnections(context),
    noConnection: ({ context }) => !hasConnections(context),
    hasSchedule: ({ context }) => hasConnections(context) && scheduled(context).length > 0,
    isLow: ({ context, event }) =>
      event.type === "item.deliver" && event.live.pace === "low" && context.pacing.lowWindowMs > 0,
    overBudget: ({ context, event }) =>
      event.type === "item.deliver" && event.live.pace !== "critical" &&
      hasConnections(context) && context.pushed >= context.pacing.pushBudget,
    hasLow: ({ context }) => context.lowBuffer.length > 0,
    budgetStarted: ({ context }) => context.pushed > 0 || context.folded.count > 0,
  },
  delays: {
    lowWindow: ({ context }) => context.pacing.lowWindowMs,
    budgetWindow: ({ context }) => context.pacing.budgetWindowMs,
    idle: ({ context }) => context.idleMs,
    nextDue: ({ context }) =>
      Math.max(0, Math.min(...scheduled(context).map((p) => p.nextAt)) - Date.now()),
  },
}).createMachine({
  id: "user",
  type: "parallel",
  context: ({ input }) => ({
    version: USER_MACHINE_VERSION,
    userId: input.userId,
    connections: {},
    lastSeqSent: 0,
    pending: Object.fromEntries(input.pending.map((p) => [p.seq, p])),
    ackBaseMs: input.ackBaseMs,
    idleMs: input.idleMs,
    lowBuffer: [],
    pushed: 0,
    folded: NO_FOLD,
    pacing: input.pacing ?? NO_PACING,
  }),
  states: {
    presence: {
      initial: "offline",
      on: {
        "conn.open": {
          actions: assign({
            connections: ({ context, event }) => ({
              ...context.connections,
              [event.connId]: { status: event.status ?? "online", since: Date.now() },
            }),
          }),
        },
        "conn.close": {
          actions: assign({
            connections: ({ context, event }) => {
              const { [event.connId]: _, ...rest } = context.connections;
              return rest;
            },
          }),
        },
        "conn.status": {
          actions: assign({
            connections: ({ context, event }) =>
              context.connections[event.connId]
                ? {
                  ...context.connections,
                  [event.connId]: { ...context.connections[event.connId], status: event.status },
                }
                : context.connections,
          }),
        },
      },
      states: {
        offline: {
          entry: {
            type: "announcePresence",
            params: ({ context }) => ({ userId: context.userId, status: "offline" as const }),
          },
          always: [
            { guard: "anyOnline", target: "online" },
            { guard: "anyConnection", target: "away" },
          ],
          after: {
            idle: {
              actions: { type: "passivate", params: ({ context }) => ({ userId: context.userId }) },
            },
          },
        },
        online: {
          entry: {
            type: "announcePresence",
            params: ({ context }) => ({ userId: context.userId, status: "online" as const }),
          },
          always: [
            { guard: "noConnection", target: "offline" },
            { guard: not("anyOnline"), target: "away" },
          ],
        },
        away: {
          entry: {
            type: "announcePresence",
            params: ({ context }) => ({ userId: context.userId, status: "away" as const }),
          },
          always: [
            { guard: "noConnection", target: "offline" },
            { guard: "anyOnline", target: "online" },
          ],
        },
      },
    },
    delivery: {
      initial: "check",
      on: {
        "item.deliver": deliverTransitions.map((t) => ({ ...t, target: ".check" })),
        "ack.received": { target: ".check", actions: "dropAcked" },
        "conn.open": { target: ".check", actions: "scheduleAll" },
        "conn.close": { target: ".check" },
      },
      states: {
        check: {
          always: [{ guard: "hasSchedule", target: "waiting" }, { target: "idle" }],
        },
        idle: {},
        waiting: {
          after: { nextDue: "redelivering" },
        },
        redelivering: {
          on: {
            "item.deliver": [...deliverTransitions],
            "ack.received": { actions: "dropAcked" },
            "conn.open": { actions: "scheduleAll" },
            "conn.close": {},
          },
          invoke: {
            src: "redeliver",
            input: ({ context }) => ({
              userId: context.userId,
              connections: Object.keys(context.connections),
              due: scheduled(context).filter((p) => p.nextAt <= Date.now()),
            }),
            onDone: {
              target: "check",
              actions: assign({
                pending: ({ context, event }) => {
                  const pending = { ...context.pending };
                  for (const seq of event.output.dropped) delete pending[seq];
                  for (const p of event.output.resent) if (pending[p.seq]) pending[p.seq] = p;
                  return pending;
                },
              }),
            },
            onError: {
              target: "check",
              actions: [
                {
                  type: "reportError",
                  params: ({ context, event }) => ({ userId: context.userId, error: event.error }),
                },
                // Push the failed items back one base interval so a broken store is not hammered.
                assign({
                  pending: ({ context }) =>
                    Object.fromEntries(
                      Object.entries(context.pending).map(([seq, p]) => [
                        seq,
                        p.nextAt !== undefined && p.nextAt <= Date.now()
                          ? { ...p, nextAt: Date.now() + context.ackBaseMs }
                          : p,
                      ]),
                    ),
                }),
              ],
            },
          },
        },
      },
    },
    grouping: {
      initial: "empty",
      states: {
        empty: { always: { guard: "hasLow", target: "collecting" } },
        collecting: {
          after: {
            lowWindow: {
              target: "empty",
              actions: [
                {
                  type: "sendBatch",
                  params: ({ context }) => ({
                    userId: context.userId,
                    connections: Object.keys(context.connections),
                    items: context.lowBuffer,
                  }),
                },
                assign({ lowBuffer: [] }),
              ],
            },
          },
        },
      },
    },
    budget: {
      initial: "fresh",
      states: {
        fresh: { always: { guard: "budgetStarted", target: "counting" } },
        counting: {
          after: {
            budgetWindow: {
              target: "fresh",
              actions: [
                {
                  type: "sendSummary",
                  params: ({ context }) => ({
                    userId: context.userId,
                    connections: Object.keys(context.connections),
                    ...context.folded,
                  }),
                },
                assign({ pushed: 0, folded: NO_FOLD }),
                {
                  type: "budgetReset",
                  params: ({ context }) => ({ userId: context.userId }),
                },
              ],
            },
          },
        },
      },
    },
  },
});
