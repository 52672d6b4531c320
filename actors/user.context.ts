/**
 * What the user actor remembers and hears: its context, input and events, the items it
 * delivers, and the pure rules of the user's connections and presence.
 */

import type { PendingAck, StreamItem } from "../src/store/store.ts";

/** Version of the context shape, stored with inspected snapshots. */
export const USER_MACHINE_VERSION = 5;

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
  /** The ids of `connections`, in the order they opened (what every push goes to). */
  connIds: string[];
  /** What the pushes to the user count: the one part of the context a step changes in place. */
  pushes: PushCount;
  /** Items waiting for an ack, by seq. */
  pending: Record<number, PendingAck>;
  ackBaseMs: number;
  idleMs: number;
  /** LOW items waiting to go out together at the end of the grouping window. */
  lowBuffer: LiveItem[];
  /** When the current LOW group started (its window ends `pacing.lowWindowMs` later). */
  lowSince: number | undefined;
  /** Items held back because the budget was spent, summarized at the window's end. */
  folded: { count: number; firstSeq: number; lastSeq: number };
  /** When the user went offline (the actor passivates `idleMs` later). */
  offlineSince: number | undefined;
  /** A redelivery run is in progress (the `redeliver` child). */
  redelivering: boolean;
  pacing: Pacing;
}

/**
 * The counts of the push budget, one cell per actor. Most items only move these counts
 * (they go out whole, within the budget, with nothing to wait for), and a step that assigns
 * makes XState build a new snapshot, context and tag set that the actor keeps until its next
 * step: in a broadcast that outlives the young generation, for every recipient. So the
 * common step (`countPushes`) updates this cell in place and leaves the snapshot as it is;
 * every other step replaces the cell with a new one when it changes it.
 */
export interface PushCount {
  /** The last seq handed to the machine. */
  lastSeqSent: number;
  /** Pushes made in the current budget window. */
  pushed: number;
  /** When the current budget window started (it ends `pacing.budgetWindowMs` later). */
  budgetSince: number | undefined;
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
  /**
   * The older unread item this one replaced under its collapse key: no longer waited on
   * (its pending ack went with the replacement).
   */
  replaces?: { id: string; seq: number };
  /**
   * The version of the commit that wrote the item's delivery record, when the delivery
   * may be marked without reading the record back (see `DeliveredEntry.written`).
   */
  version?: string;
  frame: string;
  /**
   * The client envelope JSON `frame` was encoded from, shared by every target of the
   * event: what keeps an item replayable from its stream head's window without keeping
   * its own frame.
   */
  json?: string;
  acceptedAt: number;
  /**
   * `low` items are grouped, `critical` ones (needing an ack, SYSTEM, HIGH from the
   * platform) bypass grouping and the push budget; absent means `normal`.
   */
  pace?: "critical" | "normal" | "low";
  /**
   * The span the item's delivery belongs under (an OpenTelemetry `SpanContext`: the
   * event's fan-out batch, or the message's commit); absent when traces are off.
   */
  trace?: TraceParent;
}

/** Where a traced item's delivery span hangs: the parent span's ids. */
export interface TraceParent {
  traceId: string;
  spanId: string;
  traceFlags: number;
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

/** The events the machine raises to itself when a window or a wait ends. */
export type TimerEvent = { type: "lowWindow" } | { type: "budgetWindow" } | { type: "nextDue" };

/** The events that open, close or change one of the user's connections. */
export type ConnEvent = Extract<UserEvent, { type: "conn.open" | "conn.close" | "conn.status" }>;

/** The items of an `items.deliver` event (none for any other event). */
export const itemsOf = (event: UserEvent | TimerEvent): LiveItem[] =>
  event.type === "items.deliver" ? event.items : [];

/** Whether the user has at least one connection. */
export const hasConnections = (c: UserContext): boolean => c.connIds.length > 0;

/** The user's connections once a connection event is applied. */
export function connectionsAfter(c: UserContext, event: ConnEvent): UserContext["connections"] {
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
export function presenceAfter(c: UserContext, event: ConnEvent): "online" | "away" | "offline" {
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
