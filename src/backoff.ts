/**
 * Retry delays: the one helper behind every retry relais schedules (redelivery of an
 * unacknowledged item, a mail the SMTP server refused for now, a KV commit that lost a
 * race) and behind the SDK's reconnections. Web APIs only: the browser bundle uses it too.
 */

/** How the step grows with the attempt: the envelope's `retry.backoff` names the same three. */
export type BackoffShape = "EXPONENTIAL" | "LINEAR" | "FIXED";

/**
 * How much of the step is random:
 * - `none`: the step itself;
 * - `equal`: half the step plus a random half, so delays still grow while no two
 *   clients march in step;
 * - `full`: anywhere between zero and the step.
 */
export type BackoffJitter = "none" | "equal" | "full";

/** A backoff policy. */
export interface Backoff {
  /** The step of the first retry (attempt 0), in milliseconds. */
  baseMs: number;
  /** The largest step; unbounded when absent. */
  maxMs?: number;
  /** Exponential when absent. */
  shape?: BackoffShape;
  /** None when absent. */
  jitter?: BackoffJitter;
}

/** Doublings at most: past this, an exponential step stops growing (2^20 steps). */
const MAX_DOUBLINGS = 20;

/** The step before retry number `attempt` (0 for the first), before jitter. */
function step(attempt: number, policy: Backoff): number {
  const n = Math.max(0, Math.floor(attempt));
  const raw = policy.shape === "FIXED"
    ? policy.baseMs
    : policy.shape === "LINEAR"
    ? policy.baseMs * (n + 1)
    : policy.baseMs * 2 ** Math.min(n, MAX_DOUBLINGS);
  return Math.min(raw, policy.maxMs ?? Infinity);
}

/**
 * The delay before retry number `attempt` (0 for the first), in milliseconds; `random`
 * (in [0, 1)) draws the jitter.
 */
export function backoffDelay(
  attempt: number,
  policy: Backoff,
  random: () => number = Math.random,
): number {
  const s = step(attempt, policy);
  switch (policy.jitter ?? "none") {
    case "none":
      return s;
    case "equal":
      return Math.round(s / 2 + random() * (s / 2));
    case "full":
      return random() * s;
  }
}
