/** Timers for the SDK's `timers` option that never fire: the test reads what is pending. */

import type { RelaisTimers } from "../../src/client/relais.ts";

/** A timer queue nothing fires: what the client scheduled, as facts to assert on. */
export interface HeldTimers extends RelaisTimers {
  /** The delays of the timers set and not cleared, in the order they were set. */
  pending(): number[];
}

/**
 * Creates timers that are held, never fired: with them the client does nothing by itself,
 * and a test proves it never would by finding no timer pending.
 */
export function heldTimers(): HeldTimers {
  let nextId = 1;
  const held = new Map<number, number>();
  return {
    setTimeout(_callback, ms) { // holds it, never waits and never fires
      const id = nextId++;
      held.set(id, ms);
      return id;
    },
    clearTimeout(handle) {
      if (typeof handle === "number") held.delete(handle);
    },
    pending: () => [...held.values()],
  };
}
