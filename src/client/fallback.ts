/**
 * The reconnection policy: which transport to try next, after how long, or whether to wait.
 *
 * Pure functions over a small state, so every decision is unit-tested without sockets.
 * A transport that cannot be established `failuresBeforeFallback` times in a row gives way
 * to the next one (WebSocket → SSE → poll); when the last one fails too, the server itself
 * is more likely down, so the policy starts over from the first. Every failure since the
 * last welcome makes the next delay grow exponentially, except the first move to each
 * fallback, which is tried at once: a blocked transport says nothing about the next one. A
 * connection that was up and dropped is retried on the same transport. After `probeAfterMs` on a fallback, the next
 * reconnect tries the best transport again.
 */

import type { TransportKind } from "./types.ts";

/** WebSocket close codes (and their SSE/poll equivalents) the policy acts on. */
export const CODES = {
  unauthenticated: 4001,
  forbidden: 4003,
  policy: 4008,
  idle: 4009,
} as const;

/** How the client falls back and retries. */
export interface FallbackPolicy {
  order: readonly TransportKind[];
  /** Consecutive failures to establish a transport before the next one is tried. */
  failuresBeforeFallback: number;
  /** Time on a fallback after which a reconnect tries the first transport again; 0: never. */
  probeAfterMs: number;
  /** A connection that stayed up this long resets the backoff. */
  stableAfterMs: number;
  /** Consecutive authentication failures before the client gives up. */
  maxAuthFailures: number;
}

/** Default policy: WebSocket, SSE, poll; two failures each; probe WebSocket after 5 min. */
export const DEFAULT_POLICY: FallbackPolicy = {
  order: ["ws", "sse", "poll"],
  failuresBeforeFallback: 2,
  probeAfterMs: 5 * 60_000,
  stableAfterMs: 10_000,
  maxAuthFailures: 3,
};

/** Where the policy stands. */
export interface FallbackState {
  /** Index of the current transport in `order`. */
  index: number;
  /** Consecutive failures to establish the current transport. */
  failures: number;
  /** Failures to establish any transport since the last welcome (drives the backoff). */
  attempt: number;
  /** Every transport failed since the last welcome, and the order started over. */
  wrapped: boolean;
  /** Consecutive drops of connections that did not stay up `stableAfterMs`. */
  drops: number;
  authFailures: number;
  /** When the client left the first transport, epoch ms. */
  fellBackAt?: number;
}

/** How a connection attempt ended. */
export interface Outcome {
  /** The server welcomed the connection before it ended. */
  welcomed: boolean;
  /** Close code (WebSocket code, or the SSE/poll `close` frame's, or mapped from HTTP). */
  code: number;
  /** How long the connection was up after its welcome, ms. */
  openForMs: number;
  /** The server's `retry_after_ms` or `Retry-After`, if it gave one. */
  retryAfterMs?: number;
  /** When it ended, epoch ms. */
  at: number;
}

/** What to do next. */
export type Decision =
  | {
    kind: "retry";
    transport: TransportKind;
    /** The backoff attempt the delay is computed from. */
    attempt: number;
    /** A lower bound for the delay (the server's retry hint). */
    minDelayMs?: number;
  }
  /** Closed for inactivity: reconnect when the user is active again. */
  | { kind: "dormant" }
  /** Do not reconnect by yourself. */
  | { kind: "stop"; reason: string };

/** The state before the first connection. */
export function initialFallback(): FallbackState {
  return { index: 0, failures: 0, attempt: 0, wrapped: false, drops: 0, authFailures: 0 };
}

/** The transport the state points at. */
export function currentTransport(state: FallbackState, policy: FallbackPolicy): TransportKind {
  return policy.order[Math.min(state.index, policy.order.length - 1)];
}

/** The state once a connection is welcomed. */
export function welcomed(state: FallbackState): FallbackState {
  return { ...state, failures: 0, attempt: 0, wrapped: false, authFailures: 0 };
}

/** Decides what follows `outcome`. */
export function decide(
  state: FallbackState,
  outcome: Outcome,
  policy: FallbackPolicy = DEFAULT_POLICY,
): { state: FallbackState; decision: Decision } {
  const retry = (next: FallbackState, attempt: number, minDelayMs?: number) => ({
    state: next,
    decision: {
      kind: "retry" as const,
      transport: currentTransport(next, policy),
      attempt,
      ...(minDelayMs !== undefined ? { minDelayMs } : {}),
    },
  });
  if (outcome.code === CODES.idle) {
    return { state: { ...state, failures: 0, drops: 0 }, decision: { kind: "dormant" } };
  }
  if (outcome.code === CODES.unauthenticated) {
    const authFailures = (outcome.welcomed ? 0 : state.authFailures) + 1;
    if (authFailures >= policy.maxAuthFailures) {
      return {
        state: { ...state, authFailures },
        decision: { kind: "stop", reason: "The server refused the credentials" },
      };
    }
    // An expired token: retry at once with fresh credentials, then back off.
    return retry({ ...state, authFailures }, authFailures - 1);
  }
  if (outcome.code === CODES.forbidden) {
    // Realtime switched off for this user: wait long, it may be switched on again.
    return retry({ ...state, failures: 0 }, 30, outcome.retryAfterMs);
  }

  if (outcome.welcomed) {
    const drops = outcome.openForMs >= policy.stableAfterMs ? 0 : state.drops + 1;
    let next: FallbackState = {
      ...state,
      failures: 0,
      attempt: 0,
      wrapped: false,
      drops,
      authFailures: 0,
    };
    if (
      next.index > 0 && policy.probeAfterMs > 0 && next.fellBackAt !== undefined &&
      outcome.at - next.fellBackAt >= policy.probeAfterMs
    ) {
      next = { ...next, index: 0, fellBackAt: undefined };
    }
    return retry(next, drops, outcome.retryAfterMs);
  }

  // The transport could not be established.
  const failures = state.failures + 1;
  const attempt = state.attempt + 1;
  if (failures < policy.failuresBeforeFallback) {
    return retry({ ...state, failures, attempt }, attempt - 1, outcome.retryAfterMs);
  }
  if (state.index < policy.order.length - 1) {
    const next = {
      ...state,
      index: state.index + 1,
      failures: 0,
      attempt,
      fellBackAt: state.fellBackAt ?? outcome.at,
    };
    return retry(next, state.wrapped ? attempt - 1 : 0, outcome.retryAfterMs);
  }
  // Every transport failed: the server is likely down; start over with the first.
  return retry(
    { ...state, index: 0, failures: 0, attempt, wrapped: true, fellBackAt: undefined },
    attempt - 1,
    outcome.retryAfterMs,
  );
}
