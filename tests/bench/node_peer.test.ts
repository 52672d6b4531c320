import assert from "node:assert/strict";
import { textWidth } from "../../bench/_charts.ts";
import { type FanoutKind, prepareNodeEntry } from "../../bench/_context.ts";
import { charts, targetRows } from "../../bench/_report.ts";
import { type FanoutRun, summarizeFanout, turnOrder } from "../../bench/scenarios/fanout.ts";
import { BENCH_MACHINE, benchProfile } from "../_support/bench_profile.ts";

/** A stand-in for `node` that prints `version` for `--version`. */
async function fakeNode(dir: string, version: string): Promise<string> {
  const path = `${dir}/node-${version}`;
  await Deno.writeTextFile(path, `#!/bin/sh\necho ${version}\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test("relais on Node is reported not run, with the reason, when node or its build is missing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bench-node-" });
  try {
    const missing = await prepareNodeEntry(dir, { node: `${dir}/no-such-node` });
    assert("unavailable" in missing);
    assert.match(missing.unavailable, /no-such-node" cannot be run/);

    const old = await prepareNodeEntry(dir, { node: await fakeNode(dir, "v18.19.0") });
    assert("unavailable" in old);
    assert.match(old.unavailable, /Node\.js 20 or later is needed, ".*" is "v18\.19\.0"/);

    // A checkout without the build task: `deno task build:node` fails, and says why.
    await Deno.writeTextFile(`${dir}/deno.json`, "{}\n");
    const unbuilt = await prepareNodeEntry(dir, { node: await fakeNode(dir, "v22.1.0") });
    assert("unavailable" in unbuilt);
    assert.match(unbuilt.unavailable, /^`deno task build:node` failed: .*build:node/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the peers take turns in a rotating order, each one first in one run of four", () => {
  const peers = ["relais", "relais-node", "bare", "socketio"] as const;
  const firsts = [1, 2, 3, 4].map((run) => turnOrder([...peers], run)[0]);
  assert.deepEqual(firsts, [...peers]);
  for (let run = 1; run <= 4; run++) {
    assert.deepEqual([...turnOrder([...peers], run)].sort(), [...peers].sort());
  }
  assert.deepEqual(turnOrder(["relais", "bare", "socketio"], 2), ["bare", "socketio", "relais"]);
});

function fanRun(
  kind: FanoutKind,
  peer: FanoutRun["peer"],
  run: number,
  deliveriesPerSecond: number,
): FanoutRun {
  return {
    run,
    kind,
    peer,
    size: 1000,
    events: 2,
    deliveries: 2000,
    expected: 2000,
    elapsedMs: 100,
    deliveriesPerSecond,
    lastDeliveryMs: 50,
    answerMs: peer === "relais-node" ? 7 : 3,
    serverCpuMicrosPerDelivery: 10,
    timedOut: false,
  };
}

Deno.test("relais on Node's fan-out ratios are taken run by run, only where it ran", () => {
  // Per run, relais on Node ÷ Socket.IO is 2, 0.5 and 1.5: their median is 1.5, while the
  // ratio of the medians (1000 ÷ 2000) would be 0.5.
  const realtime: [number, number, number][] = [[1, 4000, 2000], [2, 1000, 2000], [3, 900, 600]];
  const runs = realtime.flatMap(([run, node, sio]) => [
    fanRun("realtime", "relais", run, 3000),
    fanRun("realtime", "relais-node", run, node),
    fanRun("realtime", "bare", run, 5000),
    fanRun("realtime", "socketio", run, sio),
  ]);
  runs.push(
    fanRun("system", "relais", 1, 3000),
    fanRun("system", "bare", 1, 6000),
    fanRun("system", "socketio", 1, 2000),
  );
  const kinds = { realtime: [1000], system: [1000], notification: [] };
  const [rt, sys] = summarizeFanout(runs, kinds, {}, 3);
  assert.equal(rt.kind, "realtime");
  assert.equal(rt.deliveriesPerSecond["relais-node"], 1000);
  assert.equal(rt.deliveriesPerSecond.socketio, 2000);
  assert.equal(rt.ratios["relais-node/socketio"], 1.5, "the median of the runs' ratios");
  assert.equal(rt.ratios["relais-node/relais"], 0.333, "1000 ÷ 3000, the middle run");
  assert.equal(rt.relaisNodeAnswerMs, 7);
  assert.equal(sys.kind, "system");
  assert.equal(sys.deliveriesPerSecond["relais-node"], undefined);
  assert.equal(sys.ratios["relais-node/socketio"], undefined);
  assert.equal("relaisNodeAnswerMs" in sys, false);
  assert.equal(sys.ratios["relais/socketio"], 1.5);
});

const PROFILE = benchProfile();
const MACHINE = BENCH_MACHINE;

Deno.test("the targets hold relais on Node's fan-out and idle memory against Socket.IO", () => {
  const fanout = {
    summary: [{
      kind: "realtime",
      size: 1000,
      deliveriesPerSecond: { relais: 3000, "relais-node": 2500, bare: 5000, socketio: 2000 },
      ratios: { "relais/socketio": 1.5, "relais/bare": 0.6, "relais-node/socketio": 1.25 },
    }],
    rss: [
      { peer: "relais", size: 1000, bytesPerUser: 30_000 },
      { peer: "relais-node", size: 1000, bytesPerUser: 24_000 },
      { peer: "bare", size: 1000, bytesPerUser: 25_000 },
      { peer: "socketio", size: 1000, bytesPerUser: 20_000 },
    ],
  };
  const rows = targetRows(PROFILE, MACHINE, { fanout });
  const fan = rows.find((r) => r.target.startsWith("relais on Node fan-out"))!;
  assert.equal(
    fan.target,
    "relais on Node fan-out REALTIME → USER list vs Socket.IO (1,000 users)",
  );
  assert.deepEqual([fan.goal, fan.measured, fan.met], ["≥ 1.2×", "1.25×", true]);
  const idle = rows.find((r) => r.target.startsWith("relais on Node idle RSS"))!;
  assert.match(idle.target, /≤ Socket\.IO's, in the same run \(1,000 users\)$/);
  assert.deepEqual([idle.goal, idle.measured, idle.met], [
    "≤ 1.0×",
    "1.2× (23.4 KB vs 19.5 KB)",
    false,
  ]);

  // Not run: both rows say why, and neither counts as met or not met.
  const why = '"node" cannot be run (not found)';
  const without = targetRows(PROFILE, MACHINE, {
    fanout: {
      notRun: { "relais-node": why },
      summary: [{ ...fanout.summary[0], ratios: { "relais/socketio": 1.5 } }],
      rss: fanout.rss.filter((r) => r.peer !== "relais-node"),
    },
  });
  for (const prefix of ["relais on Node fan-out", "relais on Node idle RSS"]) {
    const row = without.find((r) => r.target.startsWith(prefix))!;
    assert.equal(row.measured, `not run: ${why}`);
    assert.equal(row.met, undefined);
  }
});

Deno.test("the charts draw relais on Node beside the others, its legend inside the chart", () => {
  const drawn = charts({
    fanout: {
      summary: [200, 1000].map((size) => ({
        kind: "realtime",
        size,
        deliveriesPerSecond: {
          relais: 3000,
          "relais-node": 2500,
          bare: 5000,
          "bare-node": 4000,
          socketio: 2000,
        },
      })),
    },
    idle: {
      summary: [
        { peer: "relais", size: 1000, bytesPerUser: 30_000 },
        { peer: "relais-node", size: 1000, bytesPerUser: 40_000 },
      ],
    },
  });
  const fan = drawn.find((c) => c.file === "bench-fanout.svg")!.svg;
  assert.match(fan, /<polyline data-series="relais on Node REALTIME"/);
  assert.match(fan, /<polyline data-series="bare WebSocket on Node"/);
  const idle = drawn.find((c) => c.file === "bench-idle.svg")!.svg;
  assert.match(idle, /<rect data-series="relais on Node" data-group="1,000"/);
  for (const svg of [fan, idle]) {
    const width = Number(/<svg [^>]*width="(\d+)"/.exec(svg)![1]);
    for (
      const m of svg.matchAll(/<text x="([\d.]+)" y="[\d.]+" dy="0.32em" fill="#24292f">([^<]*)</g)
    ) {
      const right = Number(m[1]) + textWidth(m[2]);
      assert(right <= width, `legend "${m[2]}" ends at ${right}, past the chart's ${width}`);
    }
  }
});

