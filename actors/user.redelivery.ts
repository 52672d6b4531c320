/**
 * The user actor's pending acks and their redelivery schedule: when each item waiting for
 * an ack is due again, and how the schedule moves on an ack, a new connection, or the end
 * of a redelivery run. Pure functions of the context: the machine decides when they apply.
 */

import { backoffDelay } from "../src/backoff.ts";
import type { PendingAck } from "../src/store/store.ts";
import { hasConnections, type UserContext } from "./user.context.ts";

/** What a redelivery run is given. */
export interface RedeliverInput {
  userId: string;
  connections: string[];
  due: PendingAck[];
}

/** What a redelivery run reports: items resent (with new schedule) and items given up. */
export interface RedeliverOutput {
  resent: PendingAck[];
  dropped: number[];
}

/** Delay before redelivery number `attempt` (0 = the wait after the first delivery). */
export function redeliveryDelay(p: Pick<PendingAck, "backoff">, attempt: number, base: number) {
  return backoffDelay(attempt, { baseMs: base, shape: p.backoff });
}

/** The pending items that have a redelivery scheduled. */
export const scheduled = (c: UserContext): Required<PendingAck>[] =>
  Object.values(c.pending).filter((p) => p.nextAt !== undefined) as Required<PendingAck>[];

/** When the next redelivery is due: only while someone is connected to get it. */
export function nextDueAt(c: UserContext): number | undefined {
  if (!hasConnections(c)) return undefined;
  let due: number | undefined;
  for (const seq in c.pending) {
    const at = c.pending[seq].nextAt;
    if (at !== undefined && (due === undefined || at < due)) due = at;
  }
  return due;
}

/** The pending items without the one acknowledged as `id`. */
export function withoutAcked(c: UserContext, id: string): UserContext["pending"] {
  return Object.fromEntries(Object.entries(c.pending).filter(([, p]) => p.id !== id));
}

/** A new connection received every pending item: each one's wait starts again. */
export function restartWaits(c: UserContext): UserContext["pending"] {
  return Object.fromEntries(
    Object.entries(c.pending).map(([seq, p]) => [
      seq,
      { ...p, nextAt: Date.now() + redeliveryDelay(p, p.attempts, c.ackBaseMs) },
    ]),
  );
}

/**
 * The pending items after a redelivery run: those given up are forgotten, those resent
 * take their new schedule (unless acknowledged meanwhile).
 */
export function afterRedelivery(c: UserContext, output: RedeliverOutput): UserContext["pending"] {
  const pending = { ...c.pending };
  for (const seq of output.dropped) delete pending[seq];
  for (const p of output.resent) if (pending[p.seq]) pending[p.seq] = p;
  return pending;
}

/**
 * The pending items after a failed redelivery run: those that were due wait one more base
 * interval, so that a broken store is not hammered.
 */
export function postponeDue(c: UserContext): UserContext["pending"] {
  return Object.fromEntries(
    Object.entries(c.pending).map(([seq, p]) => [
      seq,
      p.nextAt !== undefined && p.nextAt <= Date.now()
        ? { ...p, nextAt: Date.now() + c.ackBaseMs }
        : p,
    ]),
  );
}
