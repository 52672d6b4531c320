/**
 * The timers a user actor is waiting on, read from a snapshot: what inspection shows
 * without reaching into the actor's scheduler.
 */

import type { UserContext } from "./user.context.ts";
import { windowOver } from "./user.pacing.ts";
import { nextDueAt, scheduled } from "./user.redelivery.ts";

/** A timer the user actor is waiting on, as its context tells it. */
export interface UserTimer {
  /** The machine's name for the delay. */
  id: "nextDue" | "lowWindow" | "budgetWindow" | "idle";
  /** What happens when it fires. */
  event: string;
  /** When it fires, in epoch milliseconds. */
  dueAt: number;
}

/**
 * The timers a user actor's snapshot is waiting on, derived from its state and context
 * (the machine records when each window started): the next redelivery, the end of the LOW
 * group, the end of the push budget window, and passivation.
 */
export function userTimers(snapshot: { value: unknown; context: UserContext }): UserTimer[] {
  const c = snapshot.context;
  const timers: UserTimer[] = [];
  const dueAt = c.redelivering ? undefined : nextDueAt(c);
  if (dueAt !== undefined) {
    const seqs = scheduled(c).filter((p) => p.nextAt === dueAt).map((p) => p.seq);
    timers.push({ id: "nextDue", event: `redeliver seq ${seqs.join(", ")}`, dueAt });
  }
  if (c.lowSince !== undefined) {
    timers.push({
      id: "lowWindow",
      event: `send ${c.lowBuffer.length} LOW item(s) as one batch`,
      dueAt: c.lowSince + c.pacing.lowWindowMs,
    });
  }
  if (c.pushes.budgetSince !== undefined && !windowOver(c, Date.now())) {
    timers.push({
      id: "budgetWindow",
      event: c.folded.count > 0
        ? `send a summary of ${c.folded.count} folded item(s) and reset the budget`
        : "reset the push budget",
      dueAt: c.pushes.budgetSince + c.pacing.budgetWindowMs,
    });
  }
  if (snapshot.value === "offline" && c.offlineSince !== undefined) {
    timers.push({ id: "idle", event: "passivate", dueAt: c.offlineSince + c.idleMs });
  }
  return timers;
}
