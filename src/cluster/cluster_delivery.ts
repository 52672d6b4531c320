/**
 * Live delivery across the nodes of a cluster: what a node commits reaches the users
 * connected to every node, once per node (not once per recipient).
 *
 * A committed fan-out batch travels as one bus message: the envelope once (without the
 * audience's targets) and the batch's items packed (`packed_batch.ts`); a conversation's
 * items of one turn travel together in one message too. Each node hands them to its own
 * live delivery, which passes them to the users it holds (their stream heads put them in
 * seq order, whichever node committed them). The publishing node delivers its own at once
 * and ignores the copy the bus brings back.
 *
 * The bus carries live traffic only: an item whose message is lost (its node died between
 * commit and announcement) is read from the store by the heads waiting for it, and
 * clients resume from the store.
 */

import type { LiveItem } from "../../actors/user.machine.ts";
import type { LiveDelivery } from "../delivery/live_delivery.ts";
import type { FollowMode } from "../delivery/stream_heads.ts";
import { type Envelope, toClientEnvelope, withoutTargets } from "../schemas/envelope.ts";
import { encodeEventFrame } from "../schemas/frames.ts";
import type { EventStore, StreamItem, StreamStore } from "../store/store.ts";
import type { Bus } from "./bus.ts";
import { isPackedBatch, packBatch, type PackedBatch, unpackBatch } from "./packed_batch.ts";

/** The bus topic of live items. */
export const ITEMS_TOPIC = "items";

/** One bus message of live items. */
type ItemsMessage =
  | { kind: "batch"; batch: PackedBatch; envelope: Envelope }
  | { kind: "items"; items: [user: string, live: LiveItem][] }
  | { kind: "acked"; user: string; id: string };

/** Dependencies of {@linkcode createClusterDelivery}. */
export interface ClusterDeliveryDeps {
  bus: Bus;
  /** This node's live delivery (to the users it holds). */
  local: LiveDelivery;
  /** Tells the user's actor on this node that an item was acked on another node. */
  acked(user: string, id: string): void;
  onError(message: string, error: unknown): void;
}

/** Live delivery over the bus; `stop` ends listening to it. */
export interface ClusterDelivery extends LiveDelivery {
  /** An item was acked on this node: the user's actors on the others stop waiting. */
  announceAck(user: string, id: string): void;
  stop(): void;
}

/** Whether `value` looks like a message of {@linkcode ItemsMessage}'s shape. */
function isItemsMessage(value: unknown): value is ItemsMessage {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  if (v.kind === "batch") {
    return isPackedBatch(v.batch) && typeof v.envelope === "object" && v.envelope !== null;
  }
  if (v.kind === "acked") return typeof v.user === "string" && typeof v.id === "string";
  return v.kind === "items" && Array.isArray(v.items);
}

/**
 * Whether `value` is a user's live item as a node announces it. One without its frame or
 * seq must not reach the user's stream head: the head would take its seq as done, and the
 * real item of that seq would never go out live.
 */
function isLiveItem(value: unknown): value is LiveItem {
  if (typeof value !== "object" || value === null) return false;
  const { item, frame, acceptedAt } = value as Record<string, unknown>;
  if (typeof item !== "object" || item === null) return false;
  const { seq, id } = item as Record<string, unknown>;
  return Number.isSafeInteger(seq) && (seq as number) > 0 && typeof id === "string" &&
    typeof frame === "string" && typeof acceptedAt === "number";
}

/** Creates live delivery across the cluster over `bus`. */
export function createClusterDelivery(deps: ClusterDeliveryDeps): ClusterDelivery {
  const { bus, local } = deps;

  function announce(message: ItemsMessage) {
    bus.publish(ITEMS_TOPIC, JSON.stringify(message)).catch((error) =>
      deps.onError("Announcing live items on the bus failed", error)
    );
  }

  // A conversation commit hands out its members' items one by one: those of one turn go
  // out in one message.
  let queued: [string, LiveItem][] = [];
  function flush() {
    const items = queued;
    queued = [];
    announce({ kind: "items", items });
  }

  const stop = bus.subscribe(ITEMS_TOPIC, (message) => {
    if (message.from === bus.node) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(message.data);
    } catch (error) {
      return deps.onError("A bus message of live items is not JSON", error);
    }
    if (!isItemsMessage(parsed)) {
      return deps.onError("A bus message of live items has an unknown shape", parsed);
    }
    if (parsed.kind === "acked") return deps.acked(parsed.user, parsed.id);
    if (parsed.kind === "batch") {
      const { envelope } = parsed;
      // Only the items of the users this node holds are built again.
      const batch = unpackBatch(parsed.batch, local.holds);
      if (batch.items.length === 0) return;
      local.deliverBatch(
        batch,
        JSON.stringify(toClientEnvelope(envelope)),
        envelope,
        undefined,
        "bus",
      );
      return;
    }
    for (const entry of parsed.items) {
      if (!Array.isArray(entry) || typeof entry[0] !== "string" || !isLiveItem(entry[1])) {
        deps.onError("A live item on the bus has an unknown shape", message.data.slice(0, 200));
        continue;
      }
      local.deliverItem(entry[0], entry[1]);
    }
  });

  return {
    deliverBatch(batch, json, envelope, trace) {
      local.deliverBatch(batch, json, envelope, trace);
      announce({ kind: "batch", batch: packBatch(batch), envelope: withoutTargets(envelope) });
    },
    deliverItem(user, live) {
      local.deliverItem(user, live);
      if (queued.length === 0) queueMicrotask(flush);
      queued.push([user, live]);
    },
    holds: local.holds,
    announceAck: (user, id) => announce({ kind: "acked", user, id }),
    stop,
  };
}

/** Dependencies of {@linkcode followStore}. */
export interface FollowStoreDeps {
  store: Pick<StreamStore, "readStream"> & Pick<EventStore, "getEnvelope">;
  /** Renders the frame of a conversation item of `user`'s stream (none once they left). */
  renderItem(user: string, item: StreamItem): Promise<string | undefined>;
  /** The cluster's epoch. */
  epoch(): string;
  recentWindowMs: number;
}

/** How a cluster node's stream heads follow the store: its epoch and its gap filler. */
export function followStore(deps: FollowStoreDeps): FollowMode {
  return {
    epoch: deps.epoch,
    async fill(user, after, upTo) {
      const now = Date.now();
      const read = await deps.store.readStream(user, after, {
        limit: Math.max(1, Math.min(upTo - after, 1000)),
        windowMs: deps.recentWindowMs,
        now,
        upTo,
      });
      const filled: LiveItem[] = [];
      for (const item of read.items) {
        let frame: string | undefined;
        if (item.msg) frame = await deps.renderItem(user, item);
        else {
          const envelope = await deps.store.getEnvelope(item.id);
          if (envelope) {
            frame = encodeEventFrame(item.seq, JSON.stringify(toClientEnvelope(envelope)));
          }
        }
        if (frame) filled.push({ item, frame, acceptedAt: item.at, pace: "critical" });
      }
      return filled;
    },
  };
}
