/**
 * What the store keeps and answers, in domain terms: event records, stream items, delivery
 * state, dead letters, inbox pages, mail tasks. The ports that read and write them are in
 * `store.ts`, which re-exports every type here.
 */

import type { Envelope, RetryPolicy } from "../schemas/envelope.ts";

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
  /** How many chunks the body JSON was split into (0 when it is `body`). */
  chunks: number;
  /** The body JSON, when small enough to be kept in the record itself. */
  body?: string;
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
    /** It went out live before this batch wrote it: not to be sent again. */
    sent?: true;
    /** Its delivery was claimed (see `DeliveryClaims`): written as delivered, nothing to record. */
    delivered?: true;
  }[];
  /**
   * The items went out before any was written (see `EventStore.createEvent`'s
   * `assigned`): only live delivery takes such a batch; its batches say the rest.
   */
  ahead?: true;
  /**
   * The version of the commit that wrote the batch (a KV versionstamp), when the store
   * has one: every delivery record of the batch carries it, so a delivery is marked
   * without reading its record back (see {@linkcode DeliveredEntry.written}).
   */
  version?: string;
}

/** The outcome of `EventStore.publishAtomic`. */
export interface AtomicPublish {
  /** False when the id was known: `event` is then the first event's record. */
  created: boolean;
  event: EventRecord;
  /** Every item written, for live delivery; present when `created`. */
  batch?: FanoutBatch;
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

/** What `ErasureStore.eraseUser` removed. */
export interface Erased {
  streamItems: number;
  pendingAcks: number;
}

/** One delivery to record: an event's item reached one of its targets. */
export interface DeliveredEntry {
  id: string;
  user: string;
  /** The item is ephemeral: counted, with no per-target record to update. */
  ephemeral?: boolean;
  /**
   * The delivery record as its fan-out wrote it: the item's seq and the batch's
   * `version`. The record is then marked if it is still that one, without being read;
   * otherwise (acked or erased meanwhile) it is read as when this is absent.
   */
  written?: { seq: number; version: string };
}
