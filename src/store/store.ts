/**
 * The store ports: everything relais keeps durably, in domain terms, one port per
 * concern (events and fan-out, streams, delivery state, inbox, erasure, retention, tickets). The
 * records they keep and answer are in `records.ts`, re-exported here.
 *
 * KV is the source of truth; actors only cache what is here. The Deno KV adapter is
 * `kv_store.ts` (one file per port under `kv/`); a later adapter must pass the same
 * contract tests.
 */

import type { Envelope } from "../schemas/envelope.ts";
import type {
  AtomicPublish,
  DeadLetter,
  DeliveredEntry,
  Erased,
  EventRecord,
  EventStatus,
  FanoutBatch,
  InboxPage,
  PendingAck,
  PublishResult,
  SeqRange,
  StreamItem,
  StreamRead,
  TargetRecord,
} from "./records.ts";
import type { TicketStore } from "./ticket_store.ts";

export type * from "./records.ts";

/** Who publishes an event, kept in its record by {@linkcode EventStore.createEvent}. */
export interface PublishOptions {
  /** The name of the publishing service key. */
  publishedBy?: string;
}

/** What the preferences decide for one target of a fan-out. */
export interface TargetPlan {
  /** Record the item without showing it in-app (no unread mark, no live push). */
  quiet: boolean;
  /** When to decide on an email for it, epoch ms; absent: no email. */
  mailAt?: number;
}

/** Decides, per batch of targets, how each one gets the event (same order as `users`). */
export type FanoutPlanner = (users: string[], event: EventRecord) => Promise<TargetPlan[]>;

/**
 * Seqs handed out from memory. A user whose stream head is live in this process takes
 * every new seq from it: the head holds a range reserved with
 * {@linkcode StreamStore.reserveSeqs}, so a write at such a seq neither reads, checks nor
 * moves the user's stored last seq, and many users share one commit.
 *
 * Every seq taken is either written and handed back to the caller in the batch that
 * wrote it (which gives it to the head), or given back with `drop`.
 */
export interface SeqSource {
  /**
   * The next seq of `user`'s stream from its live head, or `undefined` when the user has
   * none: the store then allocates above the stored last seq, checked. A promise while the
   * head is opening or must first extend its reservation: nothing is written at that seq
   * before it resolves.
   *
   * A head reserves its range above the stored last seq, so a store that allocates itself
   * reads the stored last seq and only then asks `take` again: a user whose head opened,
   * or began to, in between takes from it; one whose head opens later makes the write's
   * check fail.
   */
  take(user: string): number | Promise<number> | undefined;
  /** Gives back a taken seq that will not be written (the write failed or gave up). */
  drop(user: string, seq: number): void;
}

/** Where seqs come from for a write: the live heads of this process, if any. */
export interface SeqOptions {
  seqs?: SeqSource;
}

/**
 * Deliveries made before their records were written (items sent ahead of their fan-out
 * job, see `EventStore.createEvent`'s `assigned`). A job's batch that claims one writes
 * the record as delivered at once (and counts it), and whoever would have marked it
 * later does not: one write per delivery instead of two.
 */
export interface DeliveryClaims {
  /** Takes the record of `user`'s delivery of event `id`: true when it went out and is not recorded yet. */
  claim(id: string, user: string): boolean;
  /** Gives back a claim whose batch was not written: the delivery is recorded as usual. */
  release(id: string, user: string): void;
}

/** How a fan-out job writes: seqs from heads, each batch's plan, claimed deliveries. */
export interface FanoutRunOptions extends SeqOptions {
  plan?: FanoutPlanner;
  claims?: DeliveryClaims;
}

/**
 * Published events and their fan-out: the event record, its body, the job that writes
 * every target's stream entry, and the delivery status across the audience.
 */
