/** Reconnection delays: exponential with jitter, so clients of a restarted server spread out. */

import { backoffDelay as delay } from "../backoff.ts";

/** How reconnection delays grow. */
export interface BackoffOptions {
  /** The delay step of the first retry, in milliseconds. */
  baseMs: number;
  /** The largest delay step. */
  maxMs: number;
}

/** Default backoff: 500 ms doubling up to 30 s. */
export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 30_000 };

/**
 * The delay before retry number `attempt` (0-based): "equal jitter", half the exponential
 * step plus a random half, so delays grow for sure while no two clients march in step.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  return delay(attempt, { ...options, jitter: "equal" }, random);
}
