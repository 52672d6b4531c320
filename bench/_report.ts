/**
 * The bench's outputs: `benchmarks.json` (everything measured, every run),
 * `BENCHMARKS.md` (machine, versions, method, medians, ratios and the gap to each target)
 * and the SVG charts it shows (`bench-*.svg`, next to it).
 */

import { soakSection } from "./scenarios/soak.ts";
import { clusterSection } from "./scenarios/cluster.ts";
import { barChart, lineChart, type Series } from "./_charts.ts";
import { type FanoutKind, PEER_LABELS, type Profile } from "./_context.ts";
import { uuidv7 } from "./_ids.ts";
import { round } from "./_stats.ts";
import { WINDOW } from "./scenarios/chat.ts";
import { KINDS, PEERS as FANOUT_PEERS } from "./scenarios/fanout.ts";
import { CONNECTIONS } from "./scenarios/latency.ts";

/** The machine and software the numbers come from. */
export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  openFileLimit: number;
  ephemeralPorts: string;
  loadAverageAtStart: number[];
  deno: string;
  v8: string;
  typescript: string;
  node: string;
  socketIo: string;
  socketIoClient: string;
  relaisCommit: string;
  relaisUncommittedFiles: number;
  /** Deno KV commits/s on the disk relais writes to (see {@linkcode probeKv}). */
  kvCommitsPerSecond?: KvProbe;
  /** What one actor step costs here (see {@linkcode probeActorStep}). */
  actorStep?: ActorStepProbe;
  /** The same on Node, from the probe's bundle (when relais on Node runs). */
  actorStepNode?: ActorStepProbe;
}

/** What `bench/actor_probe.ts` measures: µs per step, 10,000 actors. */
export interface ActorStepProbe {
  /** XState's smallest machine that takes an item (one action, one `assign`). */
  smallestMicros: number;
  /** relais's user machine with one connection. */
  userMicros: number;
  /** Heap bytes an idle actor of the smallest machine holds (with `--expose-gc` only). */
  smallestBytes?: number;
  /** Bytes one step of the smallest machine allocates (with `--expose-gc` only). */
  smallestAllocBytes?: number;
  /** Bytes one step of relais's user machine allocates (with `--expose-gc` only). */
  userAllocBytes?: number;
}

/**
 * Runs `bench/actor_probe.ts` in a child process of its own: what one XState step costs on
 * this machine, the least a fan-out adds per recipient to a bare server's work. On Deno, or
 * with `onNode` on Node from the probe's bundle. Answers `undefined` when the probe fails
 * (the report then gives no bound from it).
 */
export async function probeActorStep(
  rootPath: string,
  onNode?: { node: string; bundle: string },
): Promise<ActorStepProbe | undefined> {
  const command = onNode ? [onNode.node, "--expose-gc", onNode.bundle] : [
    Deno.execPath(),
    "run",
    "--v8-flags=--expose-gc",
    "--config",
    `${rootPath}/deno.json`,
    `${rootPath}/bench/actor_probe.ts`,
  ];
  try {
    const out = await new Deno.Command("timeout", {
      args: ["-s", "KILL", "120", ...command],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return undefined;
    const probe = JSON.parse(new TextDecoder().decode(out.stdout)) as ActorStepProbe;
    return Number.isFinite(probe.smallestMicros) && Number.isFinite(probe.userMicros)
      ? probe
      : undefined;
  } catch {
    return undefined;
  }
}

async function text(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return "";
  }
}

async function run(cmd: string, args: string[], cwd?: string): Promise<string> {
  try {
    const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "null" })
      .output();
    return new TextDecoder().decode(out.stdout).trim();
  } catch {
    return "";
  }
}

/** What {@linkcode probeKv} measures. */
export interface KvProbe {
  /** Commits of one key per second, one at a time. */
  sequential: number;
  /** Commits of one key per second, 64 at a time. */
  concurrent: number;
  /**
   * Mutations per second in commits of 450 stream-item-sized values whose keys follow
   * one another (as an event's record and body, or a conversation's messages).
   */
  adjacentMutations: number;
  /**
   * The same, with each key under another of 20,000 users (as per-user stream items,
   * delivery records and unread counts): every key dirties a page of its own.
   */
  scatteredMutations: number;
  /**
   * Event records (an envelope's size) stored per second under their ids, in commits of 20
   * with a check that each id is new (a publish's group commit at 1,000–3,000 events/s):
   * with time-ordered ids (version 7, as the platform's emitters and the bench make them)
   * and with random ones (version 4). Absent from runs before it was measured.
   */
  eventRecords?: { ordered: number; random: number };
}

/**
 * Deno KV's write rates on the disk the bench's relais servers write to: relais's durable
 * paths (per-recipient items, chat messages) are bound by them.
 */
export async function probeKv(dir: string): Promise<KvProbe> {
  const kv = await Deno.openKv(`${dir}/probe.kv`);
  try {
    let t = performance.now();
    const n = 300;
    for (let i = 0; i < n; i++) await kv.atomic().set(["s", i], i).commit();
    const sequential = (n * 1000) / (performance.now() - t);
    t = performance.now();
    let next = 0;
    const total = 1000;
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (next < total) await kv.atomic().set(["c", next++], 1).commit();
    }));
    const concurrent = (total * 1000) / (performance.now() - t);
    // A stream item's size, and 20,000 users with an item each already stored.
    const item = { seq: 1, id: crypto.randomUUID(), type: "MESSAGE", durable: true, at: 0 };
    const users = 20_000;
    for (let u = 0; u < users; u += 900) {
      const op = kv.atomic();
      for (let i = u; i < Math.min(users, u + 900); i++) op.set(["u", `user${i}`, 0], item);
      await op.commit();
    }
    const rate = async (key: (i: number) => Deno.KvKey) => {
      const per = 450;
      let done = 0;
      const start = performance.now();
      while (performance.now() - start < 1500) {
        const op = kv.atomic();
        for (let i = 0; i < per; i++) op.set(key(done + i), item);
        await op.commit();
        done += per;
      }
      return Math.round((done * 1000) / (performance.now() - start));
    };
    const adjacentMutations = await rate((i) => ["a", i]);
    const scatteredMutations = await rate((i) => ["u", `user${(i * 7919) % users}`, i + 1]);
    const eventRecords = {
      ordered: await eventRate(kv, ["eo"], () => uuidv7()),
      random: await eventRate(kv, ["er"], () => crypto.randomUUID()),
    };
    return {
      sequential: Math.round(sequential),
      concurrent: Math.round(concurrent),
      adjacentMutations,
      scatteredMutations,
      eventRecords,
    };
  } finally {
    kv.close();
  }
}

/**
 * Event records stored per second under ids from `idOf` (20,000 stored first, then 1.5 s of
 * commits of 20, two in flight, each id checked new), as relais's publishes store them.
 */
async function eventRate(kv: Deno.Kv, prefix: string[], idOf: () => string): Promise<number> {
  const record = { id: "", type: "REALTIME", payload: "x".repeat(600), acceptedAt: 0 };
  for (let n = 0; n < 20_000; n += 500) {
    const op = kv.atomic();
    for (let i = 0; i < 500; i++) op.set([...prefix, idOf()], record);
    await op.commit();
  }
  let done = 0;
  const start = performance.now();
  const lane = async () => {
    while (performance.now() - start < 1500) {
      const op = kv.atomic();
      for (let i = 0; i < 20; i++) {
        const key = [...prefix, idOf()];
        op.check({ key, versionstamp: null }).set(key, record);
      }
      await op.commit();
      done += 20;
    }
  };
  await Promise.all([lane(), lane()]);
  return Math.round((done * 1000) / (performance.now() - start));
}

/** Reads the machine and the versions in use. */
export async function collectMachine(rootPath: string): Promise<Machine> {
  const cpuinfo = await text("/proc/cpuinfo");
  const meminfo = await text("/proc/meminfo");
  const limits = await text("/proc/self/limits");
  const fdLine = limits.split("\n").find((l) => l.startsWith("Max open files")) ?? "";
  const importMap = JSON.parse((await text(`${rootPath}/import_map.json`)) || "{}");
  const sio = JSON.parse(
    (await text(`${rootPath}/bench/peers/socketio/package.json`)) || "{}",
  );
  const status = await run("git", ["status", "--porcelain"], rootPath);
  return {
    cpu: /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1] ?? "unknown",
    cores: navigator.hardwareConcurrency,
    memoryGiB: round(Number(/MemTotal:\s+(\d+)/.exec(meminfo)?.[1] ?? 0) / 1024 / 1024),
    kernel: Deno.osRelease(),
    openFileLimit: Number(fdLine.trim().split(/\s+/)[4] ?? NaN),
    ephemeralPorts: (await text("/proc/sys/net/ipv4/ip_local_port_range")).trim().replace(
      /\s+/,
      "–",
    ),
    loadAverageAtStart: Deno.loadavg().map(round),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    node: await run("node", ["--version"]),
    socketIo: sio.dependencies?.["socket.io"] ?? "?",
    socketIoClient: String(importMap.imports?.["socket.io-client"] ?? "?").replace(
      /^npm:socket\.io-client@/,
      "",
    ),
    relaisCommit: (await run("git", ["rev-parse", "--short", "HEAD"], rootPath)) || "unknown",
    relaisUncommittedFiles: status ? status.split("\n").length : 0,
  };
}