export interface EventStore {
  /**
   * Stores an event and its fan-out job atomically. Answers `created: false` with the
   * first event's record when the id is known already, whoever published it: the record
   * is written only if the id is free, in the same commit that checks it, so of two
   * racing publishes exactly one creates it and the other reads the winner's record.
   *
   * `assigned` gives seqs some targets already took (from their live heads): they are
   * stored with the job, durable before the answer, and the job writes those targets'
   * items at exactly these seqs, after a restart too. Their items may then go out before
   * the job writes them.
   */
  createEvent(
    envelope: Envelope,
    targets: string[],
    result: PublishResult,
    options?: PublishOptions & { assigned?: ReadonlyMap<string, number> },
  ): Promise<{ created: boolean; event: EventRecord }>;
  /**
   * Stores an event, its body and every target's stream entry (with its delivery record,
   * pending ack, unread mark, collapse replacement and mail task) in one commit, with no
   * fan-out job. Answers `undefined`, writing nothing, when the audience does not fit in
   * one atomic operation: then use `createEvent` and `runFanout`. Answers
   * `created: false` with the first event's record when the id is known already, as
   * `createEvent` does.
   */
  publishAtomic(
    envelope: Envelope,
    targets: string[],
    result: PublishResult,
    options?: PublishOptions & SeqOptions & { plan?: FanoutPlanner },
  ): Promise<AtomicPublish | undefined>;
  /**
   * Writes the stream entries of an event's pending fan-out job, in batches, each batch
   * atomically with the job's progress; calls `onBatch` after each commit.
   * Safe to call again after a crash: finished batches are not written twice.
   */
  runFanout(
    id: string,
    onBatch: (batch: FanoutBatch) => void,
    options?: FanoutRunOptions,
  ): Promise<void>;
  /**
   * Ids of the events whose fan-out is unfinished; with `assigned`, only those whose job
   * was given seqs at creation (see `createEvent`).
   */
  unfinishedFanouts(options?: { assigned?: boolean }): Promise<string[]>;
  /** The record of an event, if it is known. */
  getEvent(id: string): Promise<EventRecord | undefined>;
  /** The envelope an event was published with, if it is still stored. */
  getEnvelope(id: string): Promise<Envelope | undefined>;
  /** The delivery status of an event across its audience, if it is known. */
  getStatus(id: string): Promise<EventStatus | undefined>;
}

/** Each user's ordered stream of items, as a resume or a lookup reads it. */
export interface StreamStore {
  /**
   * The highest seq allocated or reserved in the user's stream; 0 when there is none.
   * Items may be missing below it: seqs of ephemeral items (kept in memory only) and
   * reserved seqs never used leave gaps.
   */
  lastSeq(user: string): Promise<number>;
  /**
   * Items after `after` up to `upTo` (default: `lastSeq`), in order, at most `limit`,
   * skipping expired and hidden ones. Gaps are not missing items: `complete` is false
   * only when `after` is past the last seq, or `limit` or the recent window (for
   * ephemeral items stored by earlier versions) cut the read short.
   */
  readStream(
    user: string,
    after: number,
    options: { limit: number; windowMs: number; now: number; upTo?: number },
  ): Promise<StreamRead>;
  /**
   * Reserves `count` seqs of the user's stream for a stream head, atomically with any
   * other allocation: nothing the store allocates afterwards, and nothing it allocated
   * before, falls in the range. With `after` (the end of the head's current range), the
   * new range must follow it directly: answers `undefined`, reserving nothing, when a seq
   * above `after` was allocated meanwhile (the head's range cannot continue).
   */
  reserveSeqs(user: string, count: number, after?: number): Promise<SeqRange | undefined>;
  /** The item of an event in a user's stream, if it is still there. */
  findItem(user: string, id: string): Promise<StreamItem | undefined>;
}

/**
 * The delivery state of each target of an event: delivered marks, the acknowledgments
 * still awaited, and the dead letters of those never given. Every change keeps the
 * event's status counters in step.
 */
export interface DeliveryStore {
  /** The user's items still waiting for an acknowledgment. */
  listPending(user: string): Promise<PendingAck[]>;
  /** Updates pending acks (attempts, next redelivery); acked ones stay gone. */
  savePending(user: string, pending: PendingAck[]): Promise<void>;
  /** Records the acknowledgment of an item; false if the user had no such item. */
  ack(user: string, id: string, now: number): Promise<boolean>;
  /** Moves unacknowledged items to the dead letters. */
  deadLetter(user: string, pending: PendingAck[], reason: string, now: number): Promise<void>;
  /** The latest dead letters first, at most `limit`. */
  listDeadLetters(options: { limit: number }): Promise<DeadLetter[]>;
  /**
   * Marks targets delivered (only those still pending). Ephemeral items (REALTIME and
   * SYSTEM without ack) have no per-target record: their deliveries are only counted.
   */
  markDelivered(entries: DeliveredEntry[], now: number): Promise<void>;
}

