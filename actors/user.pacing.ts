/**
 * How the user actor paces new items so that a user is never flooded: LOW items wait for
 * their group's window, items past the push budget are folded into one summary at the end
 * of the budget window, and critical items go out at once. Pure functions of the context:
 * the machine decides when they apply and raises the windows' timers.
 */

import type { PendingAck } from "../src/store/store.ts";
import { hasConnections, type LiveItem, type PushCount, type UserContext } from "./user.context.ts";
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
  c.pushes.budgetSince !== undefined && c.folded.count === 0 &&
  now >= c.pushes.budgetSince + c.pacing.budgetWindowMs;

/**
 * Most batches go out whole: nothing LOW, nothing held, within what is left of the budget
 * (`pushed`, counted in the current window).
 */
function wholeBatch(c: UserContext, items: LiveItem[], connected: boolean, pushed: number) {
  return (!connected ||
    (pushed + items.length <= c.pacing.pushBudget && c.lowBuffer.length === 0)) &&
    (c.pacing.lowWindowMs <= 0 || !items.some((l) => l.pace === "low"));
}

/** How a batch of new items is paced (see {@linkcode pace}). */
export interface Paced {
  /** Items that go out now. */
  send: LiveItem[];
  /** LOW items that wait for their group's window. */
  low: LiveItem[];
  /** Items folded into the budget window's summary. */
  fold: LiveItem[];
  /** Pushes counted in the budget window after the batch. */
  pushed: number;
  /**
   * The LOW group waiting, which goes out as one batch before what is sent now: it
   * precedes the batch in the stream.
   */
  flushLow: LiveItem[];
  /** The summary of what the budget held back, told before what is sent now. */
  summary?: UserContext["folded"];
}

/**
 * How a batch of new items is paced, item by item in order: LOW ones wait for their group,
 * those past the push budget are folded into the window's summary, the rest go out now
 * (critical ones bypass the budget but count against it). Pushes only count while someone
 * is connected to see them.
 *
 * Nothing goes out over an item held back before it: a client's stream position is the
 * highest seq it got, so an item below it that it never got would be missed for good if it
 * left before the hold ended. The LOW group waiting goes first, as one batch, and the
 * batch's own LOW items before one that goes out go with it, in order; the summary of what
 * the budget folded so far goes first too (and again, whole, at the end of the window).
 */
export function pace(c: UserContext, items: LiveItem[], now: number): Paced {
  const connected = hasConnections(c);
  let pushed = windowOver(c, now) ? 0 : c.pushes.pushed;
  if (wholeBatch(c, items, connected, pushed)) {
    return {
      send: items,
      low: NONE,
      fold: NONE,
      pushed: connected ? pushed + items.length : pushed,
      flushLow: NONE,
    };
  }
  const send: LiveItem[] = [];
  let low: LiveItem[] = [];
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
  if (!connected || send.length === 0) return { send, low, fold, pushed, flushLow: NONE };
  const top = Math.max(...send.map((l) => l.item.seq));
  const below = (l: LiveItem) => l.item.seq < top;
  let sent = send;
  if (low.some(below)) {
    // The batch's LOW items before one that goes out go with it, in order.
    sent = items.filter((l) => send.includes(l) || (low.includes(l) && below(l)));
    pushed += sent.length - send.length;
    low = low.filter((l) => !below(l));
  }
  const folded = fold.filter(below);
  return {
    send: sent,
    low,
    fold,
    pushed,
    // The group waiting is older than anything in the batch.
    flushLow: c.lowBuffer,
    ...(c.folded.count > 0 || folded.length > 0 ? { summary: foldInto(c.folded, folded) } : {}),
  };
}

/** The summary `folded` becomes with `items` folded into it. */
function foldInto(folded: UserContext["folded"], items: LiveItem[]): UserContext["folded"] {
  let { count, firstSeq, lastSeq } = folded;
  for (const { item: { seq } } of items) {
    firstSeq = count === 0 ? seq : Math.min(firstSeq, seq);
    lastSeq = count === 0 ? seq : Math.max(lastSeq, seq);
    count++;
  }
  return { count, firstSeq, lastSeq };
}

/** Whether an item replaces one still waiting for an ack (which then waits no more). */
const replacesPending = (c: UserContext, replaces: LiveItem["replaces"]): boolean =>
  replaces !== undefined && c.pending[replaces.seq]?.id === replaces.id;

