import assert from "node:assert/strict";
import { backoffDelay } from "../../src/client/backoff.ts";

const options = { baseMs: 100, maxMs: 5000 };

Deno.test("backoff doubles its step with each attempt up to the cap", () => {
  const top = [0, 1, 2, 3, 4, 5, 6, 10, 60].map((n) => backoffDelay(n, options, () => 1));
  assert.deepEqual(top, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
});

Deno.test("backoff jitter keeps each delay between half its step and the full step", () => {
  for (let attempt = 0; attempt < 8; attempt++) {
    const step = Math.min(5000, 100 * 2 ** attempt);
    assert.equal(backoffDelay(attempt, options, () => 0), step / 2);
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(attempt, options);
      assert.ok(d >= step / 2 && d <= step, `attempt ${attempt}: ${d}`);
    }
  }
});

Deno.test("backoff jitter spreads clients that retry at the same attempt", () => {
  const delays = new Set(Array.from({ length: 20 }, () => backoffDelay(5, options)));
  assert.ok(delays.size > 10, `${delays.size} distinct delays`);
});
