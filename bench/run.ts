/**
 * `deno task bench`: runs every scenario against relais and its peers on loopback, then
 * writes `docs/BENCHMARKS.md` and `docs/benchmarks.json`.
 *
 * Flags: `--quick` (small sizes, one run, about a minute), `--runs N`, `--only a,b` (a
 * subset of idle, fanout, audience, latency, storm, chat, ingest, soak, cluster), `--out DIR`
 * (default `docs`; `data/bench-quick` with `--quick`, so a quick run never replaces the
 * published report),
 * `--budget S` (the hard deadline in seconds; 1080 by default, 240 with `--quick`),
 * `--report-only` (runs nothing: rewrites the report and its charts from the
 * `benchmarks.json` already in the output folder), `--cpu-prof DIR` (every relais server
 * writes a V8 CPU profile into DIR: started with `--cpu-prof`, stopped with SIGTERM so that
 * it can write it).
 * Everything is bounded: a hard deadline inside the harness writes what it has and kills
 * every child, and each child runs under `timeout -s KILL` in case the harness dies.
 */

import {
  type Context,
  type NodeEntry,
  prepareNodeEntry,
  type Profile,
  startServer,
  startWorkers,
} from "./_context.ts";
import {
  killAllChildrenNow,
  setChildDeadline,
  setCpuProfileDir,
  stopAllChildren,
} from "./_procs.ts";
import { collectMachine, probeActorStep, probeKv, writeReport } from "./_report.ts";
import { runAudience } from "./scenarios/audience.ts";
import { runChat } from "./scenarios/chat.ts";
import { CLUSTER_FULL, CLUSTER_QUICK, runCluster } from "./scenarios/cluster.ts";
import { runFanout } from "./scenarios/fanout.ts";
import { runIdle } from "./scenarios/idle.ts";
import { runIngest } from "./scenarios/ingest.ts";
import { runSoak, SOAK_FULL, SOAK_QUICK } from "./scenarios/soak.ts";
import { runLatency } from "./scenarios/latency.ts";
import { runStorm } from "./scenarios/storm.ts";

/** The hard limit on open files leaves room for this many sockets in one process. */
const FD_HEADROOM = 1000;

const FULL: Omit<Profile, "idleSizes"> = {
  quick: false,
  runs: 3,
  loadgens: 4,
  fanoutSizes: [1000, 5000, 10_000],
  fanoutKinds: { realtime: [1000, 5000, 10_000], system: [5000, 10_000], notification: [10_000] },
  fanoutReps: 2,
  latencyUsers: 5000,
  latencyRates: [100, 500, 1000, 3000],
  latencyMs: 3000,
  audienceUsers: 10_000,
  chatConversations: 100,
  chatMembers: 3,
  chatMs: 4000,
  stormUsers: 5000,
  stormMissed: 2,
  ingestUsers: 1000,
  ingestChanges: 10_000,
  budgetMs: 18 * 60_000,
};

const QUICK: Profile = {
  quick: true,
  runs: 1,
  loadgens: 2,
  idleSizes: [1000],
  fanoutSizes: [200, 1000],
  fanoutKinds: { realtime: [200, 1000], system: [1000], notification: [1000] },
  fanoutReps: 2,
  latencyUsers: 1000,
  latencyRates: [100, 1000, 3000],
  latencyMs: 1500,
  audienceUsers: 1000,
  chatConversations: 20,
  chatMembers: 3,
  chatMs: 2000,
  stormUsers: 1000,
  stormMissed: 2,
  ingestUsers: 200,
  ingestChanges: 1000,
  budgetMs: 4 * 60_000,
};

const SCENARIOS = [
  "idle",
  "fanout",
  "audience",
  "latency",
  "storm",
  "chat",
  "ingest",
  "soak",
  "cluster",
] as const;
type ScenarioName = (typeof SCENARIOS)[number];

