/** A small bench profile and machine for tests of the report's target rows. */

import type { Profile } from "../../bench/_context.ts";
import type { Machine } from "../../bench/_report.ts";

/** The sizes of a quick run, one size per scenario; `overrides` replaces any field. */
export function benchProfile(overrides: Record<string, unknown> = {}): Profile {
  return {
    quick: true,
    runs: 1,
    fanoutSizes: [1000],
    fanoutKinds: { realtime: [1000], system: [], notification: [] },
    idleSizes: [1000],
    latencyUsers: 1000,
    audienceUsers: 1000,
    stormUsers: 1000,
    ...overrides,
  } as unknown as Profile;
}

/** A machine that allows 20,000 open files per process. */
export const BENCH_MACHINE = { openFileLimit: 20_000 } as Machine;