// deno-lint-ignore no-explicit-any
type Any = any;

const KB = 1024;
const fmt = (n: unknown, digits = 3): string => {
  if (typeof n !== "number" || !Number.isFinite(n)) return "–";
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString("en-US");
  return String(Number(n.toPrecision(digits)));
};
const kb = (bytes: number) => fmt(bytes / KB);

/** "REALTIME → USER list at 1,000, 5,000 users; …" for the method. */
function kindSizes(profile: Profile): string {
  return (Object.keys(KINDS) as FanoutKind[])
    .filter((k) => profile.fanoutKinds?.[k]?.length)
    .map((k) =>
      `${KINDS[k].label} at ${profile.fanoutKinds[k].map((n) => fmt(n)).join(", ")} users`
    )
    .join("; ");
}

interface TargetRow {
  target: string;
  goal: string;
  measured: string;
  gap: string;
  met: boolean | undefined;
  /** What bounds the figure, from measurements of the same run; absent when none is known. */
  bound?: string;
}

/**
 * Keys a durable message to `members` writes (counted in the chat scenario): its record,
 * its client id, the conversation's head, the sender's member record and unread count (its
 * read position moves to the message), the others' unread counts, an item in each
 * member's stream; each under another user or conversation than the other messages of its
 * commit.
 */
const messageKeys = (members: number) => 2 * members + 4;

/** About the most durable chat messages/s the store allows at `scattered` mutations/s. */
const chatCap = (scattered: number, members: number) => scattered / messageKeys(members);

/**
 * The idle-memory bound: every connected user has an actor (the design's rule), and XState's
 * smallest one holds `actorBytes` of heap idle, against the 0.1× of the bare server's
 * per-user RSS that 1.1× leaves for everything relais adds.
 */
function actorMemoryBound(actorBytes: number, bareBytes: number): string {
  const leaves = 0.1 * bareBytes;
  return `one actor per user: XState's smallest holds ${kb(actorBytes)} KB of heap idle, ${
    fmt(actorBytes / leaves)
  }× the ${kb(leaves)} KB that 1.1× bare leaves for all relais adds per user`;
}

/**
 * The least relais on Node can hold per connected user, against Socket.IO's: its Node stack
 * alone (`hono-node`: `@hono/node-server` and `@hono/node-ws` as relais wires them, on a
 * fresh server) plus one idle actor of XState's smallest machine on Node (the design's one
 * actor per user), before any state of relais's own.
 */
function nodeMemoryBound(stackBytes: number, actorBytes: number, sioBytes: number): string {
  return `relais's Node stack without relais ${kb(stackBytes)} KB per socket on a fresh server, ` +
    `plus XState's smallest actor on Node ${kb(actorBytes)} KB: ≥ ${
      fmt((stackBytes + actorBytes) / sioBytes)
    }× Socket.IO's before any state of relais's own`;
}

/**
 * What one actor step per recipient allows against the bare server, in CPU per delivery:
 * the bare server's own plus one step of XState's smallest machine, as a multiple of the
 * bare server's (the goal of 0.9× its rate asks for at most 1/0.9 of its CPU per delivery).
 */
function stepBound(bareMicros: unknown, step: ActorStepProbe | undefined): string | undefined {
  if (!step || typeof bareMicros !== "number" || !(bareMicros > 0)) return undefined;
  const least = bareMicros + step.smallestMicros;
  return `one actor step per recipient: ≥ ${fmt(least / bareMicros)}× the bare server's CPU ` +
    `per delivery (${fmt(bareMicros)} + ${fmt(step.smallestMicros)} µs for XState's smallest ` +
    `machine; relais's user machine ${fmt(step.userMicros)} µs); 0.9× its rate asks ≤ 1.11×`;
}

/** Users from which a turn is long enough for {@linkcode socketIoStepBound} to hold. */
const STEP_BOUND_MIN_USERS = 5000;

/**
 * What one actor step per recipient allows against Socket.IO, in deliveries/s: the bare
 * server's turn (timed inside both servers, relais's sends take as long as the bare
 * server's: it makes a turn's frames first, through the users' actors, and the runtime
 * writes them once that is done) plus one step of relais's user machine per recipient.
 * Above the goal, it says that nothing outside relais's own code keeps it from the goal.
 * Given from 5,000 users: a smaller turn is mostly its publish's round trip, and the
 * medians of a few such turns swing more than a step per recipient.
 */
function socketIoStepBound(
  size: number,
  perSecond: { bare?: unknown; "bare-node"?: unknown; socketio?: unknown } | undefined,
  step: ActorStepProbe | undefined,
  onNode = false,
): string | undefined {
  if (size < STEP_BOUND_MIN_USERS) return undefined;
  // relais on Node against the bare peer on Node, with the step as Node runs it.
  const bare = onNode ? perSecond?.["bare-node"] : perSecond?.bare;
  const sio = perSecond?.socketio;
  if (!step || typeof bare !== "number" || !(bare > 0)) return undefined;
  if (typeof sio !== "number" || !(sio > 0)) return undefined;
  const best = 1 / (1 / bare + step.userMicros / 1e6);
  const where = onNode ? " on Node" : "";
  return `the bare server's turn${where} plus one step of relais's user machine${where} per ` +
    `recipient: ≤ ${fmt(best / sio)}× (${fmt(bare)} deliveries/s and ${
      fmt(step.userMicros)
    } µs a step: ≤ ${fmt(best)} deliveries/s)`;
}

/**
 * The design's floor measured in situ: the bare server with one actor per socket
 * (`bare-actor`, or `bare-node-actor` for relais on Node: every frame through an actor of
 * XState's cheapest machine) against `peer` (`socketio`, or the bare server of the same
 * runtime), in the same runs, and relais against it. Undefined when it did not run.
 */
function actorFloor(
  ratios: Record<string, unknown> | undefined,
  peer: "socketio" | "bare",
  onNode = false,
): string | undefined {
  const floorPeer = onNode ? "bare-node-actor" : "bare-actor";
  const of = onNode && peer === "bare" ? "bare-node" : peer;
  const floor = ratios?.[`${floorPeer}/${of}`];
  if (typeof floor !== "number") return undefined;
  const relais = ratios?.[`${onNode ? "relais-node" : "relais"}/${floorPeer}`];
  const name = peer === "socketio" ? "Socket.IO" : "the bare server";
  const where = onNode ? " on Node" : "";
  return `in situ, the bare server${where} with one actor per socket (every frame through ` +
    `XState's cheapest machine) reached ${fmt(floor)}× ${name}` +
    (typeof relais === "number" ? `, relais${where} ${fmt(relais)}× it` : "");
}

/** Bounds joined for a row's bound cell, the measured ones first (undefined when none). */
const bounds = (...each: (string | undefined)[]): string | undefined =>
  each.filter(Boolean).join("; ") || undefined;

/** A "≥ goal×" row from a ratio (undefined when not measured). */
function ratioRow(target: string, r: number | undefined, goal: number): TargetRow {
  const ok = typeof r === "number" && Number.isFinite(r);
  return {
    target,
    goal: `≥ ${goal.toFixed(1)}×`,
    measured: ok ? `${fmt(r)}×` : "not run",
    gap: ok ? `${fmt(r - goal)}× (${fmt((r / goal) * 100)} % of goal)` : "–",
    met: ok ? r >= goal : undefined,
  };
}

/** An "≤ goal ms" row (undefined when not measured). */
function msRow(target: string, ms: number | undefined, goal: number, why = "not run"): TargetRow {
  const ok = typeof ms === "number" && Number.isFinite(ms);
  return {
    target,
    goal: `≤ ${fmt(goal)} ms`,
    measured: ok ? `${fmt(ms)} ms` : why,
    gap: ok ? `${fmt(ms - goal)} ms` : "–",
    met: ok ? ms <= goal : undefined,
  };
}

/** Why relais on Node has no figure in `result` (a scenario's result), for a target's row. */
function nodeNote(result: Any): string {
  const why = result?.notRun?.["relais-node"];
  return why ? `not run: ${why}` : notRun(result);
}

