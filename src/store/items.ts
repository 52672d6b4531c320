/**
 * The adapter-neutral rules of stored events and stream items: what a new event's record
 * holds, what a target's item is (quiet or shown, waiting for an ack or not), and which
 * items show in the inbox, hide, or replace older ones. Every store adapter writes these.
 */

import { type Envelope, isDurable, needsAck } from "../schemas/envelope.ts";
import type { EventRecord, PendingAck, PublishResult, StreamItem, TargetPlan } from "./store.ts";

/** The record of a newly published event. */
export function eventRecord(
  envelope: Envelope,
  result: PublishResult,
  options: { chunks: number; fanningOut: boolean; publishedBy: string | undefined },
): EventRecord {
  const { id, type, expiration, collapse_key } = envelope.metadata;
  return {
    id,
    type,
    acceptedAt: Date.parse(result.accepted_at),
    ...(expiration ? { expiresAt: Date.parse(expiration) } : {}),
    durable: isDurable(envelope),
    ackRequired: needsAck(envelope),
    retry: envelope.routing.retry,
    chunks: options.chunks,
    result,
    fanningOut: options.fanningOut,
    ...(collapse_key ? { collapseKey: collapse_key } : {}),
    ...(options.publishedBy === undefined ? {} : { publishedBy: options.publishedBy }),
  };
}

/**
 * A target's new item of `event` at `seq`, whether it is quiet (its in-app channel is
 * off: kept for order and email only) and the pending ack it starts, if it needs one.
 */
export function targetItem(
  event: EventRecord,
  options: { seq: number; now: number; plan?: TargetPlan },
): { item: StreamItem; quiet: boolean; pending?: PendingAck } {
  const { seq, now, plan } = options;
  const { id } = event;
  // An item that needs an ack is shown whatever the preferences say.
  const quiet = plan?.quiet === true && !event.ackRequired;
  const exp = event.expiresAt ? { exp: event.expiresAt } : {};
  const item: StreamItem = {
    seq,
    id,
    type: event.type,
    durable: event.durable,
    ack: event.ackRequired,
    at: now,
    ...exp,
    ...(quiet ? { quiet: true } : {}),
  };
  if (!event.ackRequired) return { item, quiet };
  const pending: PendingAck = {
    seq,
    id,
    attempts: 0,
    limit: event.retry.enabled ? event.retry.limit : 0,
    backoff: event.retry.backoff,
    ...exp,
  };
  return { item, quiet, pending };
}

/** Whether a newer unread item of `event` replaces an older one with the same key. */
export const collapses = (event: EventRecord): boolean =>
  event.collapseKey !== undefined && event.durable &&
  (event.type === "NOTIFICATION" || event.type === "SYSTEM");

/** Whether an item shows in the inbox. */
export const isInboxItem = (item: StreamItem): boolean =>
  (item.type === "NOTIFICATION" || (item.type === "SYSTEM" && item.durable)) && !item.quiet &&
  item.replacedBy === undefined;

/** Items kept in the stream for order only: never replayed nor listed. */
export const isHidden = (item: StreamItem): boolean =>
  item.quiet === true || item.replacedBy !== undefined;
