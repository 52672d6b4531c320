/**
 * The user actor: one per active user, and the only way to the user's connections.
 *
 * It tracks presence across the user's connections, pushes new items to them (in batches:
 * one `items.deliver` carries every item that arrived for the user in the same turn), paces
 * them (LOW grouping, push budget), and keeps the redelivery schedule of items waiting for
 * an acknowledgment. KV stays the source of truth: the actor is rebuilt from the user's
 * pending acks, and every effect (sending, recording, redelivering) is given at wiring time
 * with `machine.provide()`.
 *
 * The machine is flat: its states are the user's presence (`offline`, `online`, `away`)
 * and the final `stopped`. Every item is a step of the machine, so a step must cost little:
 * the windows of LOW grouping and of the push budget and the redelivery schedule are
 * context, with delayed events (`lowWindow`, `budgetWindow`, `nextDue`) raised only when
 * something waits on them, and a redelivery run is a child actor (`redeliver`) spawned
 * when it is due. The common step assigns nothing: it moves the push counts in place (see
 * `PushCount`), so XState keeps the snapshot it has instead of building one per item.
 *
 * The actor ends in its final state (status `done`) when it passivates after being offline
 * for its idle time, or when asked with `user.stop`; whoever holds it hears it through its
 * subscription's `complete`.
 *
 * The machine's states and transitions are here; its context, events and presence rules
 * are in `user.context.ts`, the pacing of new items in `user.pacing.ts`, the redelivery
 * schedule in `user.redelivery.ts`, and the inspection of its timers in `user.timers.ts`.
 */

import { type AnyEventObject, assign, enqueueActions, fromPromise, setup } from "xstate";
import type { PresenceStatus } from "../src/schemas/frames.ts";
import {
  connectionsAfter,
  type ConnEvent,
  hasConnections,
  itemsOf,
  type LiveItem,
  NO_PACING,
  presenceAfter,
  type TimerEvent,
  USER_MACHINE_VERSION,
  type UserContext,
  type UserEvent,
  type UserInput,
} from "./user.context.ts";
import {
  countPushes,
  deliverItems,
  NO_FOLD,
  onlyCounts,
  opensTimers,
  pace,
  windowOver,
} from "./user.pacing.ts";
import {
  afterRedelivery,
  nextDueAt,
  postponeDue,
  type RedeliverInput,
  type RedeliverOutput,
  restartWaits,
  scheduled,
  withoutAcked,
} from "./user.redelivery.ts";

export {
  type LiveItem,
  NO_PACING,
  type Pacing,
  USER_MACHINE_VERSION,
  type UserConnection,
  type UserContext,
  type UserEvent,
  type UserInput,
} from "./user.context.ts";
export type { RedeliverInput, RedeliverOutput } from "./user.redelivery.ts";

/**
 * Presence moves on connection events only (no eventless transitions: those are checked
 * at every step of the machine, and every item is a step). A new connection restarts the
 * wait of every pending item (it was sent them all); any opening or closing moves the
 * next redelivery.
 */
const presenceOn = (self: "online" | "away" | "offline") => {
  const on = (type: ConnEvent["type"]) => {
    const actions = type === "conn.open"
      ? ["updateConnections", "scheduleAll", "reschedule"] as const
      : type === "conn.close"
      ? ["updateConnections", "reschedule"] as const
      : ["updateConnections"] as const;
    const moves = (["online", "away", "offline"] as const)
      .filter((to) => to !== self)
      .map((to) => ({
        guard: ({ context, event }: { context: UserContext; event: UserEvent }) =>
          presenceAfter(context, event as ConnEvent) === to,
        target: to,
        actions,
      }));
    return [...moves, { actions }];
  };
  return {
    "conn.open": on("conn.open"),
    "conn.close": on("conn.close"),
    "conn.status": on("conn.status"),
  };
};

/** Every item of a batch (one that goes out whole), with the user's connections. */
const sendAll = ({ context, event }: { context: UserContext; event: UserEvent }) => ({
  userId: context.userId,
  connections: context.connIds,
  items: itemsOf(event),
});

/** The items of a batch that go out now, with the user's connections. */
const sendNow = ({ context, event }: { context: UserContext; event: UserEvent }) => ({
  userId: context.userId,
  connections: context.connIds,
  items: pace(context, itemsOf(event), Date.now()).send,
});