/** The targets table: each goal, what was measured and the gap (exported for its tests). */
export function targetRows(
  profile: Profile,
  machine: Machine,
  results: Record<string, Any>,
): TargetRow[] {
  const rows: TargetRow[] = [];
  const fanout = results.fanout;
  const fan = (fanout?.summary ?? []) as Any[];
  const kindSizes = (kind: FanoutKind): number[] => profile.fanoutKinds[kind] ?? [];
  const fanNote = (kind: FanoutKind) =>
    fanout?.skipped?.[kind] ? `not run: ${fanout.skipped[kind]}` : notRun(fanout);
  // Fan-out vs both peers at 5,000 and 10,000 users (the largest sizes of a quick run).
  for (const kind of ["realtime", "system"] as FanoutKind[]) {
    const sizes = kindSizes(kind).filter((s) => s >= 5000);
    for (const size of sizes.length ? sizes : kindSizes(kind).slice(-1)) {
      const s = fan.find((x) => x.kind === kind && x.size === size);
      for (
        const [key, goal, name] of [
          ["relais/socketio", 1.2, "Socket.IO"],
          ["relais/bare", 0.9, "bare WebSocket"],
        ] as const
      ) {
        const row = ratioRow(
          `Fan-out ${KINDS[kind].label} vs ${name} (${fmt(size)} users)`,
          s?.ratios?.[key],
          goal,
        );
        if (!s) row.measured = fanNote(kind);
        const bound = key === "relais/bare"
          ? bounds(
            actorFloor(s?.ratios, "bare"),
            stepBound(s?.serverCpuMicrosPerDelivery?.bare, machine.actorStep),
          )
          : bounds(
            actorFloor(s?.ratios, "socketio"),
            socketIoStepBound(size, s?.deliveriesPerSecond, machine.actorStep),
          );
        if (bound) row.bound = bound;
        rows.push(row);
      }
    }
  }
  const nSize = kindSizes("notification").at(-1);
  const n = fan.find((x) => x.kind === "notification" && x.size === nSize);
  const nRow = ratioRow(
    `Fan-out ${KINDS.notification.label} vs Socket.IO (${fmt(nSize)} users)`,
    n?.ratios?.["relais/socketio"],
    1.0,
  );
  if (!n) nRow.measured = fanNote("notification");
  // The targets online get it from memory before the job writes their entries: the bound
  // is the one of every fan-out, one actor step per recipient (the writes follow the sends).
  const nStep = socketIoStepBound(nSize ?? 0, n?.deliveriesPerSecond, machine.actorStep);
  const nBound = bounds(actorFloor(n?.ratios, "socketio"), nStep);
  if (nBound) nRow.bound = `${nBound}; the job's writes follow the sends`;
  rows.push(nRow);
  // relais on Node against Socket.IO, both on Node, REALTIME at the same sizes as above.
  const nodeSizes = kindSizes("realtime").filter((s) => s >= 5000);
  for (const size of nodeSizes.length ? nodeSizes : kindSizes("realtime").slice(-1)) {
    const s = fan.find((x) => x.kind === "realtime" && x.size === size);
    const row = ratioRow(
      `relais on Node fan-out ${KINDS.realtime.label} vs Socket.IO (${fmt(size)} users)`,
      s?.ratios?.["relais-node/socketio"],
      1.2,
    );
    if (s?.ratios?.["relais-node/socketio"] === undefined) row.measured = nodeNote(fanout);
    const bound = bounds(
      actorFloor(s?.ratios, "socketio", true),
      socketIoStepBound(size, s?.deliveriesPerSecond, machine.actorStepNode, true),
    );
    if (bound) row.bound = bound;
    rows.push(row);
  }

  // Idle memory: RSS per user of the peers read side by side in the fan-out, relais's (on
  // Deno and on Node) from the idle scenario's fresh servers at that size when it ran: read
  // on a server that has run fan-outs, relais's figure swings with garbage-collection
  // timing (0.1× to 1.9× bare from run to run), a fresh server's does not.
  const rss = (fanout?.rss ?? []) as Any[];
  const rssSize = rss.length ? Math.max(...rss.map((x) => x.size)) : undefined;
  const perUser = (peer: string) =>
    rss.find((x) => x.peer === peer && x.size === rssSize)?.bytesPerUser as number | undefined;
  const idleRuns = (results.idle?.summary ?? []) as Any[];
  /** A relais peer's RSS per user: on a fresh server when the idle scenario measured it. */
  const relaisPerUser = (peer: string): { bytes?: number; fresh: boolean } => {
    const fresh = idleRuns.find((x) => x.peer === peer && x.size === rssSize)?.bytesPerUser;
    return typeof fresh === "number" && fresh > 0
      ? { bytes: fresh, fresh: true }
      : { bytes: perUser(peer), fresh: false };
  };
  const onFresh = (fresh: boolean) => fresh ? " on a fresh server" : "";
  const relais = relaisPerUser("relais");
  const idleOf = (peer: string) => idleRuns.find((x) => x.peer === peer && x.size === rssSize);
  // The bare server on a fresh server too, when the idle scenario measured it there.
  const bareFresh = idleOf("bare")?.bytesPerUser;
  const relaisRss = relais.bytes;
  const bareRss = relais.fresh && typeof bareFresh === "number" ? bareFresh : perUser("bare");
  const rssOk = relaisRss !== undefined && bareRss !== undefined && bareRss > 0;
  const rssRatio = rssOk ? relaisRss / bareRss : NaN;
  const early = rssOk
    ? `${fmt(rssRatio)}× (${kb(relaisRss)} KB${onFresh(relais.fresh)} vs ${kb(bareRss)} KB)`
    : undefined;
  // Both left alone after their connects: what an idle user costs once they are collected.
  const relaisSettled = idleOf("relais")?.settledBytesPerUser;
  const bareSettled = idleOf("bare")?.settledBytesPerUser;
  const settledOk = typeof relaisSettled === "number" && typeof bareSettled === "number" &&
    bareSettled > 0;
  const settledRatio = settledOk ? relaisSettled / bareSettled : NaN;
  const ratio = settledOk ? settledRatio : rssRatio;
  // The design's floor in situ: the bare server with one idle actor per socket, read as the
  // bare server is (settled when both were).
  const withActor = idleOf("bare-actor");
  const actorBytes = settledOk ? withActor?.settledBytesPerUser : withActor?.bytesPerUser;
  const floorBare = settledOk ? bareSettled : bareFresh;
  const idleFloor = typeof actorBytes === "number" && typeof floorBare === "number" &&
      floorBare > 0
    ? `in situ, the bare server with one idle actor per socket holds ${kb(actorBytes)} KB per ` +
      `user${settledOk ? " settled" : ""}, ${fmt(actorBytes / floorBare)}× the bare server`
    : undefined;
  rows.push({
    target: `Idle RSS per connected user, relais ÷ bare in the same run (${fmt(rssSize)} users)`,
    goal: "≤ 1.1×",
    measured: settledOk
      ? `${fmt(settledRatio)}× settled (${kb(relaisSettled)} KB vs ${kb(bareSettled)} KB, ` +
        `fresh servers left alone ${fmt((results.idle?.settleMs ?? NaN) / 1000)} s after ` +
        "the connects); " +
        `3 s after them: ${early}`
      : early ?? notRun(fanout),
    gap: rssOk || settledOk ? `${fmt(ratio - 1.1)}×` : "–",
    met: rssOk || settledOk ? ratio <= 1.1 : undefined,
    ...(() => {
      const probe = (rssOk || settledOk) && machine.actorStep?.smallestBytes
        ? actorMemoryBound(machine.actorStep.smallestBytes, settledOk ? bareSettled : bareRss!)
        : undefined;
      const bound = bounds(idleFloor, probe);
      return bound ? { bound } : {};
    })(),
  });
  // relais on Node against Socket.IO, both on Node, read side by side in the same run.
  const onNode = relaisPerUser("relais-node");
  const nodeRss = onNode.bytes;
  const sioRss = perUser("socketio");
  const nodeOk = nodeRss !== undefined && sioRss !== undefined && sioRss > 0;
  const nodeRatio = nodeOk ? nodeRss / sioRss : NaN;
  // The floor: relais's Node stack alone on a fresh server, plus one smallest actor on Node.
  const nodeStack = Number(idleOf("hono-node")?.bytesPerUser);
  const nodeActor = machine.actorStepNode?.smallestBytes;
  rows.push({
    target: `relais on Node idle RSS per connected user ≤ Socket.IO's, in the same run (${
      fmt(rssSize)
    } users)`,
    goal: "≤ 1.0×",
    measured: nodeOk
      ? `${fmt(nodeRatio)}× (${kb(nodeRss)} KB${onFresh(onNode.fresh)} vs ${kb(sioRss)} KB)`
      : nodeNote(fanout),
    gap: nodeOk ? `${fmt(nodeRatio - 1)}×` : "–",
    met: nodeOk ? nodeRatio <= 1 : undefined,
    ...(nodeStack > 0 && sioRss && nodeActor
      ? { bound: nodeMemoryBound(nodeStack, nodeActor, sioRss) }
      : {}),
  });

  const idle = results.idle?.summary as Any[] | undefined;
  const top = idle?.filter((s) => s.peer === "relais").sort((a, b) => a.size - b.size).at(-1);
  rows.push({
    target: "Idle users in one process",
    goal: "50,000",
    measured: top?.connected ? `${fmt(top.connected)} (the most this machine allows)` : "–",
    gap: `blocked: the open-file hard limit is ${fmt(machine.openFileLimit)} per process`,
    met: undefined,
  });

  const latency = results.latency?.summary as Any[] | undefined;
  const floor = results.latency?.bare?.summary as Any[] | undefined;
  for (const [rate, goal] of LATENCY_GOALS) {
    const at = latency?.find((s) => s.rate === rate);
    const row = msRow(
      `p99 publish → receive at ${fmt(rate)} events/s (${
        fmt(results.latency?.users ?? profile.latencyUsers)
      } connected, one user per event)`,
      at?.p99,
      goal,
      results.latency?.error ? notRun(results.latency) : "not run at this rate",
    );
    const bare = floor?.find((s) => s.rate === rate);
    if (typeof bare?.p99 === "number" && bare.lost === 0) {
      row.bound = `the clients and the machine: a bare server behind the same publisher and ` +
        `clients, p99 ${fmt(bare.p99)} ms (p50 ${fmt(bare.p50)} ms)${cpuPerPublish(at, bare)}`;
    }
    rows.push(row);
  }

  const aud = results.audience;
  rows.push({
    target: `${fmt(aud?.users ?? profile.audienceUsers)}-user STRUCTURE audience durable (202)`,
    goal: "≤ 0.5 s",
    measured: aud?.available ? `${fmt(aud.summary.durableMs / 1000)} s` : notRun(aud),
    gap: aud?.available ? `${fmt(aud.summary.durableMs / 1000 - 0.5)} s` : "–",
    met: aud?.available ? aud.summary.durableMs <= 500 : undefined,
  });

  const chat = results.chat;
  const scattered = machine.kvCommitsPerSecond?.scatteredMutations;
  const members = chat?.members as number | undefined;
  rows.push({
    target: "Durable chat messages/s",
    goal: "≥ 3,000",
    measured: chat?.available ? fmt(chat.summary.messagesPerSecond) : notRun(chat),
    gap: chat?.available ? fmt(chat.summary.messagesPerSecond - 3000) : "–",
    met: chat?.available ? chat.summary.messagesPerSecond >= 3000 : undefined,
    ...(scattered && members
      ? {
        // An estimate from the key count: fewer keys a message did not make chat faster in
        // side runs (see the README), so the store's key rate is an upper bound, not a limit
        // chat reaches.
        bound: `the store's key rate, at most: ~${
          fmt(Math.round(chatCap(scattered, members)))
        } messages/s (${
          messageKeys(members)
        } keys each, each under another user or conversation, at ${fmt(scattered)} mutations/s)`,
      }
      : {}),
  });
  const chatP99 = msRow(
    "Durable chat p99 send → receive",
    chat?.available ? chat.summary.p99 : undefined,
    50,
    notRun(chat),
  );
  const inFlight = typeof chat?.conversations === "number" ? chat.conversations * WINDOW : 0;
  if (scattered && members && inFlight > 0) {
    // Little's law: a closed loop of `inFlight` messages at most at the store's rate waits at
    // least inFlight ÷ rate on average, and at the throughput goal inFlight ÷ 3,000.
    const cap = chatCap(scattered, members);
    chatP99.bound = `the store's key rate and the loop: ${fmt(inFlight)} messages in flight at ~${
      fmt(Math.round(cap))
    } messages/s wait ~${fmt(Math.round((inFlight * 1000) / cap))} ms on average (at 3,000/s, ${
      fmt(Math.round((inFlight * 1000) / 3000))
    } ms)`;
  }
  rows.push(chatP99);

  const storm = results.storm;
  const stormUsers = storm?.users ?? profile.stormUsers;
  const ss = storm?.summary;
  const stormOk = ss && Number.isFinite(ss.resumedMs);
  rows.push({
    target: `Reconnect storm of ${fmt(stormUsers)} users: all resumed and caught up, nothing lost`,
    goal: "≤ 1,000 ms, 0 lost, 0 failed",
    measured: stormOk
      ? `${fmt(ss.resumedMs)} ms (with the mid-storm item ${fmt(ss.completeMs)} ms), ${
        fmt(ss.lost)
      } lost, ${fmt(ss.failed)} failed${
        storm.bare?.medianMs === undefined ? "" : `; bare server ${fmt(storm.bare.medianMs)} ms`
      }`
      : notRun(storm),
    gap: stormOk ? `${fmt(ss.resumedMs - 1000)} ms` : "–",
    met: stormOk ? ss.resumedMs <= 1000 && ss.lost === 0 && ss.failed === 0 : undefined,
    ...(storm?.bare?.medianMs === undefined ? {} : {
      bound: `the runtime and the clients: a bare server welcomes the same reconnects in ${
        fmt(storm.bare.medianMs)
      } ms`,
    }),
  });

  // Cluster: three relais nodes against three Socket.IO nodes, each trio on its own Redis.
  const cluster = results.cluster;
  const cf = cluster?.fanout;
  const cs = cf?.summary;
  const cNote = cf?.error ? `failed: ${cf.error}` : notRun(cluster);
  const cUsers = fmt(cluster?.sizes?.users);
  const dps = ratioRow(
    `Cluster fan-out ${KINDS.realtime.label}, 3 relais nodes vs 3 Socket.IO nodes (Redis Streams adapter), deliveries/s (${cUsers} users)`,
    cs?.ratio,
    1.2,
  );
  dps.measured = cs
    ? `${dps.measured} (${fmt(cs.deliveriesPerSecond.relais)} vs ${
      fmt(cs.deliveriesPerSecond.socketio)
    })`
    : cNote;
  rows.push(dps);
  const p99 = ratioRow(
    `Cluster p99 publish → receive, Socket.IO's ÷ relais's (${cUsers} users over 3 nodes)`,
    cs?.p99Ratio,
    1.2,
  );
  p99.measured = cs
    ? `${p99.measured} (${fmt(cs.p99Ms.relais)} ms vs ${fmt(cs.p99Ms.socketio)} ms)`
    : cNote;
  rows.push(p99);
  const ci = cluster?.idle;
  const ciOk = ci && !ci.error;
  const ciNote = ci?.error ? `failed: ${ci.error}` : notRun(cluster);
  rows.push({
    target: "Idle users connected over 3 relais nodes (RSS per user per node)",
    goal: fmt(ci?.asked ?? cluster?.sizes?.idleUsers),
    measured: ciOk
      ? `${fmt(ci.reached)}${ci.stoppedBy ? ` (stopped by ${ci.stoppedBy})` : ""}; ${
        (ci.nodes as Any[]).map((n) => kb(n.bytesPerUser)).join(" / ")
      } KB per user`
      : ciNote,
    gap: ciOk ? fmt(ci.reached - ci.asked) : "–",
    met: ciOk ? ci.reached >= ci.asked : undefined,
  });
  rows.push({
    target: "One REALTIME event to every idle user over 3 relais nodes, all received",
    goal: ciOk ? `${fmt(ci.reached)} received` : "all received",
    measured: ciOk
      ? `${fmt(ci.publish.received)} received, the last after ${fmt(ci.publish.lastDeliveryMs)} ms`
      : ciNote,
    gap: ciOk ? fmt(ci.publish.received - ci.reached) : "–",
    met: ciOk ? ci.publish.received >= ci.reached && !ci.publish.timedOut : undefined,
  });
  return rows;
}

