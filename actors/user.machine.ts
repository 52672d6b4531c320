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
 * The actor ends in a final state (status `done`) when it passivates after being offline
 * for its idle time, or when asked with `user.stop`; whoever holds it hears it through its
 * subscription's `complete`.
 */

import { assign, fromPromise, setup } from "xstate";
import type { PresenceStatus } from "../src/schemas/frames.ts";
import type { PendingAck, StreamItem } from "../src/store/store.ts";

/** Version of the context shape, stored with inspected snapshots. */
export const USER_MACHINE_VERSION = 2;

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
  /** The last seq handed to the machine. */
  lastSeqSent: number;
  /** Items waiting for an ack, by seq. */
  pending: Record<number, PendingAck>;
  ackBaseMs: number;
  idleMs: number;
  /** LOW items waiting to go out together at the end of the grouping window. */
  lowBuffer: LiveItem[];
  /** When the current LOW group started (its window ends `pacing.lowWindowMs` later). */
  lowSince: number | undefined;
  /** Pushes made in the current budget window. */
  pushed: number;
  /** When the current budget window started (it ends `pacing.budgetWindowMs` later). */
  budgetSince: number | undefined;
  /** Items held back because the budget was spent, summarized at the window's end. */
  folded: { count: number; firstSeq: number; lastSeq: number };
  /** When the user went offline (the actor passivates `idleMs` later). */
  offlineSince: number | undefined;
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
  /** New items for the user, in stream order (usually those that arrived in one turn). */
  | { type: "items.deliver"; items: LiveItem[] }
  | { type: "ack.received"; id: string }
  /** Ends the actor (its state is in KV): it reaches its final state. */
  | { type: "user.stop" };

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

const hasConnections = (c: UserContext) => {
  for (const _ in c.connections) return true;
  return false;
};

type ConnEvent = Extract<UserEvent, { type: "conn.open" | "conn.close" | "conn.status" }>;

/** The user's connections once a connection event is applied. */
function connectionsAfter(c: UserContext, event: ConnEvent): UserContext["connections"] {
  switch (event.type) {
    case "conn.open":
      return {
        ...c.connections,
        [event.connId]: { status: event.status ?? "online", since: Date.now() },
      };
    case "conn.close": {
      if (!Object.hasOwn(c.connections, event.connId)) return c.connections;
      const { [event.connId]: _, ...rest } = c.connections;
      return rest;
    }
    case "conn.status":
      return Object.hasOwn(c.connections, event.connId)
        ? {
          ...c.connections,
          [event.connId]: { ...c.connections[event.connId], status: event.status },
        }
        : c.connections;
  }
}

/**
 * Where presence goes on a connection event: judged on the connections after it, without
 * building them (the guards of every presence state ask).
 */
function presenceAfter(c: UserContext, event: ConnEvent): "online" | "away" | "offline" {
  let any = false;
  let online = false;
  for (const id in c.connections) {
    if (id === event.connId) continue;
    any = true;
    if (c.connections[id].status === "online") online = true;
  }
  const kept = event.type === "conn.open" ||
    (event.type === "conn.status" && Object.hasOwn(c.connections, event.connId));
  if (kept) {
    any = true;
    if ((event.type === "conn.open" ? event.status ?? "online" : event.status) === "online") {
      online = true;
    }
  }
  return online ? "online" : any ? "away" : "offline";
}

/**
 * Presence moves on connection events only (no eventless transitions: those are checked
 * at every step of the machine, and every item is a step).
 */
const presenceOn = (self: "online" | "away" | "offline") => {
  const transitions = (["online", "away", "offline"] as const)
    .filter((to) => to !== self)
    .map((to) => ({
      guard: ({ context, event }: { context: UserContext; event: UserEvent }) =>
        presenceAfter(context, event as ConnEvent) === to,
      target: to,
      actions: "updateConnections" as const,
    }));
  const stay = [...transitions, { actions: "updateConnections" as const }];
  return { "conn.open": stay, "conn.close": stay, "conn.status": stay };
};

const scheduled = (c: UserContext) =>
  Object.values(c.pending).filter((p) => p.nextAt !== undefined) as Required<PendingAck>[];

