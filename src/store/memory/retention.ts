/**
 * Retention in memory: removes what is older than its kind's retention, in bounded steps,
 * as the Deno KV adapter does (events in id order, resumed from the last id handled; a
 * durable event's targets first, its record last). The kill switch audit log and mail
 * dead letters are not kept here: those kinds find nothing.
 */

import type { EventRecord, RetentionKind, RetentionStore, SweepOptions, Swept } from "../store.ts";
import type { MemoryEvent, MemoryState } from "./_state.ts";

/** Event records a step looks at, per record it may remove (as the KV adapter). */
const SCAN_FACTOR = 4;

/** Creates the retention port over `state`. */
export function createMemoryRetentionStore(state: MemoryState): RetentionStore {
  /** Removes up to `budget` targets of a durable event, then the event once none is left. */
  function dropEvent(event: MemoryEvent, budget: number): { removed: number; done: boolean } {
    const { id, collapseKey } = event.record;
    let removed = 0;
    for (const [name, target] of event.targets) {
      if (removed >= budget) return { removed, done: false };
      event.targets.delete(name);
      removed++;
      const user = state.users.get(name);
      if (!user) continue;
      const { seq } = target;
      if (user.items.get(seq)?.id === id) user.items.delete(seq);
      user.unread.delete(seq);
      user.pending.delete(seq);
      if (user.byId.get(id) === seq) user.byId.delete(id);
      if (collapseKey !== undefined && user.collapse.get(collapseKey)?.seq === seq) {
        user.collapse.delete(collapseKey);
      }
    }
    state.events.delete(id);
    return { removed, done: true };
  }

  function sweepEvents(durable: boolean, before: number, options: SweepOptions): Swept {
    const { limit, cursor } = options;
    const scanBudget = limit * SCAN_FACTOR;
    const ids = [...state.events.keys()].filter((id) => cursor === undefined || id > cursor)
      .sort();
    let removed = 0;
    let scanned = 0;
    let last = cursor;
    const stop = () => ({ removed, more: true, ...(last === undefined ? {} : { cursor: last }) });
    for (const id of ids) {
      const event = state.events.get(id);
      if (!event) continue;
      if (++scanned > scanBudget || removed >= limit) return stop();
      const record: EventRecord = event.record;
      const old = record.acceptedAt < before && record.durable === durable && !record.fanningOut;
      if (old && !durable) {
        state.events.delete(id);
        removed++;
      } else if (old) {
        const dropped = dropEvent(event, limit - removed);
        removed += dropped.removed;
        if (!dropped.done) return stop();
      }
      last = id;
    }
    return { removed, more: false };
  }

  function sweepDeadLetters(before: number, limit: number): Swept {
    let removed = 0;
    for (const [key, letter] of state.deadLetters) {
      if (letter.at >= before) continue;
      if (removed >= limit) return { removed, more: true };
      state.deadLetters.delete(key);
      removed++;
    }
    return { removed, more: false };
  }

  function sweep(kind: RetentionKind, before: number, options: SweepOptions): Promise<Swept> {
    if (!Number.isSafeInteger(options.limit) || options.limit < 1) {
      return Promise.reject(
        new RangeError(`Cannot sweep with limit "${options.limit}": expected a positive integer`),
      );
    }
    switch (kind) {
      case "items":
        return Promise.resolve(sweepEvents(true, before, options));
      case "events":
        return Promise.resolve(sweepEvents(false, before, options));
      case "dead_letters":
        return Promise.resolve(sweepDeadLetters(before, options.limit));
      case "audit":
        return Promise.resolve({ removed: 0, more: false });
    }
  }

  return { sweep };
}
