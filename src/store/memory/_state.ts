/**
 * What the in-memory adapter holds, shared by its ports: one record per event (with its
 * body, targets, counters and unfinished job) and one state per user (stream, read
 * marks, pending acks, collapse marks).
 *
 * JavaScript runs one step at a time, so a write done without an `await` in the middle
 * is atomic: that is this adapter's commit.
 */

import type { Envelope } from "../../schemas/envelope.ts";
import type {
  DeadLetter,
  EventRecord,
  MailTask,
  PendingAck,
  StreamItem,
  TargetRecord,
} from "../store.ts";
import type { TicketRecord } from "../ticket_store.ts";

/** Where the in-memory adapter queues mail tasks, in the same step as their items. */
export interface MailTaskSink {
  /** Queues a task due at `dueAt` (epoch ms). */
  add(dueAt: number, task: MailTask): void;
  /** Forgets every queued digest item of a user, for the right to erasure. */
  eraseUser(user: string): void;
}

/** An event's fan-out still to write: the audience, and how far the runner got. */
export interface MemoryJob {
  targets: string[];
  offset: number;
  /** Seqs assigned at creation, by user: written as they are. */
  assigned?: Map<string, number>;
}

/** Everything kept about one published event. */
export interface MemoryEvent {
  record: EventRecord;
  envelope: Envelope;
  /** Delivery record of each target, by user. */
  targets: Map<string, TargetRecord>;
  counts: { delivered: number; acked: number; failed: number };
  job?: MemoryJob;
}

/** Everything kept about one user's deliveries. */
export interface MemoryUser {
  /** The highest seq allocated or reserved (for a stream head) in the user's stream. */
  seq: number;
  /**
   * The highest seq written. Seqs taken from heads are not written in order: an item
   * written below it puts the maps keyed by seq back in order.
   */
  written: number;
  /** The stream, by seq, in ascending order. */
  items: Map<number, StreamItem>;
  /** Seqs of items that are not durable, oldest first, to forget them past the window. */
  recent: number[];
  /** The seq of each durable item, by event id. */
  byId: Map<string, number>;
  /** Unread inbox items, by seq in ascending order, with their expiry. */
  unread: Map<number, { exp?: number }>;
  pending: Map<number, PendingAck>;
  /** The latest item under each collapse key. */
  collapse: Map<string, { seq: number; id: string }>;
}

/** The whole in-memory store. */
export interface MemoryState {
  events: Map<string, MemoryEvent>;
  users: Map<string, MemoryUser>;
  /** Dead letters, by a key that sorts as time, user and seq. */
  deadLetters: Map<string, DeadLetter>;
  tickets: Map<string, TicketRecord>;
  mail?: MailTaskSink;
  /** How long items that are not durable stay available for resume. */
  recentWindowMs: number;
  /** The clock that stamps items, epoch ms. */
  now: () => number;
}

/** Creates an empty store state. */
export function createMemoryState(
  options: { recentWindowMs: number; mail?: MailTaskSink; now?: () => number },
): MemoryState {
  return {
    events: new Map(),
    users: new Map(),
    deadLetters: new Map(),
    tickets: new Map(),
    recentWindowMs: options.recentWindowMs,
    now: options.now ?? Date.now,
    ...(options.mail ? { mail: options.mail } : {}),
  };
}

/** The state of `user`, created empty on first use. */
export function userState(state: MemoryState, user: string): MemoryUser {
  let found = state.users.get(user);
  if (!found) {
    found = {
      seq: 0,
      written: 0,
      items: new Map(),
      recent: [],
      byId: new Map(),
      unread: new Map(),
      pending: new Map(),
      collapse: new Map(),
    };
    state.users.set(user, found);
  }
  return found;
}

/** A copy of a stored value: what callers get never aliases what the store keeps. */
export const copy: <T>(value: T) => T = (value) => structuredClone(value);

/** Whether an unread item's expiry has passed at `now`. */
export const expired = (entry: { exp?: number }, now: number): boolean =>
  entry.exp !== undefined && entry.exp <= now;

/** Puts the entries of a map keyed by seq back in ascending order. */
export function sortBySeq<T>(map: Map<number, T>): void {
  const entries = [...map].sort(([a], [b]) => a - b);
  map.clear();
  for (const [seq, value] of entries) map.set(seq, value);
}