/** The user machine; effects are named and provided at wiring time. */
export const userMachine = setup({
  types: {
    context: {} as UserContext,
    events: {} as UserEvent | TimerEvent,
    input: {} as UserInput,
    children: {} as { redeliver: "redeliver" },
  },
  actions: {
    /** Sends items, each as its encoded frame, to every connection of the user. */
    sendItems: (_, _params: { userId: string; connections: string[]; items: LiveItem[] }) => {},
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
    /** Groups, folds, counts and tracks a batch of new items (see `pace`). */
    deliverItems: assign(({ context, event }) => deliverItems(context, itemsOf(event))),
    /**
     * Counts a batch that only moves the push counts, in the context's count cell: the
     * common step assigns nothing, so XState keeps the snapshot it has (see `PushCount`).
     */
    countPushes: ({ context, event }) => countPushes(context, itemsOf(event)),
    /**
     * Opens the timers a batch starts: the end of a LOW group it opens, and the end of
     * the budget window when it folds the window's first item (a window with nothing
     * folded needs no timer: the first push after its end starts the next one). Runs
     * before `deliverItems`, which records when they started.
     */
    openWindows: enqueueActions(({ context, event, enqueue }) => {
      const items = itemsOf(event);
      const now = Date.now();
      const paced = pace(context, items, now);
      // A new group: none was waiting, or the one waiting just went out.
      const fresh = context.lowBuffer.length === 0 || paced.flushLow.length > 0;
      if (fresh && paced.low.length > 0) {
        enqueue.raise({ type: "lowWindow" }, {
          id: "lowWindow",
          delay: context.pacing.lowWindowMs,
        });
      }
      if (context.folded.count === 0 && paced.fold.length > 0) {
        const since = context.pushes.budgetSince === undefined || windowOver(context, now)
          ? now
          : context.pushes.budgetSince;
        enqueue.raise({ type: "budgetWindow" }, {
          id: "budgetWindow",
          delay: Math.max(0, since + context.pacing.budgetWindowMs - now),
        });
      }
    }),
    /** Sets the next redelivery's timer from the schedule (none while a run is on). */
    reschedule: enqueueActions(({ context, enqueue }) => {
      enqueue.cancel("nextDue");
      const dueAt = context.redelivering ? undefined : nextDueAt(context);
      if (dueAt === undefined) return;
      enqueue.raise({ type: "nextDue" }, { id: "nextDue", delay: Math.max(0, dueAt - Date.now()) });
    }),
    /** Starts a redelivery run of the items due, unless one is on. */
    redeliver: enqueueActions(({ context, enqueue }) => {
      if (context.redelivering || !hasConnections(context)) return;
      const now = Date.now();
      const due = scheduled(context).filter((p) => p.nextAt <= now);
      if (due.length === 0) {
        // Rescheduled meanwhile (an ack, a new connection): wait for the next one.
        const dueAt = nextDueAt(context);
        if (dueAt !== undefined) {
          enqueue.raise({ type: "nextDue" }, { id: "nextDue", delay: Math.max(0, dueAt - now) });
        }
        return;
      }
      enqueue.assign({ redelivering: true });
      enqueue.spawnChild("redeliver", {
        id: "redeliver",
        input: { userId: context.userId, connections: context.connIds, due },
      });
    }),
    /** Tells interested parties that the user's presence changed. */
    announcePresence: (_, _params: { userId: string; status: PresenceStatus }) => {},
    /** Reports a failed redelivery run. */
    reportError: (_, _params: { userId: string; error: unknown }) => {},
    /** Applies a connection event to the user's connections. */
    updateConnections: assign(({ context, event }) => {
      if (
        event.type !== "conn.open" && event.type !== "conn.close" && event.type !== "conn.status"
      ) {
        return {};
      }
      const connections = connectionsAfter(context, event);
      return { connections, connIds: Object.keys(connections) };
    }),
    /** Forgets an acknowledged item. */
    dropAcked: assign({
      pending: ({ context, event }) =>
        event.type === "ack.received" ? withoutAcked(context, event.id) : context.pending,
    }),
    /** A new connection received every pending item: restart each one's wait. */
    scheduleAll: assign({ pending: ({ context }) => restartWaits(context) }),
  },
  actors: {
    redeliver: fromPromise<RedeliverOutput, RedeliverInput>(() => {
      throw new Error("The redeliver effect is not provided");
    }),
  },
  guards: {
    /** The batch opens a window or moves the next redelivery. */
    opensTimers: ({ context, event }) => opensTimers(context, itemsOf(event)),
    /** The batch goes out whole and only moves the push counts. */
    onlyCounts: ({ context, event }) => onlyCounts(context, itemsOf(event)),
  },
  delays: {
    idle: ({ context }) => context.idleMs,
  },
}).createMachine({
  id: "user",
  initial: "offline",
  context: ({ input }) => ({
    version: USER_MACHINE_VERSION,
    userId: input.userId,
    connections: {},
    connIds: [],
    pushes: { lastSeqSent: 0, pushed: 0, budgetSince: undefined },
    pending: Object.fromEntries(input.pending.map((p) => [p.seq, p])),
    ackBaseMs: input.ackBaseMs,
    idleMs: input.idleMs,
    lowBuffer: [],
    lowSince: undefined,
    folded: NO_FOLD,
    offlineSince: undefined,
    redelivering: false,
    pacing: input.pacing ?? NO_PACING,
  }),
  on: {
    "items.deliver": [
      // Most items open nothing and only move the push counts: two actions and no assign,
      // the cheapest step there is. Asked first: a batch that goes out whole, with nothing
      // waiting for an ack, never opens a timer (see `onlyCounts`).
      {
        guard: "onlyCounts",
        actions: [{ type: "sendItems", params: sendAll }, "countPushes"],
      },
      {
        guard: "opensTimers",
        actions: [
          // What was held back goes out before the batch's items go out over it (see
          // `pace`): the LOW items waiting, as one batch (their group's timer ends with
          // them), and the summary of what the budget folded so far.
          enqueueActions(({ context, event, enqueue }) => {
            const { flushLow, summary } = pace(context, itemsOf(event), Date.now());
            const { userId, connIds: connections } = context;
            if (flushLow.length > 0) {
              enqueue.cancel("lowWindow");
              enqueue({ type: "sendBatch", params: { userId, connections, items: flushLow } });
            }
            if (summary) {
              enqueue({ type: "sendSummary", params: { userId, connections, ...summary } });
            }
          }),
          { type: "sendItems", params: sendNow },
          "openWindows",
          "deliverItems",
          "reschedule",
        ],
      },
      { actions: [{ type: "sendItems", params: sendNow }, "deliverItems"] },
    ],
    "ack.received": { actions: ["dropAcked", "reschedule"] },
    nextDue: { actions: "redeliver" },
    "xstate.done.actor.redeliver": {
      actions: [
        assign({
          redelivering: false,
          pending: ({ context, event }: { context: UserContext; event: AnyEventObject }) =>
            afterRedelivery(context, event.output),
        }),
        "reschedule",
      ],
    },
    "xstate.error.actor.redeliver": {
      actions: [
        {
          type: "reportError",
          params: ({ context, event }: { context: UserContext; event: { error: unknown } }) => ({
            userId: context.userId,
            error: event.error,
          }),
        },
        // Push the failed items back one base interval so a broken store is not hammered.
        assign({
          redelivering: false,
          pending: ({ context }: { context: UserContext }) => postponeDue(context),
        }),
        "reschedule",
      ],
    },
    lowWindow: {
      actions: [
        {
          type: "sendBatch",
          params: ({ context }) => ({
            userId: context.userId,
            connections: context.connIds,
            items: context.lowBuffer,
          }),
        },
        assign({ lowBuffer: [], lowSince: undefined }),
      ],
    },
    budgetWindow: {
      actions: [
        {
          type: "sendSummary",
          params: ({ context }) => ({
            userId: context.userId,
            connections: context.connIds,
            ...context.folded,
          }),
        },
        assign({
          pushes: ({ context }) => ({ ...context.pushes, pushed: 0, budgetSince: undefined }),
          folded: NO_FOLD,
        }),
      ],
    },
    "user.stop": { target: ".stopped" },
  },
  states: {
    offline: {
      entry: [
        assign({ offlineSince: () => Date.now() }),
        {
          type: "announcePresence",
          params: ({ context }) => ({ userId: context.userId, status: "offline" as const }),
        },
      ],
      exit: assign({ offlineSince: undefined }),
      on: presenceOn("offline"),
      // Passivation: offline for its idle time, the actor is done (its state is in KV).
      after: { idle: { target: "stopped" } },
    },
    online: {
      entry: {
        type: "announcePresence",
        params: ({ context }) => ({ userId: context.userId, status: "online" as const }),
      },
      on: presenceOn("online"),
    },
    away: {
      entry: {
        type: "announcePresence",
        params: ({ context }) => ({ userId: context.userId, status: "away" as const }),
      },
      on: presenceOn("away"),
    },
    stopped: { type: "final" },
  },
});
