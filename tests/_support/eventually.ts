/** The one bounded wait of the tests: poll a fact until it holds or a deadline passes. */

/**
 * Waits until `check` holds (a truthy value, which it returns), polling; fails after
 * `timeoutMs` with the last error `check` threw. It synchronises on the fact `check`
 * reads, never on the time it took.
 */
export async function eventually<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 3000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 25)); // poll interval of a bounded wait, not synchronisation
  }
  throw new Error(`Timed out waiting for ${what}${last ? `: ${last}` : ""}`);
}
