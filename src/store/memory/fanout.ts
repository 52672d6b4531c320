/**
 * One target's stream item in memory, with everything written with it: delivery record,
 * pending ack, unread mark, collapse replacement (with the replaced item's pending ack)
 * and mail task. Shared by the one-step publish and the job fan-out, so both write the
 * same state.
 */

import { collapses, isInboxItem, targetItem } from "../items.ts";
import type { FanoutBatch, TargetPlan } from "../store.ts";
import {
  copy,
  expired,
  type MemoryEvent,
  type MemoryState,
  sortBySeq,
  userState,
} from "./_state.ts";

/** Time a non-durable item is kept past the recent window, as the KV adapter's expiry. */
const WINDOW_MARGIN_MS = 60_000;

/** Forgets the user's non-durable items that are past the recent window and its margin. */
function forgetPast(state: MemoryState, user: ReturnType<typeof userState>, now: number) {
  const cutoff = now - state.recentWindowMs - WINDOW_MARGIN_MS;
  while (user.recent.length > 0) {
    const seq = user.recent[0];
    const item = user.items.get(seq);
    if (item && item.at >= cutoff) return;
    user.recent.shift();
    user.items.delete(seq);
  }
}

/** The user's unread, unexpired item under `key`, which a newer one replaces. */
function olderUnread(user: ReturnType<typeof userState>, key: string, now: number) {
  const mark = user.collapse.get(key);
  if (!mark || !user.unread.has(mark.seq)) return undefined;
  const item = user.items.get(mark.seq);
  if (!item || item.readAt !== undefined || expired(item, now)) return undefined;
  return item;
}

/**
 * Writes `event`'s item for `target` (one step, no `await`), answering it as a fan-out
 * batch lists it. At `target.seq` when it was taken from the user's stream head (the
 * stored last seq stays), else right above the stored last seq, which it moves.
 *
 * Seqs from heads are not written in order: an item never replaces a newer one under its
 * collapse key nor moves the key's mark back.
 */
export function addTargetItem(
  state: MemoryState,
  event: MemoryEvent,
  target: { user: string; plan?: TargetPlan; seq?: number; delivered?: true },
  now: number,
): FanoutBatch["items"][number] {
  const { record } = event;
  const { id } = record;
  const user = userState(state, target.user);
  forgetPast(state, user, now);
  const seq = target.seq ?? ++user.seq;
  const late = seq < user.written;
  user.written = Math.max(user.written, seq);
  const { item, quiet, pending } = targetItem(record, {
    seq,
    now,
    ...(target.plan ? { plan: target.plan } : {}),
  });
  user.items.set(seq, item);
  if (!record.durable) user.recent.push(seq);
  // A claimed delivery (see `DeliveryClaims`) is recorded with the item, if it is shown.
  const delivered = target.delivered && !quiet && record.durable;
  // Ephemeral items are not waited on: their deliveries are counted, not recorded per user.
  if (record.durable) {
    const state = quiet ? "muted" : delivered ? "delivered" : "pending";
    event.targets.set(target.user, { seq, state, at: now });
    user.byId.set(id, seq);
    if (delivered) event.counts.delivered++;
  }
  if (pending) user.pending.set(seq, copy(pending));
  if (isInboxItem(item)) user.unread.set(seq, record.expiresAt ? { exp: record.expiresAt } : {});
  let replaces: { id: string; seq: number } | undefined;
  if (collapses(record) && !quiet) {
    const old = olderUnread(user, record.collapseKey!, now);
    if (old && old.seq < seq) {
      user.unread.delete(old.seq);
      // No longer shown: its ack will not come, and a redelivery would bring it back.
      user.pending.delete(old.seq);
      user.items.set(old.seq, { ...old, replacedBy: id });
      replaces = { id: old.id, seq: old.seq };
    }
    if ((user.collapse.get(record.collapseKey!)?.seq ?? 0) < seq) {
      user.collapse.set(record.collapseKey!, { seq, id });
    }
  }
  const mailAt = target.plan?.mailAt;
  if (mailAt !== undefined) {
    const taskId = `${id}:${target.user}`;
    state.mail?.add(mailAt, {
      kind: "item",
      id: taskId,
      user: target.user,
      event: id,
      seq,
      attempts: 0,
    });
  }
  if (late) {
    sortBySeq(user.items);
    sortBySeq(user.unread);
    sortBySeq(user.pending);
    user.recent.sort((a, b) => a - b);
  }
  return {
    user: target.user,
    item: copy(item),
    ...(pending ? { pending } : {}),
    ...(replaces ? { replaces } : {}),
    ...(delivered ? { delivered: true as const } : {}),
  };
}
