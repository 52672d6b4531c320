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
 * when it is due.
 *
 * The actor ends in its final state (status `done`) when it passivates after being offline
 * for its idle time, or when asked with `user.stop`; whoever holds it hears it through its
 * subscription's `complete`.
 */

import { assign, enqueueActions, fromPromise, setup } from "xstate";
import { backoffDelay } from "../src/backoff.ts";
import type { PresenceStatus } from "../src/schemas/frames.ts";
import type { PendingAck, StreamItem } from "../src/store/store.ts";

/** Version of the context shape, stored with inspected snapshots. */
export const USER_MACHINE_VERSION = 3;

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
  /** A redelivery run is in progress (the `redeliver` child). */
  redelivering: boolean;
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
  /**
   * The client envelope JSON `frame` was encoded from, shared by every target of the
   * event: what keeps an ephemeral item replayable without keeping its own frame.
   */
  json?: string;
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
export function redeliveryDelay(p: Pick<PendingAck, "backoff">, attempt: number, base: number) {
  return backoffDelay(attempt, { baseMs: base, shape: p.backoff });
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

const scheduled = (c: UserContext) =>
  Object.values(c.pending).filter((p) => p.nextAt !== undefined) as Required<PendingAck>[];

const NO_FOLD = { count: 0, firstSeq: 0, lastSeq: 0 };

/** The events the machine raises to itself when a window or a wait ends. */
type TimerEvent = { type: "lowWindow" } | { type: "budgetWindow" } | { type: "nextDue" };

/** The items of an `items.deliver` event (none for any other event). */
const itemsOf = (event: UserEvent | TimerEvent): LiveItem[] =>
  event.type === "items.deliver" ? event.items : [];

const isLow = (c: UserContext, live: LiveItem) => live.pace === "low" && c.pacing.lowWindowMs > 0;

/**
 * Whether the push budget's window is over with nothing folded: it then has no timer
 * (one runs only once something is folded, to send the summary), and the next push
 * starts a new window.
 */
const windowOver = (c: UserContext, now: number) =>
  c.budgetSince !== undefined && c.folded.count === 0 &&
  now >= c.budgetSince + c.pacing.budgetWindowMs;

/**
 * How a batch of new items is paced, item by item in order: LOW ones wait for their group,
 * those past the push budget are folded into the window's summary, the rest go out now
 * (critical ones bypass the budget but count against it). Pushes only count while someone
 * is connected to see them.
 */
function pace(c: UserContext, items: LiveItem[], now: number) {
  const send: LiveItem[] = [];
  const low: LiveItem[] = [];
  const fold: LiveItem[] = [];
  const connected = hasConnections(c);
  let pushed = windowOver(c, now) ? 0 : c.pushed;
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
  const { low, fold, pushed } = pace(c, items, now);
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
      ? { ...entry, nextAt: now + redeliveryDelay(entry, entry.attempts, c.ackBaseMs) }
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
  const fresh = c.budgetSince === undefined || windowOver(c, now);
  if (fresh && (pushed > 0 || fold.length > 0)) next.budgetSince = now;
  return next;
}

/** When the next redelivery is due: only while someone is connected to get it. */
function nextDueAt(c: UserContext): number | undefined {
  if (!hasConnections(c)) return undefined;
  let due: number | undefined;
  for (const seq in c.pending) {
    const at = c.pending[seq].nextAt;
    if (at !== undefined && (due === undefined || at < due)) due = at;
  }
  return due;
}

/**
 * Whether a batch of new items opens a timer: it moves the redelivery schedule, starts a
 * LOW group, or folds the first item of a budget window (whose end sends the summary).
 */
function opensTimers(c: UserContext, items: LiveItem[]): boolean {
  const connected = hasConnections(c);
  for (const live of items) {
    if (connected && (live.pending || live.item.ack)) return true;
    if (c.lowBuffer.length === 0 && isLow(c, live)) return true;
  }
  if (!connected || c.folded.count > 0) return false;
  // Nothing can fold while the batch fits in what is left of the budget (the common case:
  // no need to pace the batch here as well).
  const now = Date.now();
  const used = windowOver(c, now) ? 0 : c.pushed;
  if (used + items.length <= c.pacing.pushBudget) return false;
  return pace(c, items, now).fold.length > 0;
}

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
  const c = snapshot.context;
  const timers: UserTimer[] = [];
  const dueAt = c.redelivering ? undefined : nextDueAt(c);
  if (dueAt !== undefined) {
    const seqs = scheduled(c).filter((p) => p.nextAt === dueAt).map((p) => p.seq);
    timers.push({ id: "nextDue", event: `redeliver seq ${seqs.join(", ")}`, dueAt });
  }
  if (c.lowSince !== undefined) {
    timers.push({
      id: "lowWindow",
      event: `send ${c.lowBuffer.length} LOW item(s) as one batch`,
      dueAt: c.lowSince + c.pacing.lowWindowMs,
    });
  }
  if (c.budgetSince !== undefined && !windowOver(c, Date.now())) {
    timers.push({
      id: "budgetWindow",
      event: c.folded.count > 0
        ? `send a summary of ${c.folded.count} folded item(s) and reset the budget`
        : "reset the push budget",
      dueAt: c.budgetSince + c.pacing.budgetWindowMs,
    });
  }
  if (snapshot.value === "offline" && c.offlineSince !== undefined) {
    timers.push({ id: "idle", event: "passivate", dueAt: c.offlineSince + c.idleMs });
  }
  return timers;
}