const NO_FOLD = { count: 0, firstSeq: 0, lastSeq: 0 };

/** The items of an `items.deliver` event (none for any other event). */
const itemsOf = (event: UserEvent): LiveItem[] => event.type === "items.deliver" ? event.items : [];

const isLow = (c: UserContext, live: LiveItem) => live.pace === "low" && c.pacing.lowWindowMs > 0;

/**
 * How a batch of new items is paced, item by item in order: LOW ones wait for their group,
 * those past the push budget are folded into the window's summary, the rest go out now
 * (critical ones bypass the budget but count against it). Pushes only count while someone
 * is connected to see them.
 */
function pace(c: UserContext, items: LiveItem[]) {
  const send: LiveItem[] = [];
  const low: LiveItem[] = [];
  const fold: LiveItem[] = [];
  const connected = hasConnections(c);
  let pushed = c.pushed;
  for (const live of items) {
    if (isLow(c, live)) low.push(live);
    else if (live.pace !== "critical" && connected && pushed >= c.pacing.pushBudget) {
      fold.push(live);
    } else {
      send.push(live);
      if (connected) pushed++;
    }
  }
  return { send, low, fold, pushed };
}

/** The context after a batch of new items: grouped, folded, counted and tracked. */
function deliverItems(c: UserContext, items: LiveItem[]): Partial<UserContext> {
  const now = Date.now();
  const { low, fold, pushed } = pace(c, items);
  const connected = hasConnections(c);
  let lastSeqSent = c.lastSeqSent;
  let pending: Record<number, PendingAck> | undefined;
  for (const { item, pending: p } of items) {
    if (item.seq > lastSeqSent) lastSeqSent = item.seq;
    const entry = c.pending[item.seq] ?? p;
    if (!entry) continue;
    pending ??= { ...c.pending };
    // Scheduled when it reached a connection; otherwise it waits for the next one.
    pending[item.seq] = connected
      ? { ...entry, nextAt: now + backoffDelay(entry, entry.attempts, c.ackBaseMs) }
      : entry;
  }
  const next: Partial<UserContext> = { lastSeqSent };
  if (pending) next.pending = pending;
  if (low.length > 0) {
    next.lowBuffer = [...c.lowBuffer, ...low];
    if (c.lowBuffer.length === 0) next.lowSince = now;
  }
  if (fold.length > 0) {
    let { count, firstSeq, lastSeq } = c.folded;
    for (const { item: { seq } } of fold) {
      firstSeq = count === 0 ? seq : Math.min(firstSeq, seq);
      lastSeq = count === 0 ? seq : Math.max(lastSeq, seq);
      count++;
    }
    next.folded = { count, firstSeq, lastSeq };
  }
  if (pushed !== c.pushed) next.pushed = pushed;
  if (c.budgetSince === undefined && (pushed > c.pushed || fold.length > 0)) {
    next.budgetSince = now;
  }
  return next;
}

/** The actions of a batch of new items: send those that go out now, then remember the rest. */
const deliverActions = [
  {
    type: "sendItems",
    params: ({ context, event }: { context: UserContext; event: UserEvent }) => ({
      userId: context.userId,
      connections: Object.keys(context.connections),
      items: pace(context, itemsOf(event)).send,
    }),
  },
  "deliverItems",
] as const;

/** Every region's final state: the actor is done (passivated or stopped). */
const STOPPED = [
  "#user.presence.stopped",
  "#user.delivery.stopped",
  "#user.grouping.stopped",
  "#user.budget.stopped",
];

/** A timer the user actor is waiting on, as its context tells it. */
export interface UserTimer {
  /** The machine's name for the delay. */
  id: "nextDue" | "lowWindow" | "budgetWindow" | "idle";
  /** What happens when it fires. */
  event: string;
  /** When it fires, in epoch milliseconds. */
  dueAt: number;
}

/**
 * The timers a user actor's snapshot is waiting on, derived from its state and context
 * (the machine records when each window started): the next redelivery, the end of the LOW
 * group, the end of the push budget window, and passivation.
 */