/** The inbox: a user's NOTIFICATION and durable SYSTEM items, with their read state. */
export interface InboxStore {
  /** A page of the inbox, newest first unless `after` asks for the items after a seq. */
  listInbox(
    user: string,
    options: { after?: number; limit: number; unreadOnly: boolean; now: number },
  ): Promise<InboxPage>;
  /** How many unexpired inbox items the user has not read. */
  unreadCount(user: string, now: number): Promise<number>;
  /** Marks an inbox item read; false if the user had no such item. */
  markRead(user: string, id: string, now: number): Promise<boolean>;
  /** Marks every unread inbox item read; answers how many were. */
  markAllRead(user: string, now: number): Promise<number>;
}

/** Forgets a user's deliveries, for the right to erasure. */
export interface ErasureStore {
  /**
   * Erases what relais holds about a user's deliveries: stream, inbox, pending acks,
   * collapse keys, delivery records, dead letters and queued digest items. The stream's
   * last seq stays (a count, no content): a seq never names two items, and the user's
   * devices may still hold positions in the erased stream.
   */
  eraseUser(user: string): Promise<Erased>;
  /**
   * A page of everything a user's stream holds, for an export: the items after `after`
   * in seq order, hidden and expired ones included, each with its delivery record.
   */
  exportItems(user: string, options: { after: number; limit: number }): Promise<ExportedItem[]>;
}

/** A stream item as an export lists it, with the delivery record of its event. */
export interface ExportedItem {
  item: StreamItem;
  delivery?: TargetRecord;
}

/**
 * What the retention sweeper removes, one kind at a time:
 *
 * - `items`: durable events accepted before the cut, with everything that names them: every
 *   target's stream item, unread mark, pending ack and collapse mark (when it names that
 *   item), the delivery records and counters, the event's record and body. An event whose
 *   fan-out is unfinished is left for a later round.
 * - `events`: the records (and bodies and counters) of ephemeral events (REALTIME, SYSTEM
 *   without ack) accepted before the cut: their items lived in memory only.
 * - `dead_letters`: the delivery and mail dead letters recorded before the cut.
 * - `audit`: the kill switch audit log entries made before the cut.
 */
export type RetentionKind = "items" | "events" | "dead_letters" | "audit";

/** Every {@linkcode RetentionKind}, in the order a sweep round takes them. */
export const RETENTION_KINDS: readonly RetentionKind[] = [
  "items",
  "events",
  "dead_letters",
  "audit",
];

/** One bounded step of a sweep. */
export interface SweepOptions {
  /** Most records one call removes (stream items, event records, letters, entries). */
  limit: number;
  /** Where the previous call of the same round stopped, as it answered. */
  cursor?: string;
}

/** What one step of a sweep did. */
export interface Swept {
  /** Records removed. */
  removed: number;
  /** The step stopped at its bound: call again with `cursor` for the rest. */
  more: boolean;
  /** Where to go on from, when `more`. */
  cursor?: string;
}

/** Removes what is older than its retention, in bounded steps. */
export interface RetentionStore {
  /**
   * Removes records of `kind` from before `before` (epoch ms), at most `options.limit`
   * per call, each commit holding a few hundred keys at most, every index that names a
   * removed record updated in the same commit. Answers `more: true` with a cursor while
   * there may be more to look at.
   */
  sweep(kind: RetentionKind, before: number, options: SweepOptions): Promise<Swept>;
}

/** The store's own health and lifetime. */
export interface StoreLifecycle {
  /** Whether the store answers. */
  ping(): Promise<boolean>;
  /** Releases the store's connection. */
  close(): void;
}

/**
 * Everything the delivery path needs from durable storage: the composition of every
 * port above, for the app that wires them. A consumer asks only for the port it uses.
 */
export interface Store
  extends
    EventStore,
    StreamStore,
    DeliveryStore,
    InboxStore,
    ErasureStore,
    RetentionStore,
    TicketStore,
    StoreLifecycle {}