function parseFlags(args: string[]) {
  const flags = {
    quick: false,
    runs: undefined as number | undefined,
    only: [] as string[],
    out: undefined as string | undefined,
    budget: undefined as number | undefined,
    reportOnly: false,
    cpuProf: undefined as string | undefined,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") continue;
    if (a === "--quick") flags.quick = true;
    else if (a === "--runs") flags.runs = Number(args[++i]);
    else if (a === "--only") flags.only = args[++i].split(",").map((s) => s.trim());
    else if (a === "--out") flags.out = args[++i];
    else if (a === "--budget") flags.budget = Number(args[++i]);
    else if (a === "--report-only") flags.reportOnly = true;
    else if (a === "--cpu-prof") flags.cpuProf = args[++i];
    else {
      throw new Error(
        `Unknown flag "${a}": expected --quick, --runs N, --only a,b, --out DIR, --budget S, --report-only or --cpu-prof DIR`,
      );
    }
  }
  for (const name of flags.only) {
    if (!(SCENARIOS as readonly string[]).includes(name)) {
      throw new Error(`Unknown scenario "${name}": expected ${SCENARIOS.join(", ")}`);
    }
  }
  return flags;
}

async function ensureSocketIo(rootPath: string, log: (m: string) => void) {
  const dir = `${rootPath}/bench/peers/socketio`;
  try {
    // Every package the folder's peers import: a checkout installed before one was added
    // installs again.
    const packages = ["socket.io", "@socket.io/redis-streams-adapter", "ws", "xstate"];
    for (const name of packages) await Deno.stat(`${dir}/node_modules/${name}/package.json`);
    return;
  } catch { /* install */ }
  log("installing the Socket.IO peer (npm ci)");
  const out = await new Deno.Command("timeout", {
    args: ["-s", "KILL", "180", "npm", "ci", "--no-audit", "--no-fund"],
    cwd: dir,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("npm ci failed for bench/peers/socketio");
}

/**
 * Rewrites `BENCHMARKS.md`, its charts and `benchmarks.json` in `outDir` from that
 * `benchmarks.json`, without running anything (after a change to the report's layout).
 */
async function rewriteReport(rootPath: string, outDir: string): Promise<string[]> {
  const path = `${outDir}/benchmarks.json`;
  let saved;
  try {
    saved = JSON.parse(await Deno.readTextFile(path));
  } catch (error) {
    throw new Error(`Cannot read "${path}" to rewrite the report from it`, { cause: error });
  }
  const endedAt = Date.parse(saved.generatedAt);
  const profile = saved.profile as Profile;
  return await writeReport({
    outDir,
    rootPath,
    profile,
    machine: saved.machine,
    results: saved.results,
    selected: Object.keys(saved.results),
    maxIdleSize: Math.max(0, ...(profile.idleSizes ?? [])),
    status: saved.status,
    startedAt: endedAt - saved.durationSeconds * 1000,
    endedAt,
    loadAverageAtEnd: saved.machine.loadAverageAtEnd,
  });
}

async function main() {
  const flags = parseFlags(Deno.args);
  const startedAt = Date.now();
  const root = new URL("../", import.meta.url);
  const rootPath = decodeURIComponent(root.pathname).replace(/\/$/, "");
  if (flags.reportOnly) {
    const out = flags.out ?? (flags.quick ? "data/bench-quick" : "docs");
    const files = await rewriteReport(rootPath, out.startsWith("/") ? out : `${rootPath}/${out}`);
    console.log(`bench: rewrote ${files.join(", ")}`);
    return;
  }
  if (flags.cpuProf) {
    const dir = flags.cpuProf.startsWith("/") ? flags.cpuProf : `${rootPath}/${flags.cpuProf}`;
    await Deno.mkdir(dir, { recursive: true });
    setCpuProfileDir(dir);
  }
  const machine = await collectMachine(rootPath);
  const maxIdle = Math.max(1000, Math.floor((machine.openFileLimit - FD_HEADROOM) / 1000) * 1000);
  const profile: Profile = flags.quick
    ? { ...QUICK }
    : { ...FULL, idleSizes: [10_000, 25_000, 50_000].filter((n) => n <= maxIdle).concat(maxIdle) };
  profile.idleSizes = [...new Set(profile.idleSizes)].sort((a, b) => a - b);
  if (flags.runs) profile.runs = flags.runs;
  if (flags.budget) profile.budgetMs = flags.budget * 1000;
  // A quick run never replaces the published report.
  const outDir = flags.out ?? (flags.quick ? "data/bench-quick" : "docs");
  const deadline = startedAt + profile.budgetMs;
  setChildDeadline(deadline + 10_000);

  const log = (message: string) => {
    const s = ((Date.now() - startedAt) / 1000).toFixed(1).padStart(6);
    console.log(`[bench ${s}s] ${message}`);
  };
  const results: Record<string, unknown> = {};
  const selected = (flags.only.length ? flags.only : [...SCENARIOS]) as ScenarioName[];
  let finished = false;

  const report = async (status: string) => {
    const files = await writeReport({
      outDir: outDir.startsWith("/") ? outDir : `${rootPath}/${outDir}`,
      rootPath,
      profile,
      machine,
      results,
      selected,
      maxIdleSize: maxIdle,
      status,
      startedAt,
      endedAt: Date.now(),
    });
    log(`wrote ${files.join(" and ")}`);
  };

  // Hard deadline: whatever is running, write what is known, kill everything, stop.
  const deadlineTimer = setTimeout(async () => {
    if (finished) return;
    finished = true;
    log(`deadline of ${profile.budgetMs / 1000} s reached: stopping`);
    killAllChildrenNow();
    removeTmp();
    await report(`stopped at the ${profile.budgetMs / 1000} s deadline`).catch(() => {});
    Deno.exit(2);
  }, profile.budgetMs);
  // deno-lint-ignore prefer-const -- set below, read by the signal handlers declared first
  let tmp: string | undefined;
  const removeTmp = () => {
    try {
      if (tmp) Deno.removeSync(tmp, { recursive: true });
    } catch { /* already gone */ }
  };
  const onSignal = () => {
    killAllChildrenNow();
    removeTmp();
    console.error("bench: interrupted, children killed");
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  globalThis.addEventListener("unload", () => killAllChildrenNow());

  // relais's own data folder (git-ignored), as deployed; removed at the end.
  await Deno.mkdir(`${rootPath}/data`, { recursive: true });
  tmp = await Deno.makeTempDir({ dir: `${rootPath}/data`, prefix: "bench-" });
  try {
    await ensureSocketIo(rootPath, log);
    // relais on Node runs in the idle and fan-out scenarios: its bundle is built once, here.
    let nodeEntry: NodeEntry = { unavailable: "no scenario of this run uses it" };
    if (selected.includes("idle") || selected.includes("fanout")) {
      log("building relais for Node (deno task build:node)");
      nodeEntry = await prepareNodeEntry(rootPath);
      log(
        "bundle" in nodeEntry
          ? `relais on Node: ${nodeEntry.node} ${nodeEntry.bundle}`
          : `relais on Node not run: ${nodeEntry.unavailable}`,
      );
    }
    machine.kvCommitsPerSecond = await probeKv(tmp);
    log(
      `Deno KV on the data disk: ${machine.kvCommitsPerSecond.sequential} commits/s one at a time, ${machine.kvCommitsPerSecond.concurrent} 64 at a time; ${machine.kvCommitsPerSecond.adjacentMutations} adjacent / ${machine.kvCommitsPerSecond.scatteredMutations} per-user mutations/s; event records ${machine.kvCommitsPerSecond.eventRecords?.ordered}/s with version 7 ids, ${machine.kvCommitsPerSecond.eventRecords?.random}/s with version 4`,
    );
    const step = await probeActorStep(rootPath);
    if (step) machine.actorStep = step;
    log(
      step
        ? `XState step: ${step.smallestMicros} µs (smallest machine), ${step.userMicros} µs (user machine); an idle smallest actor holds ${
          step.smallestBytes ?? "?"
        } bytes of heap; a step allocates ${step.smallestAllocBytes ?? "?"} / ${
          step.userAllocBytes ?? "?"
        } bytes`
        : "XState step probe failed: no bound from it in the report",
    );
    if ("probe" in nodeEntry && nodeEntry.probe) {
      const onNode = await probeActorStep(rootPath, {
        node: nodeEntry.node,
        bundle: nodeEntry.probe,
      });
      if (onNode) machine.actorStepNode = onNode;
      log(
        onNode
          ? `XState step on Node: ${onNode.smallestMicros} µs (smallest machine), ${onNode.userMicros} µs (user machine); an idle smallest actor holds ${
            onNode.smallestBytes ?? "?"
          } bytes of heap`
          : "XState step probe on Node failed: no Node bound from it in the report",
      );
    }
    const jwtSecret = crypto.randomUUID() + crypto.randomUUID();
    const serviceKey = `bench_${crypto.randomUUID().replaceAll("-", "")}`;
    log(`${flags.quick ? "quick" : "full"} run: ${selected.join(", ")}; ${profile.runs} run(s)`);
    const { loadgens, publisher } = await startWorkers(rootPath, profile.loadgens, {
      BENCH_JWT_SECRET: jwtSecret,
      BENCH_SERVICE_KEY: serviceKey,
    });
    const base = {
      root,
      rootPath,
      tmp,
      profile,
      jwtSecret,
      serviceKey,
      loadgens,
      publisher,
      nodeEntry,
      log,
      left: () => deadline - Date.now(),
    };
    const ctx: Context = { ...base, startServer: (peer, env) => startServer(base, peer, env) };
    const has = (name: ScenarioName) => selected.includes(name);
    // Scenarios that share a server run together: audience on the fan-out's relais,
    // storm on the latency scenario's relais and users.
    const plan: { name: ScenarioName; run: () => Promise<Record<string, unknown>> }[] = [];
    if (has("idle")) plan.push({ name: "idle", run: () => runIdle(ctx) });
    if (has("fanout")) {
      plan.push({ name: "fanout", run: () => runFanout(ctx, { audience: has("audience") }) });
    } else if (has("audience")) plan.push({ name: "audience", run: () => runAudience(ctx) });
    if (has("chat")) plan.push({ name: "chat", run: () => runChat(ctx) });
    if (has("ingest")) plan.push({ name: "ingest", run: () => runIngest(ctx) });
    // The latency-sensitive scenarios run before the soak and the cluster scenarios: right
    // after the cluster's (60,000 connections over 3 nodes), p99 at 100 events/s was 87 ms.
    if (has("latency")) {
      plan.push({ name: "latency", run: () => runLatency(ctx, { storm: has("storm") }) });
    } else if (has("storm")) plan.push({ name: "storm", run: () => runStorm(ctx) });
    if (has("soak")) {
      const soak = flags.quick ? SOAK_QUICK : SOAK_FULL;
      plan.push({ name: "soak", run: async () => ({ ...(await runSoak(ctx, soak)) }) });
    }
    if (has("cluster")) {
      const sizes = flags.quick ? CLUSTER_QUICK : CLUSTER_FULL;
      plan.push({ name: "cluster", run: () => runCluster(ctx, sizes) });
    }
    const carried = { fanout: "audience", latency: "storm" } as const;

    for (const { name, run } of plan) {
      const t0 = Date.now();
      let result: Record<string, unknown>;
      try {
        result = await run();
      } catch (error) {
        log(`${name} failed: ${error instanceof Error ? error.message : error}`);
        result = { error: String(error instanceof Error ? error.message : error) };
        const partner = carried[name as keyof typeof carried];
        if (partner && has(partner)) {
          const own = (error as { audience?: Record<string, unknown> }).audience;
          result[partner] = own ??
            { error: `not run: the ${name} scenario it shares a server with failed` };
        }
      }
      const partner = carried[name as keyof typeof carried];
      if (partner && result[partner] !== undefined) {
        results[partner] = result[partner];
        delete result[partner];
      }
      result.seconds = Math.round((Date.now() - t0) / 100) / 10;
      results[name] = result;
      log(`${name} done in ${result.seconds} s`);
    }
    finished = true;
    clearTimeout(deadlineTimer);
    await stopAllChildren();
    await report("complete");
  } finally {
    finished = true;
    clearTimeout(deadlineTimer);
    await stopAllChildren();
    removeTmp();
  }
}

if (import.meta.main) {
  try {
    await main();
    Deno.exit(0);
  } catch (error) {
    killAllChildrenNow();
    console.error(`bench: ${error instanceof Error ? error.stack : error}`);
    Deno.exit(1);
  }
}