export function userTimers(snapshot: { value: unknown; context: UserContext }): UserTimer[] {
  const value = snapshot.value as Partial<Record<string, string>>;
  const c = snapshot.context;
  const timers: UserTimer[] = [];
  if (value.delivery === "waiting") {
    const due = scheduled(c);
    if (due.length > 0) {
      const dueAt = Math.min(...due.map((p) => p.nextAt));
      const seqs = due.filter((p) => p.nextAt === dueAt).map((p) => p.seq);
      timers.push({ id: "nextDue", event: `redeliver seq ${seqs.join(", ")}`, dueAt });
    }
  }
  if (value.grouping === "collecting" && c.lowSince !== undefined) {
    timers.push({
      id: "lowWindow",
      event: `send ${c.lowBuffer.length} LOW item(s) as one batch`,
      dueAt: c.lowSince + c.pacing.lowWindowMs,
    });
  }
  if (value.budget === "counting" && c.budgetSince !== undefined) {
    timers.push({
      id: "budgetWindow",
      event: c.folded.count > 0
        ? `send a summary of ${c.folded.count} folded item(s) and reset the budget`
        : "reset the push budget",
      dueAt: c.budgetSince + c.pacing.budgetWindowMs,
    });
  }
  if (value.presence === "offline" && c.offlineSince !== undefined) {
    timers.push({ id: "idle", event: "passivate", dueAt: c.offlineSince + c.idleMs });
  }
  return timers;
}

/** The user machine; effects are named and provided at wiring time. */
export const userMachine = setup({
  types: {
    context: {} as UserContext,
    events: {} as UserEvent,
    input: {} as UserInput,
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
    /** Tells interested parties that the user's presence changed. */
    announcePresence: (_, _params: { userId: string; status: PresenceStatus }) => {},
    /** Reports a failed redelivery run. */
    reportError: (_, _params: { userId: string; error: unknown }) => {},
    /** Applies a connection event to the user's connections. */
    updateConnections: assign({
      connections: ({ context, event }) =>
        event.type === "conn.open" || event.type === "conn.close" || event.type === "conn.status"
          ? connectionsAfter(context, event)
          : context.connections,
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
    hasSchedule: ({ context }) => hasConnections(context) && scheduled(context).length > 0,
    /** The batch has an item to wait an ack for, and someone to wait for it. */
    schedulesAck: ({ context, event }) =>
      hasConnections(context) && itemsOf(event).some((l) => l.pending || l.item.ack),
    /** The batch starts a LOW group. */
    bringsLow: ({ context, event }) => itemsOf(event).some((l) => isLow(context, l)),
    /** The batch has an item pushed or folded while someone is connected. */
    startsBudget: ({ context, event }) =>
      hasConnections(context) && itemsOf(event).some((l) => !isLow(context, l)),
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
    lowSince: undefined,
    pushed: 0,
    budgetSince: undefined,
    folded: NO_FOLD,
    offlineSince: undefined,
    pacing: input.pacing ?? NO_PACING,
  }),
  on: {
    "user.stop": { target: STOPPED },
  },
  states: {
    presence: {
      initial: "offline",
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
          after: { idle: { target: STOPPED } },
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
    },
    delivery: {
      initial: "check",
      on: {
        // Only an item to wait an ack for can move the next redelivery.
        "items.deliver": [
          { guard: "schedulesAck", target: ".check", actions: deliverActions },
          { actions: deliverActions },
        ],
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
            "items.deliver": { actions: deliverActions },
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
        stopped: { type: "final" },
      },
    },
    grouping: {
      initial: "empty",
      states: {
        empty: { on: { "items.deliver": { guard: "bringsLow", target: "collecting" } } },
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
                assign({ lowBuffer: [], lowSince: undefined }),
              ],
            },
          },
        },
        stopped: { type: "final" },
      },
    },
    budget: {
      initial: "fresh",
      states: {
        fresh: { on: { "items.deliver": { guard: "startsBudget", target: "counting" } } },
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
                assign({ pushed: 0, folded: NO_FOLD, budgetSince: undefined }),
              ],
            },
          },
        },
        stopped: { type: "final" },
      },
    },
  },
});
