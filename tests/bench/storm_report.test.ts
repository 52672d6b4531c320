import assert from "node:assert/strict";
import { stormSection, targetRows } from "../../bench/_report.ts";
import { BENCH_MACHINE, benchProfile } from "../_support/bench_profile.ts";

const PROFILE = benchProfile({ runs: 3, stormUsers: 5000 });
const MACHINE = BENCH_MACHINE;

const storm = {
  users: 5000,
  missedPerStorm: 2,
  runs: [1, 2, 3].map((run) => ({
    run,
    resumed: 5000,
    resumedMs: 3000 + run,
    completeMs: 3200 + run,
    failed: 0,
    behind: 0,
    missedLive: 0,
    gaps: 0,
    duplicates: 0,
    recoveredFalse: 0,
  })),
  summary: { resumedMs: 3002, completeMs: 3202, lost: 0, failed: 0, recoveredFalse: 0 },
  // Runs under a second are formatted to three significant digits, the others whole.
  bare: { runs: [787.4, 931.26, 1340.2], medianMs: 931.26 },
};

Deno.test("the storm's report gives the bare server's storms beside relais's", () => {
  const row = targetRows(PROFILE, MACHINE, { storm }).find((r) =>
    r.target.startsWith("Reconnect storm")
  )!;
  assert.equal(
    row.measured,
    "3,002 ms (with the mid-storm item 3,202 ms), 0 lost, 0 failed; bare server 931 ms",
  );
  assert.equal(row.met, false);
  const section = stormSection(storm);
  assert.match(section, /were all welcomed in 931 ms \(runs 787, 931, 1,340 ms\)\.$/);
});

Deno.test("the storm's report says why the bare server's storm is missing", () => {
  const failed = stormSection({ ...storm, bare: { error: "3 bare reconnections failed" } });
  assert.match(failed, /The bare server's storm failed: 3 bare reconnections failed$/);
  const row = targetRows(PROFILE, MACHINE, { storm: { ...storm, bare: undefined } }).find((r) =>
    r.target.startsWith("Reconnect storm")
  )!;
  assert.equal(row.measured, "3,002 ms (with the mid-storm item 3,202 ms), 0 lost, 0 failed");
});