/** The context after a batch of new items: grouped, folded, counted and tracked. */
export function deliverItems(c: UserContext, items: LiveItem[]): Partial<UserContext> {
  const now = Date.now();
  const { low, fold, pushed, flushLow } = pace(c, items, now);
  const connected = hasConnections(c);
  let pending: Record<number, PendingAck> | undefined;
  for (const { item, pending: p, replaces } of items) {
    if (replacesPending(c, replaces)) {
      pending ??= { ...c.pending };
      delete pending[replaces!.seq];
    }
    const entry = c.pending[item.seq] ?? p;
    if (!entry) continue;
    pending ??= { ...c.pending };
    // Scheduled when it reached a connection; otherwise it waits for the next one.
    pending[item.seq] = connected
      ? { ...entry, nextAt: now + redeliveryDelay(entry, entry.attempts, c.ackBaseMs) }
      : entry;
  }
  const next: Partial<UserContext> = {};
  if (pending) next.pending = pending;
  if (flushLow.length > 0) {
    // The group went out: what is left of the batch's LOW items starts the next one.
    next.lowBuffer = low;
    next.lowSince = low.length > 0 ? now : undefined;
  } else if (low.length > 0) {
    next.lowBuffer = [...c.lowBuffer, ...low];
    if (c.lowBuffer.length === 0) next.lowSince = now;
  }
  if (fold.length > 0) next.folded = foldInto(c.folded, fold);
  next.pushes = countsAfter(c, items, pushed, fold.length > 0, now);
  return next;
}

/**
 * The push counts once `items` are handed to the machine, `pushed` of them counted in the
 * budget window (see `pace`) and some `folded`: a push or a fold starts a new window.
 */
function countsAfter(
  c: UserContext,
  items: LiveItem[],
  pushed: number,
  folded: boolean,
  now: number,
): PushCount {
  let lastSeqSent = c.pushes.lastSeqSent;
  for (const { item } of items) if (item.seq > lastSeqSent) lastSeqSent = item.seq;
  const fresh = c.pushes.budgetSince === undefined || windowOver(c, now);
  return {
    lastSeqSent,
    pushed,
    budgetSince: fresh && (pushed > 0 || folded) ? now : c.pushes.budgetSince,
  };
}

/**
 * Whether a batch only moves the push counts: it goes out whole (see `pace`: nothing LOW,
 * nothing held back, within what is left of the budget), and no item waits for an ack
 * nor replaces one that does. Such a batch never {@linkcode opensTimers}: it holds no LOW
 * item, folds nothing, flushes nothing and moves no redelivery.
 */
export function onlyCounts(c: UserContext, items: LiveItem[]): boolean {
  for (const { item, pending, replaces } of items) {
    if (pending || item.ack || c.pending[item.seq] || replacesPending(c, replaces)) return false;
  }
  const now = Date.now();
  return wholeBatch(c, items, hasConnections(c), windowOver(c, now) ? 0 : c.pushes.pushed);
}

/**
 * Counts a batch that {@linkcode onlyCounts} let through, in place: what
 * {@linkcode deliverItems} would assign for it, without a new snapshot.
 */
export function countPushes(c: UserContext, items: LiveItem[]): void {
  const now = Date.now();
  Object.assign(c.pushes, countsAfter(c, items, pace(c, items, now).pushed, false, now));
}

/**
 * Whether a batch of new items opens a timer or sends what was held: it moves the
 * redelivery schedule, starts a LOW group, folds the first item of a budget window (whose
 * end sends the summary), or goes out over held items (which then go first).
 */
export function opensTimers(c: UserContext, items: LiveItem[]): boolean {
  const connected = hasConnections(c);
  for (const live of items) {
    if (connected && (live.pending || live.item.ack || replacesPending(c, live.replaces))) {
      return true;
    }
    if (c.lowBuffer.length === 0 && isLow(c, live)) return true;
  }
  // Something held back goes out first (and a LOW group's timer may end with it).
  if (connected && (c.lowBuffer.length > 0 || c.folded.count > 0)) {
    const paced = pace(c, items, Date.now());
    if (paced.flushLow.length > 0 || paced.summary) return true;
  }
  if (!connected || c.folded.count > 0) return false;
  // Nothing can fold while the batch fits in what is left of the budget (the common case:
  // no need to pace the batch here as well).
  const now = Date.now();
  const used = windowOver(c, now) ? 0 : c.pushes.pushed;
  if (used + items.length <= c.pacing.pushBudget) return false;
  return pace(c, items, now).fold.length > 0;
}
