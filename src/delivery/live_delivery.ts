/**
 * Live delivery: how a committed batch of a fan-out reaches the users online. Each item
 * goes to its user's stream head, which passes it on to the user's actor in seq order;
 * the envelope arrives encoded once, and each user's frame only adds its seq.
 */

import type { Registry } from "../../actors/registry.ts";
import type { LiveItem } from "../../actors/user.machine.ts";
import { isCritical } from "../preferences/preferences.ts";
import type { Envelope } from "../schemas/envelope.ts";
import { encodeEventFrame, encodeUpdateFrame } from "../schemas/frames.ts";
import type { FanoutBatch } from "../store/store.ts";
import type { SpanContext } from "../tracing.ts";
import type { StreamHeads } from "./stream_heads.ts";

/** What {@linkcode createLiveDelivery} needs. */
export interface LiveDeliveryDeps {
  heads: StreamHeads;
  registry: Registry;
  /**
   * Told when a NOTIFICATION for the email channel was accepted at `acceptedAt`, `urgent`
   * when it must not wait for the grace period (high priority, or in-app turned off);
   * absent when mail is off.
   */
  mailDue?(acceptedAt: number, urgent: boolean): void;
}

/** The two ways into a user's stream from memory. */
export interface LiveDelivery {
  /** Whether `user` is held here: their stream head or actor is live, or being built. */
  holds(user: string): boolean;
  /** Hands one item to `user`'s head, which releases it to their actor in seq order. */
  deliverItem(user: string, live: LiveItem): void;
  /**
   * Pushes a committed fan-out batch to its online targets; each item carries `trace` (the
   * batch's span) to its user's send when the event is traced. A batch another node
   * committed (`from: "bus"`) only goes to the users this node holds: that node told the
   * mailer already.
   */
  deliverBatch(
    batch: FanoutBatch,
    clientEnvelopeJson: string,
    envelope: Envelope,
    trace?: SpanContext,
    from?: "bus",
  ): void;
}

/** How an envelope's items are paced by the user actor. */
function paceOf(envelope: Envelope): LiveItem["pace"] {
  const { metadata } = envelope;
  if (isCritical(metadata)) return "critical";
  return metadata.priority === "LOW" ? "low" : "normal";
}

/** Creates live delivery over the stream heads. */
export function createLiveDelivery(deps: LiveDeliveryDeps): LiveDelivery {
  const { heads, registry } = deps;
  const deliverItem = (user: string, live: LiveItem) => heads.settle(user, live.item.seq, live);
  const holds = (user: string) => heads.has(user) || registry.has("user", user);

  return {
    holds,
    deliverItem,
    deliverBatch(batch, json, envelope, trace, from) {
      const acceptedAt = batch.event.acceptedAt;
      const { metadata, routing } = envelope;
      const pace = paceOf(envelope);
      let quiet = false;
      for (const { user, item, pending, replaces, sent } of batch.items) {
        // Out already, before the batch wrote it.
        if (sent) continue;
        // Recorded for order and email only: the user turned the in-app channel off. Its
        // seq is done all the same.
        if (item.quiet) {
          quiet = true;
          heads.settle(user, item.seq);
          continue;
        }
        // Offline users (no head, no actor live or being built) get it from their stream
        // when they come back.
        if (!holds(user)) continue;
        const frame = replaces
          ? encodeUpdateFrame(item.seq, json, replaces)
          : encodeEventFrame(item.seq, json);
        const live: LiveItem = {
          item,
          frame,
          // Shared by every target: what the head's window keeps to replay it.
          json,
          acceptedAt,
          pace: item.ack ? "critical" : pace,
        };
        if (pending) live.pending = pending;
        if (replaces) live.replaces = replaces;
        // An item waiting for an ack is often acked before its delivery is recorded: its
        // record is read then, not checked against a version it no longer has.
        if (batch.version && item.durable && !pending) live.version = batch.version;
        if (trace) live.trace = trace;
        deliverItem(user, live);
      }
      if (
        deps.mailDue && from !== "bus" && metadata.type === "NOTIFICATION" &&
        routing.channels.includes("email")
      ) {
        deps.mailDue(acceptedAt, quiet || metadata.priority === "HIGH");
      }
    },
  };
}