/** The items of a batch that go out now, with the user's connections. */
const sendNow = ({ context, event }: { context: UserContext; event: UserEvent }) => ({
  userId: context.userId,
  connections: Object.keys(context.connections),
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
     * Opens the timers a batch starts: the end of a LOW group it opens, and the end of
     * the budget window when it folds the window's first item (a window with nothing
     * folded needs no timer: the first push after its end starts the next one). Runs
     * before `deliverItems`, which records when they started.
     */
    openWindows: enqueueActions(({ context, event, enqueue }) => {
      const items = itemsOf(event);
      if (context.lowBuffer.length === 0 && items.some((l) => isLow(context, l))) {
        enqueue.raise({ type: "lowWindow" }, {
          id: "lowWindow",
          delay: context.pacing.lowWindowMs,
        });
      }
      const now = Date.now();
      if (context.folded.count === 0 && pace(context, items, now).fold.length > 0) {
        const since = context.budgetSince === undefined || windowOver(context, now)
          ? now
          : context.budgetSince;
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
        input: { userId: context.userId, connections: Object.keys(context.connections), due },
      });
    }),
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
            { ...p, nextAt: Date.now() + redeliveryDelay(p, p.attempts, context.ackBaseMs) },
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
    /** The batch opens a window or moves the next redelivery. */
    opensTimers: ({ context, event }) => opensTimers(context, itemsOf(event)),
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
    redelivering: false,
    pacing: input.pacing ?? NO_PACING,
  }),
  on: {
    // Most items open nothing: two actions, the cheapest step there is.
    "items.deliver": [
      {
        guard: "opensTimers",
        actions: [
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
          pending: ({ context, event }) => {
            const pending = { ...context.pending };
            for (const seq of event.output.dropped) delete pending[seq];
            for (const p of event.output.resent) if (pending[p.seq]) pending[p.seq] = p;
            return pending;
          },
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
          pending: ({ context }: { context: UserContext }) =>
            Object.fromEntries(
              Object.entries(context.pending).map(([seq, p]) => [
                seq,
                p.nextAt !== undefined && p.nextAt <= Date.now()
                  ? { ...p, nextAt: Date.now() + context.ackBaseMs }
                  : p,
              ]),
            ),
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
            connections: Object.keys(context.connections),
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
            connections: Object.keys(context.connections),
            ...context.folded,
          }),
        },
        assign({ pushed: 0, folded: NO_FOLD, budgetSince: undefined }),
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