Deno.test("relais on Node's targets are bounded by its stack: the bare Node server, Hono alone, one actor", () => {
  const size = 10_000;
  const machine = {
    ...MACHINE,
    actorStepNode: { smallestMicros: 5, userMicros: 10, smallestBytes: 2048 },
  };
  const fanout = {
    summary: [{
      kind: "realtime",
      size,
      // The bare Node server's turn plus a 10 µs step: 1 / (1/40,000 + 10 µs) = 28,571/s.
      deliveriesPerSecond: {
        relais: 30_000,
        "relais-node": 12_000,
        "bare-node": 40_000,
        socketio: 25_000,
      },
      ratios: { "relais-node/socketio": 0.48 },
    }],
    rss: [{ peer: "socketio", size, bytesPerUser: 16 * 1024 }],
  };
  const idle = {
    summary: [
      { peer: "relais-node", size, bytesPerUser: 26 * 1024 },
      { peer: "hono-node", size, bytesPerUser: 15 * 1024 },
    ],
  };
  const profile = benchProfile({
    fanoutSizes: [size],
    fanoutKinds: { realtime: [size], system: [], notification: [] },
    idleSizes: [size],
  });
  const rows = targetRows(profile, machine, { fanout, idle });
  const fan = rows.find((r) => r.target.startsWith("relais on Node fan-out"))!;
  assert.equal(
    fan.bound,
    "the bare server's turn on Node plus one step of relais's user machine on Node per " +
      "recipient: ≤ 1.14× (40,000 deliveries/s and 10 µs a step: ≤ 28,571 deliveries/s)",
  );
  const rss = rows.find((r) => r.target.startsWith("relais on Node idle RSS"))!;
  assert.equal(rss.measured, "1.63× (26 KB on a fresh server vs 16 KB)");
  assert.equal(
    rss.bound,
    "relais's Node stack without relais 15 KB per socket on a fresh server, plus XState's " +
      "smallest actor on Node 2 KB: ≥ 1.06× Socket.IO's before any state of relais's own",
  );
  // With the Node floor in the same runs, its ratio comes first.
  const floored = {
    ...fanout,
    summary: [{
      ...fanout.summary[0],
      ratios: {
        ...fanout.summary[0].ratios,
        "bare-node-actor/socketio": 1.1,
        "relais-node/bare-node-actor": 0.436,
      },
    }],
  };
  assert.equal(
    targetRows(profile, machine, { fanout: floored, idle }).find((r) =>
      r.target.startsWith("relais on Node fan-out")
    )!.bound,
    "in situ, the bare server on Node with one actor per socket (every frame through XState's " +
      "cheapest machine) reached 1.1× Socket.IO, relais on Node 0.436× it; the bare server's " +
      "turn on Node plus one step of relais's user machine on Node per recipient: ≤ 1.14× " +
      "(40,000 deliveries/s and 10 µs a step: ≤ 28,571 deliveries/s)",
  );
  // Without the Node probe or the stack's figure, no bound is claimed.
  const bare = targetRows(PROFILE, MACHINE, {
    fanout,
    idle: { summary: idle.summary.slice(0, 1) },
  });
  assert.equal(bare.find((r) => r.target.startsWith("relais on Node fan-out"))!.bound, undefined);
  assert.equal(bare.find((r) => r.target.startsWith("relais on Node idle RSS"))!.bound, undefined);
});
