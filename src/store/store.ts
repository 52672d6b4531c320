/**
 * The store ports: everything relais keeps durably, in domain terms, one port per
 * concern (events and fan-out, streams, delivery state, inbox, erasure, tickets).
 *
 * KV is the source of truth; actors only cache what is here. The Deno KV adapter is
 * `kv_store.ts` (one file per port under `kv/`); a later adapter must pass the same
 * contract tests.
 */

import type { Envelope, RetryPolicy } from "../schemas/envelope.ts";
import type { TicketStore } from "./ticket_store.ts";

/** Item types, as in the envelope. */
export type ItemType = Envelope["metadata"]["type"];

/** What the publish answer says, stored so that a re-post returns it unchanged. */
export interface PublishResult {
  id: string;
  accepted_at: string;
  targeted: number;
  /** Targets that matched nobody, at most the first 100. */
  unknown_targets: string[];
  /** How many targets matched nobody, when more than are listed. */
  unknown_count?: number;
}

/** A published event as stored. */
export interface EventRecord {
  id: string;
  type: ItemType;
  acceptedAt: number;
  /** Envelope expiration in epoch ms, if any. */
  expiresAt?: number;
  durable: boolean;
  ackRequired: boolean;
  retry: RetryPolicy;
  /** How many chunks the body JSON was split into. */
  chunks: number;
  result: PublishResult;
  /** True until every target's stream entry is written. */
  fanningOut: boolean;
  /** The envelope's `collapse_key`: a newer unread item with it replaces the older one. */
  collapseKey?: string;
  /**
   * The name of the service key that published it (never the key itself): only that key
   * reads its status or replays it. Absent on records written before it was kept and on
   * events published by relais itself; any key that may publish reads those.
   */
  publishedBy?: string;
}

/** Who publishes an event, kept in its record by {@linkcode EventStore.createEvent}. */
export interface PublishOptions {
  /** The name of the publishing service key. */
  publishedBy?: string;
}

/** An item of a user's ordered stream. */
export interface StreamItem {
  seq: number;
  /** The event id (the envelope's `metadata.id`). */
  id: string;
  type: ItemType;
  durable: boolean;
  ack: boolean;
  /** When it was written, epoch ms. */
  at: number;
  /** When the envelope expires, epoch ms. */
  exp?: number;
  /** When the user read it, epoch ms. */
  readAt?: number;
  /** Kept for order and email only: the user's preferences turned the in-app channel off. */
  quiet?: boolean;
  /** The id of the newer item (same collapse key) that replaced this unread one. */
  replacedBy?: string;
  /**
   * A MESSAGE item of a conversation: conversation id, message seq and the change it
   * carries. It is sent as a `msg` frame rendered from the message as stored.
   */
  msg?: { c: string; s: number; op: "new" | "edit" | "delete" };
}

/** Backoff shapes for redelivery. */
export type Backoff = RetryPolicy["backoff"];

/** An item waiting for the user's acknowledgment. */
export interface PendingAck {
  seq: number;
  id: string;
  /** Redeliveries made so far (the first delivery is not one). */
  attempts: number;
  limit: number;
  backoff: Backoff;
  /** When the next redelivery is due, epoch ms; absent until first delivered. */
  nextAt?: number;
  exp?: number;
}

/** Delivery state of one event for one target. */
export type TargetState = "pending" | "delivered" | "acked" | "failed" | "muted";

/** A target's delivery record. */
export interface TargetRecord {
  seq: number;
  state: TargetState;
  at: number;
}

/** An item that was never acknowledged. */
export interface DeadLetter {
  id: string;
  user: string;
  seq: number;
  attempts: number;
  reason: string;
  at: number;
}

/** The delivery status of an event across its audience. */
export interface EventStatus {
  id: string;
  type: ItemType;
  accepted_at: string;
  ack_required: boolean;
  fan_out: "running" | "done";
  targeted: number;
  delivered: number;
  acked: number;
  failed: number;
  /** Every target acked (only meaningful when acks are required). */
  acked_all: boolean;
  /** Users who have not acked (or, without acks, not received) yet, at most 100. */
  pending_users: string[];
  /** Targets that matched nobody, at most the first 100. */
  unknown_targets: string[];
  /** How many targets matched nobody. */
  unknown_count: number;
}

/** Items of a stream with what a resume could not serve. */
export interface StreamRead {
  items: StreamItem[];
  /** The read's end: `upTo` when given, else the user's last seq at the time of reading. */
  last: number;
  /**
   * False when `after` is past `last`, the limit cut the read short, or a stored item that
   * is not durable (written by earlier versions) left the recent window. Gaps in the
   * seqs are not missing items: seqs of ephemeral items and reserved seqs never used
   * have none.
   */
  complete: boolean;
}

/** A page of the inbox. */
export interface InboxPage {
  items: (StreamItem & { envelope: Envelope })[];
  unread: number;
  /** Cursor for the next page, if any. */
  next?: number;
}

/** Items written by one committed fan-out batch, for live delivery. */
export interface FanoutBatch {
  event: EventRecord;
  /** Each item written, with its pending ack when the event needs one. */
  items: {
    user: string;
    item: StreamItem;
    pending?: PendingAck;
    /** The older unread item (same collapse key) this one replaced. */
    replaces?: { id: string; seq: number };
  }[];
}

/** The outcome of {@linkcode EventStore.publishAtomic}. */
export interface AtomicPublish {
  /** False when the id was known: `event` is then the first event's record. */
  created: boolean;
  event: EventRecord;
  /** Every item written, for live delivery; present when `created`. */
  batch?: FanoutBatch;
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

/** A range of seqs reserved for a stream head, both ends included. */
export interface SeqRange {
  from: number;
  to: number;
}

/** A mail task, queued atomically with the stream items it is about. */
export type MailTask =
  | { kind: "item"; id: string; user: string; event: string; seq: number; attempts: number }
  | {
    kind: "digest";
    id: string;
    user: string;
    period: "hourly" | "daily";
    attempts: number;
  };

/** What {@linkcode ErasureStore.eraseUser} removed. */
export interface Erased {
  streamItems: number;
  pendingAcks: number;
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
   */
  createEvent(
    envelope: Envelope,
    targets: string[],
    result: PublishResult,
    options?: PublishOptions,
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
    options?: SeqOptions & { plan?: FanoutPlanner },
  ): Promise<void>;
  /** Ids of the events whose fan-out is unfinished. */
  unfinishedFanouts(): Promise<string[]>;
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

/** One delivery to record: an event's item reached one of its targets. */
export interface DeliveredEntry {
  id: string;
  user: string;
  /** The item is ephemeral: counted, with no per-target record to update. */
  ephemeral?: boolean;
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
   * collapse keys, delivery records and queued digest items. The stream's last seq stays
   * (a count, no content): a seq never names two items, and the user's devices may still
   * hold positions in the erased stream.
   */
  eraseUser(user: string): Promise<Erased>;
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
    TicketStore,
    StoreLifecycle {}
