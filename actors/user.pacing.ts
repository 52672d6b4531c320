/**
 * How the user actor paces new items so that a user is never flooded: LOW items wait for
 * their group's window, items past the push budget are folded into one summary at the end
 * of the budget window, and critical items go out at once. Pure functions of the context:
 * the machine decides when they apply and raises the windows' timers.
 */

import type { PendingAck } from "../src/store/store.ts";
import { hasConnections, type LiveItem, type UserContext } from "./user.context.ts";
import { redeliveryDelay } from "./user.redelivery.ts";

const NONE: LiveItem[] = [];

/** Nothing folded: the summary of a budget window that held nothing back. */
export const NO_FOLD: UserContext["folded"] = { count: 0, firstSeq: 0, lastSeq: 0 };

/** Whether an item waits for its LOW group (only when grouping is on). */
export const isLow = (c: UserContext, live: LiveItem): boolean =>
  live.pace === "low" && c.pacing.lowWindowMs > 0;

/**
 * Whether the push budget's window is over with nothing folded: it then has no timer
 * (one runs only once something is folded, to send the summary), and the next push
 * starts a new window.
 */
export const windowOver = (c: UserContext, now: number): boolean =>
  c.budgetSince !== undefined && c.folded.count === 0 &&
  now >= c.budgetSince + c.pacing.budgetWindowMs;

/**
 * How a batch of new items is paced, item by item in order: LOW ones wait for their group,
 * those past the push budget are folded into the window's summary, the rest go out now
 * (critical ones bypass the budget but count against it). Pushes only count while someone
 * is connected to see them.
 */
export function pace(c: UserContext, items: LiveItem[], now: number): {
  send: LiveItem[];
  low: LiveItem[];
  fold: LiveItem[];
  pushed: number;
} {
  const connected = hasConnections(c);
  let pushed = windowOver(c, now) ? 0 : c.pushed;
  // Most batches go out whole: nothing LOW, and within what is left of the budget.
  if (
    (!connected || pushed + items.length <= c.pacing.pushBudget) &&
    (c.pacing.lowWindowMs <= 0 || !items.some((l) => l.pace === "low"))
  ) {
    return {
      send: items,
      low: NONE,
      fold: NONE,
      pushed: connected ? pushed + items.length : pushed,
    };
  }
  const send: LiveItem[] = [];
  const low: LiveItem[] = [];
  const fold: LiveItem[] = [];
  for (const live of items) {
    if (isLow(c, live)) low.push(live);
    else if (live.pace !== "critical" && connected && pushed >= c.pacing.pushBudget) {
      fold.push(live);
    } else {
      send.push(live);
      if (connected) pushed++;
    }
  }
  return { send, low, fold, pushed };
}

/** The context after a batch of new items: grouped, folded, counted and tracked. */
export function deliverItems(c: UserContext, items: LiveItem[]): Partial<UserContext> {
  const now = Date.now();
  const { low, fold, pushed } = pace(c, items, now);
  const connected = hasConnections(c);
  let lastSeqSent = c.lastSeqSent;
  let pending: Record<number, PendingAck> | undefined;
  for (const { item, pending: p } of items) {
    if (item.seq > lastSeqSent) lastSeqSent = item.seq;
    const entry = c.pending[item.seq] ?? p;
    if (!entry) continue;
    pending ??= { ...c.pending };
    // Scheduled when it reached a connection; otherwise it waits for the next one.
    pending[item.seq] = connected
      ? { ...entry, nextAt: now + redeliveryDelay(entry, entry.attempts, c.ackBaseMs) }
      : entry;
  }
  const next: Partial<UserContext> = { lastSeqSent };
  if (pending) next.pending = pending;
  if (low.length > 0) {
    next.lowBuffer = [...c.lowBuffer, ...low];
    if (c.lowBuffer.length === 0) next.lowSince = now;
  }
  if (fold.length > 0) {
    let { count, firstSeq, lastSeq } = c.folded;
    for (const { item: { seq } } of fold) {
      firstSeq = count === 0 ? seq : Math.min(firstSeq, seq);
      lastSeq = count === 0 ? seq : Math.max(lastSeq, seq);
      count++;
    }
    next.folded = { count, firstSeq, lastSeq };
  }
  if (pushed !== c.pushed) next.pushed = pushed;
  const fresh = c.budgetSince === undefined || windowOver(c, now);
  if (fresh && (pushed > 0 || fold.length > 0)) next.budgetSince = now;
  return next;
}

/**
 * Whether a batch of new items opens a timer: it moves the redelivery schedule, starts a
 * LOW group, or folds the first item of a budget window (whose end sends the summary).
 */
export function opensTimers(c: UserContext, items: LiveItem[]): boolean {
  const connected = hasConnections(c);
  for (const live of items) {
    if (connected && (live.pending || live.item.ack)) return true;
    if (c.lowBuffer.length === 0 && isLow(c, live)) return true;
  }
  if (!connected || c.folded.count > 0) return false;
  // Nothing can fold while the batch fits in what is left of the budget (the common case:
  // no need to pace the batch here as well).
  const now = Date.now();
  const used = windowOver(c, now) ? 0 : c.pushed;
  if (used + items.length <= c.pacing.pushBudget) return false;
  return pace(c, items, now).fold.length > 0;
}
