import assert from "node:assert/strict";
import { backoffDelay } from "../src/backoff.ts";

Deno.test("backoff grows exponentially, linearly or not at all, up to its cap", () => {
  const at = (shape: "EXPONENTIAL" | "LINEAR" | "FIXED", maxMs?: number) =>
    [0, 1, 2, 3, 4].map((a) =>
      backoffDelay(a, { baseMs: 100, shape, ...(maxMs ? { maxMs } : {}) })
    );
  assert.deepEqual(at("EXPONENTIAL"), [100, 200, 400, 800, 1600]);
  assert.deepEqual(at("LINEAR"), [100, 200, 300, 400, 500]);
  assert.deepEqual(at("FIXED"), [100, 100, 100, 100, 100]);
  assert.deepEqual(at("EXPONENTIAL", 500), [100, 200, 400, 500, 500]);
  // Exponential by default; a huge attempt stops doubling instead of overflowing.
  assert.equal(backoffDelay(2, { baseMs: 10 }), 40);
  assert.equal(backoffDelay(10_000, { baseMs: 1 }), 2 ** 20);
  assert.equal(backoffDelay(-3, { baseMs: 7 }), 7);
});

Deno.test("backoff jitter: none, half the step plus a random half, or anywhere below the step", () => {
  const policy = { baseMs: 1000, maxMs: 8000 };
  assert.equal(backoffDelay(1, { ...policy, jitter: "none" }, () => 0.5), 2000);
  assert.equal(backoffDelay(1, { ...policy, jitter: "equal" }, () => 0), 1000);
  assert.equal(backoffDelay(1, { ...policy, jitter: "equal" }, () => 0.999999), 2000);
  assert.equal(backoffDelay(5, { ...policy, jitter: "equal" }, () => 0), 4000);
  assert.equal(backoffDelay(1, { ...policy, jitter: "full" }, () => 0), 0);
  assert.equal(backoffDelay(1, { ...policy, jitter: "full" }, () => 0.25), 500);
});
