/**
 * A committed fan-out batch as the bus carries it. The items of one batch are one event's
 * and nearly alike: each differs from the first only in its user and seq (and its pending
 * ack only in its seq). The packed form says once what they share and lists users and
 * seqs as two columns; an item that differs in anything else travels whole. Every node
 * reads every batch, most of whose users it does not hold: unpacking builds items only
 * for the users a node holds.
 */

import type { FanoutBatch, PendingAck, StreamItem } from "../store/store.ts";

type BatchItem = FanoutBatch["items"][number];

/** A fan-out batch packed for the bus. */
export interface PackedBatch {
  event: FanoutBatch["event"];
  /** Every item's user, in the batch's order. */
  users: string[];
  /** Every item's seq, in the same order. */
  seqs: number[];
  /** What the items share, but their seq. */
  item?: Omit<StreamItem, "seq">;
  /** What the items' pending acks share, but their seq (when the event needs acks). */
  pending?: Omit<PendingAck, "seq">;
  /** Items that differ from the shared parts, whole, by their index. */
  odd?: Record<string, BatchItem>;
  /**
   * The version of the commit that wrote the batch: the store is shared, so a node that
   * delivers an item marks its delivery record against it too.
   */
  version?: string;
}

/** How many fields `value` has, `seq` aside. */
function fieldCount(value: object): number {
  let count = 0;
  for (const key in value) if (key !== "seq") count++;
  return count;
}

/** Whether `value` has `base`'s fields (`baseCount` of them) and no other, `seq` aside. */
function alike(value: object, base: object, baseCount: number): boolean {
  const v = value as Record<string, unknown>;
  const b = base as Record<string, unknown>;
  let count = 0;
  for (const key in v) {
    if (key === "seq") continue;
    const field = v[key];
    // Nested values (a conversation item's `msg`) are not compared: such an item is odd.
    if (typeof field === "object" && field !== null) return false;
    if (!(key in b) || b[key] !== field) return false;
    count++;
  }
  return count === baseCount;
}

function withoutSeq<T extends { seq: number }>(value: T): Omit<T, "seq"> {
  const { seq: _seq, ...rest } = value;
  return rest;
}

/** Packs a committed batch for the bus. */
export function packBatch(batch: FanoutBatch): PackedBatch {
  const packed: PackedBatch = { event: batch.event, users: [], seqs: [] };
  if (batch.version !== undefined) packed.version = batch.version;
  const first = batch.items[0];
  if (!first) return packed;
  const item = withoutSeq(first.item);
  const pending = first.pending && withoutSeq(first.pending);
  packed.item = item;
  if (pending) packed.pending = pending;
  // Counted once: every item is compared with the same shared parts.
  const itemFields = fieldCount(item);
  const pendingFields = pending ? fieldCount(pending) : 0;
  let odd: Record<string, BatchItem> | undefined;
  batch.items.forEach((entry, index) => {
    packed.users.push(entry.user);
    packed.seqs.push(entry.item.seq);
    const plain = entry.replaces === undefined && alike(entry.item, item, itemFields) &&
      (pending
        ? entry.pending !== undefined && entry.pending.seq === entry.item.seq &&
          alike(entry.pending, pending, pendingFields)
        : entry.pending === undefined);
    if (!plain) (odd ??= {})[index] = entry;
  });
  if (odd) packed.odd = odd;
  return packed;
}

/** Whether `value` has the shape of a {@linkcode PackedBatch}. */
export function isPackedBatch(value: unknown): value is PackedBatch {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.event === "object" && v.event !== null && Array.isArray(v.users) &&
    Array.isArray(v.seqs) && v.users.length === v.seqs.length &&
    (v.odd === undefined || (typeof v.odd === "object" && v.odd !== null));
}

/** The batch's items for the users `holds` accepts, built again from the packed form. */
export function unpackBatch(packed: PackedBatch, holds: (user: string) => boolean): FanoutBatch {
  const items: BatchItem[] = [];
  const odd = packed.odd;
  for (let index = 0; index < packed.users.length; index++) {
    const user = packed.users[index];
    if (typeof user !== "string" || !holds(user)) continue;
    const whole = odd && Object.hasOwn(odd, index) ? odd[index] : undefined;
    if (whole) {
      if (whole.user === user && typeof whole.item === "object") items.push(whole);
      continue;
    }
    const seq = packed.seqs[index];
    if (typeof seq !== "number" || !packed.item) continue;
    const entry: BatchItem = { user, item: { ...packed.item, seq } as StreamItem };
    if (packed.pending) entry.pending = { ...packed.pending, seq } as PendingAck;
    items.push(entry);
  }
  const batch: FanoutBatch = { event: packed.event, items };
  if (typeof packed.version === "string") batch.version = packed.version;
  return batch;
}
