import assert from "node:assert/strict";
import {
  currentTransport,
  decide,
  DEFAULT_POLICY,
  type FallbackState,
  initialFallback,
  type Outcome,
  welcomed,
} from "../../src/client/fallback.ts";

const policy = { ...DEFAULT_POLICY, probeAfterMs: 60_000, stableAfterMs: 10_000 };
const failed = (at = 0): Outcome => ({ welcomed: false, code: 1006, openForMs: 0, at });
const dropped = (openForMs: number, at = 0): Outcome => ({
  welcomed: true,
  code: 1006,
  openForMs,
  at,
});

/** Runs outcomes from a state; returns the decisions. */
function run(outcomes: Outcome[], state: FallbackState = initialFallback()) {
  const decisions = [];
  for (const outcome of outcomes) {
    const step = decide(state, outcome, policy);
    state = step.state;
    decisions.push(step.decision);
  }
  return { state, decisions };
}

Deno.test("fallback starts on the WebSocket", () => {
  assert.equal(currentTransport(initialFallback(), policy), "ws");
});

Deno.test("fallback retries a blocked WebSocket once, then moves to SSE, then to polling", () => {
  const { decisions } = run([failed(), failed(), failed(), failed()]);
  assert.deepEqual(
    decisions.map((d) => d.kind === "retry" && d.transport),
    ["ws", "sse", "sse", "poll"],
  );
});

Deno.test("fallback moves to each fallback at once, then backs off exponentially", () => {
  const { decisions } = run(Array.from({ length: 9 }, () => failed()));
  assert.deepEqual(
    decisions.map((d) => d.kind === "retry" && `${d.transport} ${d.attempt}`),
    ["ws 0", "sse 0", "sse 2", "poll 0", "poll 4", "ws 5", "ws 6", "sse 7", "sse 8"],
  );
});

Deno.test("fallback starts over from the WebSocket when every transport failed", () => {
  const { decisions } = run(Array.from({ length: 7 }, () => failed()));
  assert.deepEqual(
    decisions.map((d) => d.kind === "retry" && d.transport),
    ["ws", "sse", "sse", "poll", "poll", "ws", "ws"],
  );
});

Deno.test("fallback stays on a transport that worked when its connection drops", () => {
  let { state } = run([failed(), failed()]);
  state = welcomed(state);
  const { decisions } = run([dropped(60_000)], state);
  assert.deepEqual(decisions, [{ kind: "retry", transport: "sse", attempt: 0 }]);
});

Deno.test("fallback grows the delay when connections keep dropping soon after their welcome", () => {
  const { decisions } = run([dropped(100), dropped(100), dropped(100), dropped(20_000)]);
  assert.deepEqual(decisions.map((d) => d.kind === "retry" && d.attempt), [1, 2, 3, 0]);
});

Deno.test("a welcome resets the backoff and the failure count", () => {
  const { state } = run([failed(), failed(), failed()]);
  const reset = welcomed(state);
  assert.equal(reset.attempt, 0);
  assert.equal(reset.failures, 0);
  assert.equal(currentTransport(reset, policy), "sse");
});

Deno.test("fallback tries the WebSocket again on a reconnect after probeAfterMs on a fallback", () => {
  let { state } = run([failed(1000), failed(1000)]);
  assert.equal(currentTransport(state, policy), "sse");
  state = welcomed(state);
  const early = decide(state, dropped(30_000, 30_000), policy);
  assert.deepEqual(early.decision, { kind: "retry", transport: "sse", attempt: 0 });
  const late = decide(state, dropped(90_000, 90_000), policy);
  assert.deepEqual(late.decision, { kind: "retry", transport: "ws", attempt: 0 });
});

Deno.test("an idle close makes the client dormant until the user is active", () => {
  const { decisions } = run([{ welcomed: true, code: 4009, openForMs: 1000, at: 0 }]);
  assert.deepEqual(decisions, [{ kind: "dormant" }]);
});

Deno.test("an expired token is retried at once, and refused credentials stop the client", () => {
  const expired = { welcomed: true, code: 4001, openForMs: 50_000, at: 0 };
  const refused = { welcomed: false, code: 4001, openForMs: 0, at: 0 };
  const { decisions } = run([expired, refused, refused]);
  assert.deepEqual(decisions.slice(0, 2), [
    { kind: "retry", transport: "ws", attempt: 0 },
    { kind: "retry", transport: "ws", attempt: 1 },
  ]);
  assert.equal(decisions[2].kind, "stop");
});

Deno.test("a 4003 waits the longest delay, and a rate limit waits at least its retry hint", () => {
  const forbidden = decide(initialFallback(), { ...failed(), code: 4003 }, policy).decision;
  assert.deepEqual(forbidden, { kind: "retry", transport: "ws", attempt: 30 });
  const limited = decide(
    initialFallback(),
    { ...dropped(50), code: 4008, retryAfterMs: 7000 },
    policy,
  ).decision;
  assert.equal(limited.kind === "retry" && limited.minDelayMs, 7000);
  assert.equal(limited.kind === "retry" && limited.transport, "ws");
});

Deno.test("fallback follows a custom transport order", () => {
  const order = { ...policy, order: ["sse", "poll"] as const };
  const a = decide(initialFallback(), failed(), order);
  const b = decide(a.state, failed(), order);
  assert.equal(currentTransport(initialFallback(), order), "sse");
  assert.equal(b.decision.kind === "retry" && b.decision.transport, "poll");
});
