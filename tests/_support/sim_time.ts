/** Simulated time for machine tests: XState's clock and the wall clock, moved together. */

import { SimulatedClock } from "xstate";

/** A simulated clock and a frozen wall clock that only move when the test says so. */
export interface SimulatedTime extends Disposable {
  /** Give it to `createActor(machine, { clock })`: delayed events wait on it. */
  clock: SimulatedClock;
  /** Moves both clocks on by `ms`, firing the delayed events that fall due. */
  advance(ms: number): void;
}

/**
 * Freezes `Date.now()` and pairs it with a `SimulatedClock`, for machines that schedule with
 * XState's clock but stamp or compare times with `Date.now()` (windows, throttles, due
 * times). Declare it with `using`: the real `Date.now` comes back when the test ends.
 */
export function simulatedTime(): SimulatedTime {
  const clock = new SimulatedClock();
  const realNow = Date.now;
  const start = realNow();
  Date.now = () => start + clock.now();
  return {
    clock,
    advance: (ms) => clock.increment(ms),
    [Symbol.dispose]() {
      Date.now = realNow;
    },
  };
}