/** The p99 publish → receive goals: [events/s, ms]. */
const LATENCY_GOALS = [[1000, 20], [3000, 50]] as const;

/** The report's charts: file name, alt text and SVG; a scenario not run has none. */
export function charts(results: Record<string, Any>): { file: string; alt: string; svg: string }[] {
  const out: { file: string; alt: string; svg: string }[] = [];
  const fan = results.fanout?.summary as Any[] | undefined;
  if (!results.fanout?.error && fan?.length) {
    const kinds = (Object.keys(KINDS) as FanoutKind[]).filter((k) => fan.some((s) => s.kind === k));
    const points = (kind: FanoutKind, peer: string) =>
      fan.filter((s) => s.kind === kind && typeof s.deliveriesPerSecond?.[peer] === "number")
        .map((s) => ({ x: s.size, y: s.deliveriesPerSecond[peer] }));
    // The peers broadcast the same envelope whatever the kind: the kind with the most sizes.
    const peerKind = [...kinds].sort((a, b) =>
      points(b, "bare").length - points(a, "bare").length
    )[0];
    const series: Series[] = [
      ...kinds.map((k) => ({ name: `relais ${KINDS[k].type}`, points: points(k, "relais") })),
      ...kinds.map((k) => ({
        name: `relais on Node ${KINDS[k].type}`,
        points: points(k, "relais-node"),
      })),
      { name: "bare WebSocket", points: points(peerKind, "bare") },
      { name: "bare + one actor per socket", points: points(peerKind, "bare-actor") },
      // It runs REALTIME only, beside relais on Node.
      { name: "bare WebSocket on Node", points: points("realtime", "bare-node") },
      {
        name: "bare on Node + one actor per socket",
        points: points("realtime", "bare-node-actor"),
      },
      { name: "Socket.IO", points: points(peerKind, "socketio") },
    ].filter((s) => s.points.length);
    out.push({
      file: "bench-fanout.svg",
      alt: "Fan-out deliveries per second against users online, relais and its peers",
      svg: lineChart({
        title: "Fan-out: deliveries/s by users online (median of runs)",
        xLabel: "users online",
        yLabel: "deliveries/s",
        series,
      }),
    });
  }
  const lat = (results.latency?.summary as Any[] | undefined)?.filter((s) => s.rate > 0);
  if (!results.latency?.error && lat?.length) {
    const rates = lat.map((s) => s.rate);
    out.push({
      file: "bench-latency.svg",
      alt: "Publish to receive latency percentiles against the publish rate",
      svg: lineChart({
        title: `Latency: publish → receive by publish rate (${fmt(results.latency.users)} online)`,
        xLabel: "events/s asked (log scale)",
        yLabel: "ms (log scale)",
        x: "log",
        y: "log",
        series: [
          ...(["p50", "p95", "p99"] as const).map((p) => ({
            name: p,
            points: lat.map((s) => ({ x: s.rate, y: s[p] })),
          })),
          {
            name: "p99 goal",
            dashed: true,
            points: LATENCY_GOALS.filter(([rate]) => rates.includes(rate))
              .map(([x, y]) => ({ x, y })),
          },
        ].filter((s) => s.points.length),
      }),
    });
  }
  const idle = results.idle?.summary as Any[] | undefined;
  if (!results.idle?.error && idle?.length) {
    const sizes = [...new Set(idle.map((s) => s.size as number))].sort((a, b) => a - b);
    const peers = [...new Set(idle.map((s) => s.peer as string))];
    out.push({
      file: "bench-idle.svg",
      alt: "Resident memory per connected user against users connected",
      svg: barChart({
        title: "Idle: RSS per connected user (median of runs)",
        xLabel: "users connected",
        yLabel: "KB per user",
        groups: sizes.map((n) => fmt(n)),
        series: peers.map((peer) => ({
          name: PEER_LABELS[peer as keyof typeof PEER_LABELS] ?? peer,
          values: sizes.map((size) => {
            const b = idle.find((s) => s.peer === peer && s.size === size)?.bytesPerUser;
            return typeof b === "number" ? b / KB : undefined;
          }),
        })),
        formatY: (n) => fmt(n),
      }),
    });
  }
  return out;
}

function notRun(result: Any): string {
  if (!result) return "not run";
  if (result.error) return `failed: ${result.error}`;
  return result.note ?? "not available";
}

function table(head: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

function status(met: boolean | undefined): string {
  return met === undefined ? "–" : met ? "met" : "not met";
}

function idleSection(r: Any, fan: Any, machine: Machine, maxIdleSize: number): string {
  if (!r) return "Not run.";
  if (r.error) return `Failed: ${r.error}`;
  const label = (peer: string) => PEER_LABELS[peer as keyof typeof PEER_LABELS] ?? peer;
  const rows = (r.summary as Any[]).map((s) => [
    label(s.peer ?? "relais"),
    fmt(s.size),
    fmt(s.runs),
    fmt(s.connected),
    `${kb(s.bytesPerUser)} KB`,
    typeof s.settledBytesPerUser === "number" ? `${kb(s.settledBytesPerUser)} KB` : "–",
    fmt(s.connectsPerSecond),
  ]);
  const runs = (r.runs as Any[]).map((x) =>
    `${label(x.peer ?? "relais")}, ${fmt(x.size)} (run ${x.run}): ${kb(x.bytesPerUser)} KB` +
    (x.settledBytesPerUser !== undefined ? ` (settled ${kb(x.settledBytesPerUser)} KB)` : "") +
    (x.userActors !== undefined ? `, ${fmt(x.userActors)} user actors` : "") +
    (x.failed ? `, ${x.failed} failed (${x.firstError})` : "")
  );
  const nodeWhy = r.notRun?.["relais-node"];
  const stackWhy = r.notRun?.["hono-node"];
  const out = [
    "relais and relais on Node (the same server run by `node dist/node/relais.mjs`), each run " +
    "on a fresh server, and relais's Node stack without relais (`bench/peers/hono_node.ts`: " +
    "`@hono/node-server` and `@hono/node-ws` as relais wires them, a `hello` answered with a " +
    "fixed `welcome`), the floor of relais on Node's memory per user; in the last run, the " +
    "bare server alone and with one idle actor per socket (XState's cheapest machine, " +
    "started with the socket's `hello`), the floor of the design's one actor per user:",
    "",
    table(
      [
        "server",
        "users",
        "runs",
        "connected (median)",
        "RSS per user (median)",
        `settled, ${fmt((r.settleMs ?? NaN) / 1000)} s later (last run)`,
        "first connects/s",
      ],
      rows,
    ),
    "",
    ...(nodeWhy ? [`relais on Node not run: ${nodeWhy}.`, ""] : []),
    ...(stackWhy && !nodeWhy ? [`Hono on Node without relais not run: ${stackWhy}.`, ""] : []),
    `25k and 50k users in one process cannot be measured here: the open-file hard limit is ${
      fmt(machine.openFileLimit)
    } per process (it cannot be raised on this machine) and every socket is a file, so the ` +
    `full run stops at ${fmt(maxIdleSize)} users (the limit less room for the server's own ` +
    "files, its KV database among them), in its last run.",
    "",
    "Every run: " + runs.join("; ") + ".",
  ];
  const side = fan?.rss as Any[] | undefined;
  if (side?.length) {
    const sizes = [...new Set(side.map((x) => x.size))];
    const at = (peer: string, size: number) =>
      side.find((x) => x.peer === peer && x.size === size)?.bytesPerUser;
    const perUser = (peer: string, size: number) => {
      const b = at(peer, size);
      return typeof b === "number" ? `${kb(b)} KB` : "–";
    };
    out.push(
      "",
      "The servers side by side, read in the fan-out scenario (one run) after each step " +
        "of connections has settled, before that step's events (from the second step on, the " +
        "servers have already sent the previous steps' events):",
      "",
      table(
        [
          "users",
          "relais",
          "relais on Node",
          "bare",
          "Socket.IO",
          "relais ÷ bare",
          "relais ÷ Socket.IO",
          "relais on Node ÷ Socket.IO",
        ],
        sizes.map((size) => [
          fmt(size),
          perUser("relais", size),
          perUser("relais-node", size),
          perUser("bare", size),
          perUser("socketio", size),
          `${fmt(at("relais", size) / at("bare", size))}×`,
          `${fmt(at("relais", size) / at("socketio", size))}×`,
          `${fmt(at("relais-node", size) / at("socketio", size))}×`,
        ]),
      ),
    );
    const fanWhy = fan?.notRun?.["relais-node"];
    if (fanWhy) out.push("", `relais on Node in the fan-out: not run (${fanWhy}).`);
  }
  return out.join("\n");
}

function fanoutSection(r: Any): string {
  if (!r) return "Not run.";
  if (r.error) return `Failed: ${r.error}`;
  const each = (values: Any) => FANOUT_PEERS.map((p) => fmt(values?.[p])).join(" / ");
  const times = (ratio: unknown) => typeof ratio === "number" ? `${fmt(ratio)}×` : "–";
  const rows = (r.summary as Any[]).map((s) => [
    KINDS[s.kind as FanoutKind]?.label ?? "REALTIME → USER list",
    fmt(s.size),
    fmt(s.deliveriesPerSecond.relais),
    fmt(s.deliveriesPerSecond["relais-node"]),
    fmt(s.deliveriesPerSecond.bare),
    fmt(s.deliveriesPerSecond["bare-actor"]),
    fmt(s.deliveriesPerSecond["bare-node"]),
    fmt(s.deliveriesPerSecond["bare-node-actor"]),
    fmt(s.deliveriesPerSecond.socketio),
    times(s.ratios["relais/socketio"]),
    times(s.ratios["relais/bare"]),
    times(s.ratios["relais/bare-actor"]),
    times(s.ratios["bare-actor/socketio"]),
    times(s.ratios["relais-node/socketio"]),
    times(s.ratios["relais-node/bare-node"]),
    times(s.ratios["relais-node/bare-node-actor"]),
    times(s.ratios["bare-node-actor/socketio"]),
    times(s.ratios["relais-node/relais"]),
    each(s.lastDeliveryMs),
    each(s.serverCpuMicrosPerDelivery),
    `${fmt(s.relaisAnswerMs)} / ${fmt(s.relaisNodeAnswerMs)}`,
    fmt(s.lost),
  ]);
  const nodeWhy = r.notRun?.["relais-node"];
  const out = [
    "The kind is what relais is asked to deliver; the bare and Socket.IO peers broadcast the " +
    "same client envelope whatever the kind (they have no notion of durability or audience), " +
    "so each kind's ratios put relais's own cost for it against the same broadcast, measured " +
    "in the same run. The STRUCTURE of each size holds exactly the users connected at that " +
    "size. relais on Node (the same server run by `node dist/node/relais.mjs`, beside " +
    "Socket.IO on the same Node.js) runs the REALTIME kind only: it is given no directory; " +
    "so does the bare peer on Node (`ws`, the package `@hono/node-ws` and Socket.IO send " +
    "with), its ceiling. The bare server with one actor per socket (`BARE_ACTORS=1`) sends " +
    "every frame through an actor of XState's cheapest machine (one transition, one action, " +
    "no `assign`), started with the socket's `hello`: the floor of the design's rule that " +
    "every item reaches a user through their actor, measured where relais pays it; the bare " +
    "peer on Node has its own (REALTIME only, beside relais on Node).",
    "",
    table([
      "kind (relais)",
      "users",
      "relais deliveries/s",
      "relais on Node deliveries/s",
      "bare deliveries/s",
      "bare + one actor per socket deliveries/s",
      "bare on Node deliveries/s",
      "bare on Node + one actor per socket deliveries/s",
      "Socket.IO deliveries/s",
      "relais ÷ Socket.IO",
      "relais ÷ bare",
      "relais ÷ bare + actor",
      "bare + actor ÷ Socket.IO",
      "relais on Node ÷ Socket.IO",
      "relais on Node ÷ bare on Node",
      "relais on Node ÷ bare on Node + actor",
      "bare on Node + actor ÷ Socket.IO",
      "relais on Node ÷ relais",
      "publish → last client, ms (relais / on Node / bare / bare + actor / bare on Node / bare on Node + actor / Socket.IO)",
      "server CPU µs per delivery (relais / on Node / bare / bare + actor / bare on Node / bare on Node + actor / Socket.IO)",
      "publish → 202, ms (relais / on Node)",
      "lost",
    ], rows),
    ...(nodeWhy ? ["", `relais on Node not run: ${nodeWhy}.`] : []),
  ];
  const skipped = Object.entries(r.skipped ?? {});
  if (skipped.length) {
    out.push("", skipped.map(([k, why]) => `${KINDS[k as FanoutKind].label}: ${why}.`).join(" "));
  }
  return out.join("\n");
}

/**
 * "; CPU per publish: relais 310 µs, the bare server 60 µs" when both runs measured it:
 * with the rate, how much of the machine's two cores each server takes.
 */
function cpuPerPublish(relais: Any, bare: Any): string {
  const [ours, floor] = [relais?.cpuMicrosPerPublish, bare?.cpuMicrosPerPublish];
  if (!Number.isFinite(ours) || !Number.isFinite(floor)) return "";
  return `; CPU per publish: relais ${fmt(ours)} µs, the bare server ${fmt(floor)} µs`;
}

/** What the latency section says of the bare server's runs (exported for its tests). */
export function bareLatencyNote(bare: Any): string {
  if (!bare) return "The bare server was not run.";
  if (bare.error) return `The bare server's runs failed: ${bare.error}`;
  const rates = (bare.summary as Any[]).map((s) =>
    `${fmt(s.rate)}/s p50 ${fmt(s.p50)} ms, p99 ${fmt(s.p99)} ms (${fmt(s.handledRate)} answered/s${
      Number.isFinite(s.cpuMicrosPerPublish) ? `, ${fmt(s.cpuMicrosPerPublish)} µs of CPU each` : ""
    }${s.lost > 0 ? `, ${fmt(s.lost)} not received` : ""})`
  );
  return "The same users, publisher and rates against the bare WebSocket server (a publish " +
    "answered and its event sent at once: no token, store or actor), the share of these " +
    `figures the clients and the machine take: ${rates.join("; ")}.`;
}

/** What the latency section says of the events' ids and what the store makes of them. */
export function idsNote(kv: KvProbe | undefined): string {
  const rates = kv?.eventRecords;
  const stored = rates
    ? ` Deno KV stores such event records at ${fmt(rates.ordered)}/s on this disk, and at ${
      fmt(rates.random)
    }/s when their ids are random (version 4: each lands on a page of its own; machine table).`
    : "";
  return `Events carry time-ordered ids (UUID version 7), as the platform's emitters make them.${stored}`;
}

function latencySection(r: Any, kv?: KvProbe): string {
  if (!r) return "Not run.";
  if (r.error) return `Failed: ${r.error}`;
  const rows = (r.summary as Any[]).map((s) => [
    fmt(s.rate),
    fmt(s.achievedRate),
    fmt(s.handledRate),
    fmt(s.p50),
    fmt(s.p95),
    fmt(s.p99),
    fmt(s.cpuMicrosPerPublish),
    fmt(s.lost),
    fmt(s.refused),
    fmt(s.skipped),
  ]);
  return [
    `${fmt(r.users)} users connected to relais; each event goes to one of them. ${idsNote(kv)}`,
    "",
    bareLatencyNote(r.bare),
    "",
    table([
      "events/s asked",
      "events/s sent",
      "events/s answered (first send → last answer)",
      "p50 ms",
      "p95 ms",
      "p99 ms",
      "server CPU per publish, µs (all threads, first send → last receipt)",
      "accepted, not received",
      "refused (not 202)",
      "skipped (queue full)",
    ], rows),
  ].join("\n");
}

function audienceSection(r: Any): string {
  if (!r) return "Not run.";
  if (r.error) return `Failed: ${r.error}`;
  if (!r.available) return `${r.note[0].toUpperCase()}${r.note.slice(1)}.`;
  return [
    `${fmt(r.users)} users in one structure, all online; directory written at ${
      fmt(r.directoryWritesPerSecond)
    } PUT/s before the runs.`,
    "",
    table([
      "publish → 202 (durable), ms",
      "publish → fan-out done, ms",
      "publish → last user, ms",
      "lost",
    ], [[
      fmt(r.summary.durableMs),
      fmt(r.summary.fanoutDoneMs),
      fmt(r.summary.deliveredMs),
      fmt(r.summary.lost),
    ]]),
  ].join("\n");
}

function chatSection(r: Any, kv: KvProbe | undefined): string {
  if (!r) return "Not run.";
  if (r.error) return `Failed: ${r.error}`;
  if (!r.available) return `${r.note[0].toUpperCase()}${r.note.slice(1)}.`;
  const bound = kv?.scatteredMutations
    ? [
      "",
      `What the store allows: a message to ${fmt(r.members)} members writes ${
        messageKeys(r.members)
      } keys (its record, its client id, the conversation's head, the sender's read position and unread count, the others' unread counts, an item in each member's stream), each under another user or conversation than the other messages of its commit. Deno KV (SQLite) writes such keys at about ${
        fmt(kv.scatteredMutations)
      } mutations/s on this disk (${
        fmt(kv.adjacentMutations)
      }/s when keys follow one another; see the machine table), so the store alone caps durable chat near ${
        fmt(Math.round(chatCap(kv.scatteredMutations, r.members)))
      } messages/s, and a closed loop of ${
        fmt(r.conversations * WINDOW)
      } messages in flight at that rate waits ${
        fmt(
          Math.round(
            (r.conversations * WINDOW * 1000) / chatCap(kv.scatteredMutations, r.members),
          ),
        )
      } ms on average.`,
    ]
    : [];
  return [
    `${fmt(r.conversations)} conversations of ${
      fmt(r.members)
    } members, all online; one sender per conversation, ${WINDOW} messages in flight each.`,
    "",
    table(["durable messages/s", "send → receive p50 ms", "p99 ms", "lost"], [[
      fmt(r.summary.messagesPerSecond),
      fmt(r.summary.p50),
      fmt(r.summary.p99),
      fmt(r.summary.lost),
    ]]),
    ...bound,
  ].join("\n");
}

function ingestSection(r: Any): string {
  if (!r) return "Not run.";
  if (r.error) return `Failed: ${r.error}`;
  if (!r.available) return `${r.note[0].toUpperCase()}${r.note.slice(1)}.`;
  return [
    `${fmt(r.users)} users connected; ${
      fmt(r.changes)
    } Debezium changes XADDed at once to a Redis stream (a \`redis-server\` on loopback), ` +
    "one row each, its `owner_id` naming a connected user; relais reads the stream as a " +
    "consumer group and delivers each change as a REALTIME event. Lag is what " +
    "`GET /v1/admin/ingest` reported (entries not yet read plus read and not yet acked), " +
    "sampled every 100 ms while the burst drained.",
    "",
    table(
      ["run", "changes", "delivered", "changes/s", "XADD ms", "p50 ms", "p99 ms", "largest lag"],
      (r.runs as Any[]).map((x) => [
        x.run,
        fmt(x.changes),
        fmt(x.delivered),
        fmt(x.changesPerSecond),
        fmt(x.addMs),
        fmt(x.p50),
        fmt(x.p99),
        fmt(x.maxLag),
      ]),
    ),
  ].join("\n");
}

export function stormSection(r: Any): string {
  if (!r) return "Not run.";
  if (r.error) return `Failed: ${r.error}`;
  const rows = (r.runs as Any[]).map((x) => [
    x.run,
    fmt(x.resumed),
    fmt(x.resumedMs),
    fmt(x.completeMs),
    fmt(x.failed),
    fmt(x.behind),
    fmt(x.missedLive),
    fmt(x.gaps),
    fmt(x.duplicates),
    fmt(x.recoveredFalse),
  ]);
  return [
    `${fmt(r.users)} users drop; ${r.missedPerStorm} notifications to all of them are published ` +
    "while they are away (each fan-out finished); all reconnect at once with `after` = the " +
    "last seq each one saw, and one more notification is published 20 ms into the storm.",
    "",
    table([
      "run",
      "resumed",
      "storm → all welcomed and caught up, ms",
      "storm → all have the mid-storm item, ms",
      "failed",
      "behind their welcome's seq",
      "without the mid-storm item",
      "seq gaps",
      "duplicates",
      "recovered: false",
    ], rows),
    "",
    `Median time until all resumed: ${fmt(r.summary.resumedMs)} ms (all complete: ${
      fmt(r.summary.completeMs)
    } ms); items lost over all runs: ${fmt(r.summary.lost)}.`,
    "",
    bareStorm(r.bare, r.users),
  ].join("\n");
}

/** The storm's ceiling: the bare server's reconnections at once, on the same machine. */
function bareStorm(bare: Any, users: number): string {
  if (!bare) return "The bare server's storm was not run.";
  if (bare.error) return `The bare server's storm failed: ${bare.error}`;
  return `The ceiling: ${fmt(users)} clients reconnecting at once to the bare WebSocket server ` +
    `(a \`hello\` answered with a fixed \`welcome\`: no token, no stream, nothing to replay) ` +
    `were all welcomed in ${fmt(bare.medianMs)} ms (runs ${
      (bare.runs as number[]).map((ms) => fmt(ms)).join(", ")
    } ms).`;
}

/** Writes both files and the charts, formats the files with `deno fmt`; returns the paths. */
export async function writeReport(input: {
  outDir: string;
  rootPath: string;
  profile: Profile;
  machine: Machine;
  results: Record<string, Any>;
  selected: string[];
  /** The most idle users one process can hold here (the full run's largest size). */
  maxIdleSize: number;
  status: string;
  startedAt: number;
  endedAt: number;
  /** The load average when the run ended; now when not given (a report rewritten later). */
  loadAverageAtEnd?: number[];
}): Promise<string[]> {
  const { profile, machine, results } = input;
  const targets = targetRows(profile, machine, results);
  const loadAtEnd = input.loadAverageAtEnd ?? Deno.loadavg().map(round);
  const json = {
    generatedAt: new Date(input.endedAt).toISOString(),
    mode: profile.quick ? "quick" : "full",
    status: input.status,
    durationSeconds: Math.round((input.endedAt - input.startedAt) / 1000),
    machine: { ...machine, loadAverageAtEnd: loadAtEnd },
    profile,
    targets,
    results,
  };
  await Deno.mkdir(input.outDir, { recursive: true });
  const jsonPath = `${input.outDir}/benchmarks.json`;
  const mdPath = `${input.outDir}/BENCHMARKS.md`;
  await Deno.writeTextFile(jsonPath, JSON.stringify(json, null, 2) + "\n");
  const drawn = charts(results);
  for (const chart of drawn) await Deno.writeTextFile(`${input.outDir}/${chart.file}`, chart.svg);
  const figure = (file: string) => {
    const chart = drawn.find((c) => c.file === file);
    return chart ? [`![${chart.alt}](${chart.file})`, ""] : [];
  };

  const md = [
    "# relais benchmarks",
    "",
    `Generated by \`deno task bench${profile.quick ? " -- --quick" : ""}\` on ${
      json.generatedAt.slice(0, 16).replace("T", " ")
    } UTC (${json.mode} run, ${input.status}, ${json.durationSeconds} s). Every figure is the ` +
    `median of ${profile.runs} run${profile.runs > 1 ? "s" : ""}; ratios are computed run by ` +
    "run from measurements made in the same run, then their median is taken. All the data, " +
    "every run included, is in `benchmarks.json`.",
    "",
    `Load average at start ${machine.loadAverageAtStart.join(" / ")}, at end ${
      loadAtEnd.join(" / ")
    }: anything above 0.5 at the start means other work shared the machine's ${machine.cores} cores.`,
    "",
    "## Targets",
    "",
    "Goals, not assertions: the gap is measured − goal. A bound is a limit measured in the " +
    "same run that relais's figure cannot pass as relais is built (the machine table gives " +
    "the probes): first the floor of the design's rule measured in situ (the bare server " +
    "with one XState actor per socket, every frame through it), then one XState step per " +
    "recipient and one idle XState actor per connected user as the probes read them, the " +
    "store's write rate on this disk, the bare server's own time.",
    "",
    table(
      ["target", "goal", "measured", "gap", "status", "bound (this run)"],
      targets.map((t) => [t.target, t.goal, t.measured, t.gap, status(t.met), t.bound ?? "–"]),
    ),
    "",
    "## Machine and versions",
    "",
    table(["", ""], [
      ["CPU", `${machine.cpu}, ${machine.cores} cores`],
      ["memory", `${machine.memoryGiB} GiB`],
      ["kernel", machine.kernel],
      ["open files, hard limit per process", fmt(machine.openFileLimit)],
      [
        "Deno KV commits/s on the data disk (1 / 64 at a time)",
        machine.kvCommitsPerSecond
          ? `${fmt(machine.kvCommitsPerSecond.sequential)} / ${
            fmt(machine.kvCommitsPerSecond.concurrent)
          }`
          : "–",
      ],
      [
        "Deno KV mutations/s in commits of 450, keys adjacent / one per user",
        machine.kvCommitsPerSecond?.scatteredMutations
          ? `${fmt(machine.kvCommitsPerSecond.adjacentMutations)} / ${
            fmt(machine.kvCommitsPerSecond.scatteredMutations)
          }`
          : "–",
      ],
      [
        "Deno KV event records/s in commits of 20, ids time-ordered (version 7) / random (version 4)",
        machine.kvCommitsPerSecond?.eventRecords
          ? `${fmt(machine.kvCommitsPerSecond.eventRecords.ordered)} / ${
            fmt(machine.kvCommitsPerSecond.eventRecords.random)
          }`
          : "–",
      ],
      [
        "XState step, µs (smallest machine / relais's user machine; 10,000 actors)",
        machine.actorStep
          ? `${fmt(machine.actorStep.smallestMicros)} / ${fmt(machine.actorStep.userMicros)}`
          : "–",
      ],
      [
        "XState actor of the smallest machine, idle, heap KB (10,000 actors)",
        machine.actorStep?.smallestBytes ? kb(machine.actorStep.smallestBytes) : "–",
      ],
      [
        "XState step on Node, µs (smallest machine / relais's user machine; 10,000 actors)",
        machine.actorStepNode
          ? `${fmt(machine.actorStepNode.smallestMicros)} / ${
            fmt(machine.actorStepNode.userMicros)
          }`
          : "–",
      ],
      [
        "XState actor of the smallest machine on Node, idle, heap KB (10,000 actors)",
        machine.actorStepNode?.smallestBytes ? kb(machine.actorStepNode.smallestBytes) : "–",
      ],
      [
        "XState step, KB allocated (smallest machine / relais's user machine)",
        machine.actorStep?.smallestAllocBytes && machine.actorStep.userAllocBytes
          ? `${kb(machine.actorStep.smallestAllocBytes)} / ${kb(machine.actorStep.userAllocBytes)}`
          : "–",
      ],
      ["ephemeral ports", machine.ephemeralPorts],
      ["Deno", `${machine.deno} (V8 ${machine.v8}, TypeScript ${machine.typescript})`],
      ["Node.js", machine.node],
      ["Socket.IO (server)", machine.socketIo],
      ["socket.io-client", machine.socketIoClient],
      [
        "relais",
        `commit ${machine.relaisCommit}${
          machine.relaisUncommittedFiles
            ? `, ${machine.relaisUncommittedFiles} files changed since`
            : ""
        }`,
      ],
    ]),
    "",
    "## Method",
    "",
    "- Everything runs on loopback (127.0.0.1), one process per role: the server under test, " +
    `${profile.loadgens} load generators (Deno, each holding a share of the clients, below the ` +
    "per-process file limit) and one publisher (Deno). Every child runs under `timeout -s KILL` " +
    "and is killed when the harness ends, fails, is interrupted or reaches its deadline.",
    "- **relais** runs as `deno task start` would run it (the same permission and V8 flags, " +
    "its data folder moved to a temporary directory), with `RELAIS_ENV=production`, a JWT " +
    "secret and a service key, Deno KV on a local SQLite file, `RELAIS_LOG_LEVEL=warning` and " +
    "`RELAIS_MAX_BODY_BYTES=8388608` (a USER audience of 10,000 ids is about 150 KB of JSON). " +
    "Clients authenticate with an HS256 JWT in `hello`.",
    "- **relais on Node** is the same server run as `deno task start:node` runs it: the bundle " +
    "`dist/node/relais.mjs` (built once at the start of the run by `deno task build:node` " +
    "when a source changed) run by `node` with V8's pretenuring off (as on Deno), with " +
    "`@deno/kv` on its own SQLite file in the temporary directory and the same environment " +
    "as relais (plus `NODE_ENV=production`). " +
    "The load generators speak `relais.v1` to it exactly as to relais on Deno. It runs in " +
    "the idle scenario and in the fan-out (REALTIME only), beside Socket.IO on the same Node.js.",
    "- **bare** (`bench/peers/bare_ws.ts`) is the ceiling: `Deno.serve` and " +
    "`Deno.upgradeWebSocket`, relais's frames (`hello` → `welcome`, `event {seq, envelope}`), " +
    "no auth, no storage, one frame encoded once per broadcast. **bare on Node** " +
    "(`bench/peers/socketio/bare.mjs`) is the same on Node: `node:http` and a `ws` " +
    "`WebSocketServer` (the package `@hono/node-ws` and Socket.IO send with), the ceiling of " +
    "relais on Node in the fan-out (REALTIME only).",
    "- **Hono on Node without relais** (`bench/peers/hono_node.ts`, bundled for Node at the " +
    "start of the run) is relais's Node stack alone: `@hono/node-server` and `@hono/node-ws` " +
    "wired as relais's Node entry wires them, a `hello` answered with a fixed `welcome`. It " +
    "runs in the idle scenario only: the floor of relais on Node's memory per user.",
    "- **Socket.IO** (`bench/peers/socketio/server.mjs`) runs with `node` as deployed: a " +
    "`node:http` server and `new Server(http)` with default settings, broadcasting with " +
    "`io.emit('event', frame)` (encoded once by Socket.IO). Clients use socket.io-client with " +
    "its `WebSocket` transport (no polling), which sits on the same built-in WebSocket the " +
    "other clients use; the `auth` token is sent but not verified, as with the bare peer.",
    "- Every event carries the same client envelope (metadata and a small payload with a tag " +
    "and the send time); relais gets it with its audience through `POST /v1/events`, the peers " +
    "through `POST /broadcast`. Every client parses every frame. Times come from one clock " +
    "(`performance.timeOrigin + performance.now()` in every process). Ids are the " +
    "platform's kind (`bench/_ids.ts`): events have time-ordered UUIDs (version 7), users " +
    "UUID-shaped ids after their group's name (`fan-…`), so that an audience is in no key order. " +
    "A USER audience lists its targets in id order, as a backend's query returns them, not in " +
    "the order the clients connected (the order of the users' state in relais's memory).",
    "- Idle RSS is `VmRSS` of `/proc/PID/status` of the server process, read after start-up and " +
    "again after all users connected and settled, divided by the users connected; relais's " +
    "figure includes each user's actor and session (the user-actor count is checked on " +
    "`/metrics`). Each run starts a fresh relais, then a fresh relais on Node, then a fresh " +
    "Hono on Node without relais; relais's last run goes on connecting up to the largest " +
    "size. In the last run a fresh bare server is measured too, and relais and it are read " +
    "again once left alone after their connects (the settled reading: by then V8's memory " +
    "reducer has given back what the connects left behind, as it would on a server in " +
    "production; the idle target uses it when both have one, and gives the reading 3 s " +
    "after the connects beside it). The other peers' memory is read on the fan-out servers.",
    "- Fan-out: the servers run side by side with the same number of clients each; in each " +
    `run every peer sends ${profile.fanoutReps} events one after the other (each waits until ` +
    "every client has the previous one), the peers taking turns in a rotating order. " +
    "Deliveries/s = deliveries ÷ (first publish → last receipt). Three kinds of event on " +
    `relais: ${kindSizes(profile)}. ` +
    "Before any user connects, relais's users are put in one institution through the " +
    "directory, and in one structure per SYSTEM size holding exactly the users connected at " +
    "that size. The peers broadcast the same client envelope for every kind. One untimed " +
    "event per peer warms each kind and size up. After its turn, each server is left to " +
    "finish deferred work (relais records deliveries and writes durable items in the " +
    "background) until it uses under 5 % of a core (at most 5 s, 20 s after NOTIFICATION), " +
    "so turns do not overlap; server CPU per delivery comes from `/proc/PID/stat` and " +
    "includes that work.",
    "- Latency: an open-loop publisher (`bench/publisher.ts`) sends at the asked rate for " +
    `${profile.latencyMs / 1000} s per rate, each REALTIME event to one user in turn, ` +
    `over at most ${CONNECTIONS} requests at a time (a backend's HTTP pool); ` +
    "publish→receive is receipt time − the time the event was due, carried in the payload, " +
    "so time spent waiting for a free connection counts (no coordinated omission). The " +
    "same users, publisher and rates then run against the bare WebSocket server, which " +
    "answers `POST /v1/events` at once and sends the event to the socket whose `hello` " +
    "named the user: the clients' and the machine's share of every figure.",
    "- Sharing servers to stay within the time budget: the audience scenario runs on the " +
    "fan-out scenario's relais (its users were put in one institution before they connected) " +
    "after the fan-out runs; the reconnect storms run on the latency scenario's relais and " +
    "users, whose clients have checked every seq of their streams since they connected.",
    "- relais's abuse limits stay on but are raised out of the way (every client here comes " +
    "from 127.0.0.1 and one service key): `RELAIS_RATE_CONNECTS`, `RELAIS_RATE_EVENTS`, " +
    "`RELAIS_RATE_MESSAGES`, `RELAIS_RATE_CONVERSATIONS` = 100000000/1s, " +
    "`RELAIS_PUSH_BUDGET=100000`, and `RELAIS_RATE_LIMITER=memory` (the KV limiter " +
    "serialises every hit of one key, here one IP and one key for everything).",
    "",
    "## 1. Idle users",
    "",
    ...figure("bench-idle.svg"),
    idleSection(results.idle, results.fanout, machine, input.maxIdleSize),
    "",
    "## 2. Fan-out",
    "",
    ...figure("bench-fanout.svg"),
    fanoutSection(results.fanout),
    "",
    "## 3. Latency",
    "",
    ...figure("bench-latency.svg"),
    latencySection(results.latency, machine.kvCommitsPerSecond),
    "",
    "## 4. Audience",
    "",
    audienceSection(results.audience),
    "",
    "## 5. Chat",
    "",
    chatSection(results.chat, machine.kvCommitsPerSecond),
    "",
    "## 6. Reconnect storm",
    "",
    stormSection(results.storm),
    "",
    "## 7. Change-data ingest",
    "",
    ingestSection(results.ingest),
    "",
    "## 8. Soak (retention)",
    "",
    soakSection(results.soak),
    "",
    "## 9. Cluster",
    "",
    clusterSection(results.cluster),
    "",
    "## Reproduce",
    "",
    "```sh",
    "deno task bench            # full run, under 18 minutes, writes docs/BENCHMARKS.md and docs/benchmarks.json",
    "deno task bench -- --quick # small sizes, one run, about a minute, writes data/bench-quick/",
    "deno task bench -- --only fanout,latency --runs 5",
    "```",
    "",
    "The Socket.IO peer is installed from `bench/peers/socketio/package-lock.json` with " +
    "`npm ci` on the first run. Run on a quiet machine: the load generators share its cores " +
    "with the server, so any other work moves every figure.",
    "",
  ].join("\n");
  await Deno.writeTextFile(mdPath, md);
  // The project's formatting options without its excludes, which cover `data/` (where a
  // quick run writes) and the JSON (written by `JSON.stringify` already).
  await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", "--no-config", "--line-width=100", "--prose-wrap=preserve", mdPath],
    stdout: "null",
    stderr: "inherit",
  }).output().catch(() => {});
  return [mdPath, jsonPath, ...drawn.map((c) => `${input.outDir}/${c.file}`)];
}
