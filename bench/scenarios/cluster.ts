/**
 * Scenario 9, cluster: relais in cluster mode (`RELAIS_CLUSTER=redis`) against Socket.IO
 * scaled the way Socket.IO recommends (the Redis Streams adapter), three nodes each, every
 * trio on a fresh Redis of its own (`redis-server` on a loopback port, data in a temporary
 * folder, no persistence). Each node listens on its own loopback address (127.0.0.1,
 * 127.0.0.2, 127.0.0.3), so the clients of one node never compete for ephemeral ports
 * with those of another.
 *
 * 1. Fan-out across nodes: the same users spread round-robin over the three nodes of each
 *    peer (user `i` on node `i mod 3`); each event (REALTIME to the list of users on
 *    relais, `io.emit` on Socket.IO) is published on the first node and must reach every
 *    user on every node. Deliveries/s and p99 publish → receive, the peers taking turns in
 *    a rotating order as in the fan-out scenario.
 * 2. Idle users: a fresh relais trio (on a fresh Redis) gets as many users as asked,
 *    connected in steps (round-robin) while the time allows; RSS per user on each node;
 *    then one REALTIME event to all of them, published on the first node, counting who
 *    received it.
 *
 * The load generators are the bench's own processes (each below its open-file limit); a
 * client cannot pick its source address (Deno's WebSocket), so the nodes' distinct
 * addresses are what keeps each node's ephemeral-port range whole.
 */

import {
  closeAll,
  connectAll,
  type ConnectResult,
  type Context,
  expectAll,
  isRelais,
  type Peer,
  request,
  samplesAll,
  type Server,
  sleep,
} from "../_context.ts";
import { userId } from "../_ids.ts";
import { type Child, quiesce, readCpuSeconds, spawnChild, waitForLine } from "../_procs.ts";
import { median, percentiles, round, type TurnFigures, turnFigures } from "../_stats.ts";
import { turnOrder } from "./fanout.ts";
import { openFileLimit } from "./idle.ts";
import { freePort } from "../../src/cluster/dev/loopback.ts";

/** Sizes and time of the scenario in one profile. */
export interface ClusterSizes {
  /** Users connected to each trio for the cross-node fan-out. */
  users: number;
  /** Events per turn of a peer in each run. */
  reps: number;
  /** Idle users asked for over the relais trio. */
  idleUsers: number;
  /** Connect steps of the idle part (the time left is checked before each). */
  idleSteps: number;
  /** How long the publish to every idle user may take (kept free for it). */
  publishMs: number;
  /** The time kept, after the fan-out part, for the idle part. */
  idleMs: number;
  /** The whole scenario's time budget. */
  budgetMs: number;
}

/** The full profile's sizes. */
export const CLUSTER_FULL: ClusterSizes = {
  users: 10_000,
  reps: 2,
  idleUsers: 50_000,
  idleSteps: 8,
  publishMs: 40_000,
  idleMs: 105_000,
  budgetMs: 180_000,
};

/** The quick profile's sizes. */
export const CLUSTER_QUICK: ClusterSizes = {
  users: 1000,
  reps: 2,
  idleUsers: 3000,
  idleSteps: 2,
  publishMs: 15_000,
  idleMs: 30_000,
  budgetMs: 75_000,
};

/** How many nodes each peer runs. */
const NODES = 3;
/** The peers compared across nodes. */
const PEERS: Peer[] = ["relais", "socketio"];
/** Sockets a process keeps free under its open-file limit (files, pipes, Redis, HTTP). */
const FD_HEADROOM = 1000;

/** A Redis started for one trio. */
interface TestRedis {
  url: string;
  child: Child;
  stop(): Promise<void>;
}

/** One turn of a peer in one run of the cross-node fan-out. */
export interface ClusterRun extends TurnFigures {
  run: number;
  peer: Peer;
  size: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU of the three nodes per delivery, deferred work included. */
  nodesCpuMicrosPerDelivery: number;
  /** CPU of the trio's Redis per delivery. */
  redisCpuMicrosPerDelivery: number;
  timedOut: boolean;
  /** relais's own count of an event some clients never got (its status endpoint). */
  counted?: { targeted: unknown; delivered: unknown }[];
}

/** Starts `redis-server` on a free loopback port, its folder in the run's temporary one. */
async function startRedis(ctx: Context, name: string): Promise<TestRedis> {
  const dir = await Deno.makeTempDir({ dir: ctx.tmp, prefix: `redis-${name}-` });
  const port = freePort();
  let child: Child;
  try {
    child = await spawnChild(`redis-${name}`, "redis-server", [
      "--bind",
      "127.0.0.1",
      "--port",
      String(port),
      "--dir",
      dir,
      "--save",
      "",
      "--appendonly",
      "no",
    ]);
  } catch (error) {
    throw new Error(`Cannot start "redis-server" (${(error as Error).message})`);
  }
  await waitForLine(child, /Ready to accept connections/, 20_000);
  return { url: `redis://127.0.0.1:${port}`, child, stop: () => child.stop() };
}

/** The loopback address of node `k` (from 0). */
const hostOf = (k: number) => `127.0.0.${k + 1}`;

/** Starts a trio of `peer` on `redis` (relais: one prefix, distinct node ids). */
async function startTrio(ctx: Context, peer: Peer, redis: TestRedis): Promise<Server[]> {
  const prefix = `bench-${crypto.randomUUID().slice(0, 8)}`;
  return await Promise.all(Array.from({ length: NODES }, (_, k) =>
    ctx.startServer(
      peer,
      peer === "relais"
        ? {
          HOST: hostOf(k),
          RELAIS_CLUSTER: "redis",
          REDIS_URL: redis.url,
          RELAIS_REDIS_PREFIX: prefix,
          RELAIS_NODE_ID: `bench-node-${k + 1}`,
        }
        : { HOST: hostOf(k), REDIS_URL: redis.url },
    )));
}

/** Users `from..to` of group `prefix` (`userId`) that go to node `k` (round-robin: user `i` on node `i mod 3`). */
function usersOfNode(prefix: string, from: number, to: number, k: number): string[] {
  const out: string[] = [];
  for (let i = from; i < to; i++) if (i % NODES === k) out.push(userId(prefix, i));
  return out;
}

/** Connects users `from..to` of group `prefix` (`userId`) round-robin over `nodes`; the result per node. */
async function connectRoundRobin(
  ctx: Context,
  args: { group: string; peer: Peer; nodes: Server[]; prefix: string; from: number; to: number },
): Promise<ConnectResult[]> {
  return await Promise.all(args.nodes.map((node, k) =>
    connectAll(ctx, {
      group: args.group,
      peer: args.peer,
      url: node.connectUrl,
      users: usersOfNode(args.prefix, args.from, args.to, k),
      concurrency: 32,
      collect: true,
    })
  ));
}

/** Sums the per-node connect results. */
function total(results: ConnectResult[]) {
  const started = Math.min(...results.map((r) => r.started));
  const ms = Math.max(...results.map((r) => r.started + r.ms)) - started;
  const connected = results.reduce((s, r) => s + r.connected, 0);
  return {
    connected,
    failed: results.reduce((s, r) => s + r.failed, 0),
    ms: round(ms),
    connectsPerSecond: round((connected * 1000) / ms),
    firstError: results.find((r) => r.firstError)?.firstError,
  };
}

/** The CPU seconds of every process in `pids`. */
async function cpuOf(pids: number[]): Promise<number[]> {
  return await Promise.all(pids.map((pid) => readCpuSeconds(pid)));
}

const sum = (values: number[]) => values.reduce((s, v) => s + v, 0);

/** One event published on `node` to users `0..size` of group `prefix` (`userId`), awaited on every client. */
async function publishAndWait(
  ctx: Context,
  args: {
    peer: Peer;
    node: Server;
    group: string;
    prefix: string;
    size: number;
    tag: string;
    timeoutMs: number;
  },
) {
  const pub = await ctx.publisher.call("publish", {
    peer: args.peer,
    url: args.node.origin,
    tag: args.tag,
    type: "REALTIME",
    users: { prefix: args.prefix, from: 0, to: args.size },
  }, 120_000);
  if (pub.status !== 202) {
    throw new Error(`${args.peer} refused the publish: ${pub.status} ${pub.body ?? ""}`);
  }
  const got = await expectAll(ctx, { group: args.group, tag: args.tag, timeoutMs: args.timeoutMs });
  // When some never came: how many relais counts as delivered (its event status).
  let delivered: { targeted: unknown; delivered: unknown } | undefined;
  if (got.timedOut && isRelais(args.peer)) {
    const status = await request(ctx, args.node.origin, `/v1/events/${pub.id}`).catch(() => null);
    if (status) delivered = { targeted: status.body.targeted, delivered: status.body.delivered };
  }
  return { t: pub.t as number, answerMs: pub.ms as number, ...got, delivered };
}

const GROUP_RELAIS = "cluster-relais";
const GROUP_SOCKETIO = "cluster-socketio";
/** The idle users (on the second relais trio). */
const GROUP_IDLE = "cluster-idle";
const groupOf = (peer: Peer) => peer === "relais" ? GROUP_RELAIS : GROUP_SOCKETIO;

/** Both trios, their Redis, and what the relais trio holds. */
interface Trios {
  redis: Map<Peer, TestRedis>;
  nodes: Map<Peer, Server[]>;
  /** Each node's RSS before any user connected, by peer. */
  startRss: Map<Peer, number[]>;
  /** Users `clu…` connected to each relais node (round-robin from `clu0`). */
  relaisPerNode: number[];
  /** The last measured connect rate of the relais trio (connects/s over the three). */
  relaisConnectRate: number;
}

/** Connects `sizes.users` users round-robin to each trio; their RSS per user per node. */
async function connectFanoutUsers(ctx: Context, sizes: ClusterSizes, trios: Trios) {
  const size = sizes.users;
  const connects: Record<string, unknown>[] = [];
  const rss: { peer: Peer; node: number; users: number; bytesPerUser: number }[] = [];
  for (const peer of PEERS) {
    const nodes = trios.nodes.get(peer)!;
    ctx.log(`cluster: connecting ${size} users round-robin to 3 ${peer} nodes`);
    const results = await connectRoundRobin(ctx, {
      group: groupOf(peer),
      peer,
      nodes,
      prefix: "clu",
      from: 0,
      to: size,
    });
    const all = total(results);
    connects.push({ peer, users: size, ...all });
    if (all.failed > 0) {
      throw new Error(`${all.failed} connections to ${peer} failed: ${all.firstError}`);
    }
    if (peer === "relais") {
      results.forEach((r, k) => trios.relaisPerNode[k] = r.connected);
      trios.relaisConnectRate = all.connectsPerSecond;
    }
  }
  await sleep(ctx.profile.quick ? 1000 : 2000);
  for (const peer of PEERS) {
    const nodes = trios.nodes.get(peer)!;
    const after = await Promise.all(nodes.map((n) => n.rss()));
    const before = trios.startRss.get(peer)!;
    nodes.forEach((_, k) => {
      const users = peer === "relais" ? trios.relaisPerNode[k] : usersOfNode("", 0, size, k).length;
      rss.push({
        peer,
        node: k + 1,
        users,
        bytesPerUser: Math.round((after[k] - before[k]) / Math.max(1, users)),
      });
    });
  }
  return { connects, rss };
}

/**
 * The cross-node fan-out, relais against Socket.IO, on the users `connectFanoutUsers`
 * connected: a warm-up event per peer, then the runs, while the time allows.
 */
async function measureFanout(ctx: Context, sizes: ClusterSizes, until: number, trios: Trios) {
  const size = sizes.users;
  const runs: ClusterRun[] = [];
  /** One event to every user of `peer`'s trio, published on its first node. */
  const publishTo = (peer: Peer, tag: string) =>
    publishAndWait(ctx, {
      peer,
      node: trios.nodes.get(peer)![0],
      group: groupOf(peer),
      prefix: "clu",
      size,
      tag,
      timeoutMs: 30_000,
    });
  // One untimed event per peer: JIT, bus readers and buffers warm up.
  for (const peer of PEERS) {
    const nodes = trios.nodes.get(peer)!;
    await publishTo(peer, `clw-${peer}-0`);
    await Promise.all(nodes.map((n) => quiesce(n.child.pid, 3000)));
    await samplesAll(ctx, groupOf(peer), `clw-${peer}-`);
  }
  let runMs = 0;
  for (let run = 1; run <= ctx.profile.runs; run++) {
    if (run > 1 && Date.now() + runMs > until) {
      ctx.log(`cluster: fan-out stopped after ${run - 1} run(s), its time is up`);
      break;
    }
    const runStarted = Date.now();
    for (const peer of turnOrder(PEERS, run)) {
      const nodes = trios.nodes.get(peer)!;
      const pids = [...nodes.map((n) => n.child.pid), trios.redis.get(peer)!.child.pid];
      ctx.log(`cluster: run ${run}, ${peer}, ${size} users × ${sizes.reps} events over 3 nodes`);
      const cpu0 = await cpuOf(pids);
      const events = [];
      for (let i = 0; i < sizes.reps; i++) {
        events.push(await publishTo(peer, `cl-${peer}-${run}-${i}`));
      }
      // Deferred work (relais records deliveries after sending) is the turn's cost too.
      await Promise.all(nodes.map((n) => quiesce(n.child.pid, 3000)));
      const cpu = (await cpuOf(pids)).map((c, i) => c - cpu0[i]);
      const latency = percentiles(await samplesAll(ctx, groupOf(peer), `cl-${peer}-${run}-`));
      const figures = turnFigures(events, size);
      const { deliveries } = figures;
      runs.push({
        run,
        peer,
        size,
        ...figures,
        p50Ms: round(latency.p50),
        p99Ms: round(latency.p99),
        nodesCpuMicrosPerDelivery: round((sum(cpu.slice(0, NODES)) * 1e6) / deliveries),
        redisCpuMicrosPerDelivery: round((cpu[NODES] * 1e6) / deliveries),
        timedOut: events.some((e) => e.timedOut),
        ...(events.some((e) => e.delivered)
          ? { counted: events.flatMap((e) => e.delivered ? [e.delivered] : []) }
          : {}),
      });
    }
    runMs = Date.now() - runStarted;
  }
  return { runs, summary: summarizeCluster(runs) };
}

/**
 * Medians by peer over the runs, and the ratios relais ÷ Socket.IO (deliveries/s) and
 * Socket.IO ÷ relais (p99), each computed run by run, then their median.
 */
export function summarizeCluster(runs: ClusterRun[]) {
  const of = (peer: Peer) => runs.filter((r) => r.peer === peer);
  const per = (f: (r: ClusterRun) => number) =>
    Object.fromEntries(PEERS.map((p) => [p, round(median(of(p).map(f)))]));
  const ratio = (f: (a: ClusterRun, b: ClusterRun) => number) => {
    const values = [];
    for (const a of of("relais")) {
      const b = of("socketio").find((r) => r.run === a.run);
      if (b) values.push(f(a, b));
    }
    return round(median(values));
  };
  return {
    runs: new Set(runs.map((r) => r.run)).size,
    deliveriesPerSecond: per((r) => r.deliveriesPerSecond),
    p50Ms: per((r) => r.p50Ms),
    p99Ms: per((r) => r.p99Ms),
    lastDeliveryMs: per((r) => r.lastDeliveryMs),
    nodesCpuMicrosPerDelivery: per((r) => r.nodesCpuMicrosPerDelivery),
    redisCpuMicrosPerDelivery: per((r) => r.redisCpuMicrosPerDelivery),
    /** relais's deliveries/s ÷ Socket.IO's. */
    ratio: ratio((a, b) => a.deliveriesPerSecond / b.deliveriesPerSecond),
    /** Socket.IO's p99 ÷ relais's: above 1 when relais's is shorter. */
    p99Ratio: ratio((a, b) => b.p99Ms / a.p99Ms),
    lost: runs.reduce((s, r) => s + r.expected - r.deliveries, 0),
  };
}

/** The idle users a relais trio can be given here, and what limits it below `asked`. */
async function idleCapacity(ctx: Context, asked: number) {
  const fdLimit = await openFileLimit();
  const perProcess = Math.max(0, fdLimit - FD_HEADROOM);
  const byLoadgens = perProcess * ctx.loadgens.length;
  const byNodes = perProcess * NODES;
  const capacity = Math.min(asked, byLoadgens, byNodes);
  let limitedBy: string | undefined;
  if (capacity < asked) {
    limitedBy = byLoadgens <= byNodes
      ? `the open-file limit ${fdLimit} × ${ctx.loadgens.length} load generators`
      : `the open-file limit ${fdLimit} × ${NODES} nodes`;
  }
  return { fdLimit, capacity, limitedBy };
}

/**
 * Idle users over a fresh relais trio: up to `sizes.idleUsers` while the time allows, RSS
 * per user on each node, then one event to all of them. `rate` (connects/s over the three
 * nodes, from the fan-out part) sizes the first step's time.
 */
async function measureIdle(
  ctx: Context,
  sizes: ClusterSizes,
  until: number,
  trios: Trios,
  rate: number,
) {
  const { fdLimit, capacity, limitedBy } = await idleCapacity(ctx, sizes.idleUsers);
  const nodes = trios.nodes.get("relais")!;
  const start = trios.startRss.get("relais")!;
  const perNode = Array.from({ length: NODES }, () => 0);
  const steps: Record<string, unknown>[] = [];
  let stoppedBy = limitedBy;
  let reached = 0;
  let failed = 0;
  let connectMs = 0;
  let firstError: string | undefined;
  const step = Math.ceil(capacity / sizes.idleSteps);
  while (reached < capacity) {
    const to = Math.min(capacity, reached + step);
    // A step that would not end before the publish's reserve is not started.
    const expectedMs = Number.isFinite(rate) && rate > 0 ? ((to - reached) * 1000) / rate : 0;
    if (Date.now() + expectedMs * 1.2 > until - sizes.publishMs) {
      stoppedBy = `the scenario's time budget (${sizes.budgetMs / 1000} s; ${
        fmt(rate)
      } connects/s over the three nodes in the last step)`;
      break;
    }
    ctx.log(`cluster: idle, connecting ${reached}..${to} users round-robin to 3 relais nodes`);
    const results = await connectRoundRobin(ctx, {
      group: GROUP_IDLE,
      peer: "relais",
      nodes,
      prefix: "cli",
      from: reached,
      to,
    });
    const t = total(results);
    steps.push({ from: reached, to, ...t });
    results.forEach((r, k) => perNode[k] += r.connected);
    connectMs += t.ms;
    failed += t.failed;
    firstError ??= t.firstError;
    rate = t.connectsPerSecond;
    reached = to;
    if (t.failed > 0) {
      stoppedBy = `connections failed: ${t.firstError}`;
      break;
    }
  }
  const connected = sum(perNode);
  await sleep(ctx.profile.quick ? 1500 : 3000);
  const after = await Promise.all(nodes.map((n) => n.rss()));
  const perNodeRss = nodes.map((_, k) => ({
    node: k + 1,
    users: perNode[k],
    rssStartBytes: start[k],
    rssAfterBytes: after[k],
    bytesPerUser: Math.round((after[k] - start[k]) / Math.max(1, perNode[k])),
  }));
  ctx.log(`cluster: idle, one REALTIME event to ${connected} users over 3 nodes`);
  const timeoutMs = Math.max(5000, Math.min(sizes.publishMs, until - Date.now()));
  const got = await publishAndWait(ctx, {
    peer: "relais",
    node: nodes[0],
    group: GROUP_IDLE,
    prefix: "cli",
    size: reached,
    tag: "cli-all-0",
    timeoutMs,
  });
  const latency = percentiles(await samplesAll(ctx, GROUP_IDLE, "cli-all-"));
  return {
    asked: sizes.idleUsers,
    fdLimit,
    reached: connected,
    failed,
    firstError,
    stoppedBy: connected < sizes.idleUsers ? stoppedBy : undefined,
    connectMs: round(connectMs),
    connectsPerSecond: round((connected * 1000) / connectMs),
    steps,
    nodes: perNodeRss,
    bytesPerUser: round(median(perNodeRss.map((n) => n.bytesPerUser))),
    publish: {
      expected: got.expected,
      received: got.count,
      timeoutMs,
      answerMs: round(got.answerMs),
      lastDeliveryMs: round(got.last - got.t),
      p50Ms: round(latency.p50),
      p99Ms: round(latency.p99),
      timedOut: got.timedOut,
      ...(got.delivered ? { delivered: got.delivered } : {}),
    },
  };
}

/** Starts a trio of each of `peers`, each on its own fresh Redis, into `trios`. */
async function startTrios(ctx: Context, peers: Peer[], trios: Trios) {
  for (const peer of peers) {
    trios.redis.set(peer, await startRedis(ctx, `${peer}-${trios.redis.size + 1}`));
    trios.nodes.set(peer, await startTrio(ctx, peer, trios.redis.get(peer)!));
  }
  await sleep(1500);
  for (const peer of peers) {
    trios.startRss.set(peer, await Promise.all(trios.nodes.get(peer)!.map((n) => n.rss())));
  }
}

/** Stops every trio and Redis of `trios`, then closes their clients. */
async function stopTrios(ctx: Context, trios: Trios, groups: string[]) {
  // Servers first: their clients then close at once instead of one handshake each.
  await Promise.all([...trios.nodes.values()].flat().map((s) => s.stop()));
  await Promise.all([...trios.redis.values()].map((r) => r.stop()));
  for (const group of groups) await closeAll(ctx, group).catch(() => {});
}

const emptyTrios = (): Trios => ({
  redis: new Map(),
  nodes: new Map(),
  startRss: new Map(),
  relaisPerNode: Array.from({ length: NODES }, () => 0),
  relaisConnectRate: NaN,
});

/**
 * Runs the cluster scenario: the cross-node fan-out, relais against Socket.IO; then idle
 * users over a fresh relais trio (RSS, one event to all). Each part reports its own
 * failure; the scenario keeps within `sizes.budgetMs` (and the harness's deadline).
 */
export async function runCluster(ctx: Context, sizes: ClusterSizes) {
  const started = Date.now();
  const until = started + Math.min(sizes.budgetMs, ctx.left() - 10_000);
  const message = (error: unknown) => error instanceof Error ? error.message : String(error);
  let fanout: Record<string, unknown> = { users: sizes.users };
  let rate = NaN;
  const first = emptyTrios();
  try {
    await startTrios(ctx, PEERS, first);
    fanout = { ...fanout, ...(await connectFanoutUsers(ctx, sizes, first)) };
    rate = first.relaisConnectRate;
    fanout = { ...fanout, ...(await measureFanout(ctx, sizes, until - sizes.idleMs, first)) };
  } catch (error) {
    ctx.log(`cluster: fan-out failed: ${message(error)}`);
    fanout = { ...fanout, error: message(error) };
  } finally {
    await stopTrios(ctx, first, [GROUP_RELAIS, GROUP_SOCKETIO]);
  }
  let idle: Record<string, unknown>;
  const second = emptyTrios();
  try {
    await startTrios(ctx, ["relais"], second);
    idle = await measureIdle(ctx, sizes, until, second, rate);
  } catch (error) {
    ctx.log(`cluster: idle failed: ${message(error)}`);
    idle = { error: message(error) };
  } finally {
    await stopTrios(ctx, second, [GROUP_IDLE]);
  }
  return { nodes: NODES, sizes, fanout, idle };
}

// deno-lint-ignore no-explicit-any
type Any = any;

const fmt = (n: unknown): string => {
  if (typeof n !== "number" || !Number.isFinite(n)) return "–";
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString("en-US");
  return String(Number(n.toPrecision(3)));
};
const kb = (bytes: unknown) => typeof bytes === "number" ? fmt(bytes / 1024) : "–";
const row = (cells: string[]) => `| ${cells.join(" | ")} |`;
const table = (head: string[], rows: string[][]) =>
  [row(head), row(head.map(() => "---")), ...rows.map(row)].join("\n");

/** The report's section on the cluster scenario (its `benchmarks.json` result). */
export function clusterSection(r: Any): string {
  if (!r) return "Not run.";
  if (r.error) return `Failed: ${r.error}`;
  const out = [
    "Three relais nodes in cluster mode (`RELAIS_CLUSTER=redis`, one `REDIS_URL` and " +
    "`RELAIS_REDIS_PREFIX`, distinct `RELAIS_NODE_ID`s) against three Socket.IO nodes with " +
    "the Redis Streams adapter (`@socket.io/redis-streams-adapter`, default options), each " +
    "trio on a fresh `redis-server` of its own on loopback (no persistence). Node k listens " +
    "on 127.0.0.k; user i connects to node i mod 3; every event is published on node 1. " +
    "Server CPU counts the three nodes (and, apart, their Redis) from `/proc/PID/stat`.",
    "",
  ];
  const f = r.fanout;
  if (!f || f.error) out.push(`Fan-out across nodes failed: ${f?.error ?? "not run"}`);
  else {
    const s = f.summary;
    const rss = (peer: string) =>
      (f.rss as Any[]).filter((x) => x.peer === peer).map((x) => kb(x.bytesPerUser)).join(" / ");
    out.push(
      `Fan-out across nodes: ${fmt(f.users)} users, ${fmt(r.sizes?.reps)} events per turn, ` +
        `${fmt(s.runs)} run(s); relais ÷ Socket.IO deliveries/s ${fmt(s.ratio)}×, ` +
        `Socket.IO's p99 ÷ relais's ${fmt(s.p99Ratio)}×, lost ${fmt(s.lost)}.`,
      "",
      table(
        [
          "peer (3 nodes)",
          "deliveries/s",
          "p50 publish → receive, ms",
          "p99 publish → receive, ms",
          "publish → last client, ms",
          "nodes CPU µs per delivery",
          "Redis CPU µs per delivery",
          "RSS per user, KB (node 1 / 2 / 3)",
        ],
        PEERS.map((p) => [
          p === "relais" ? "relais" : "Socket.IO",
          fmt(s.deliveriesPerSecond[p]),
          fmt(s.p50Ms[p]),
          fmt(s.p99Ms[p]),
          fmt(s.lastDeliveryMs[p]),
          fmt(s.nodesCpuMicrosPerDelivery[p]),
          fmt(s.redisCpuMicrosPerDelivery[p]),
          rss(p),
        ]),
      ),
    );
  }
  out.push("");
  const i = r.idle;
  if (!i || i.error) {
    out.push(`Idle users over three relais nodes failed: ${i?.error ?? "not run"}`);
  } else {
    out.push(
      `Idle users over a fresh trio of relais nodes: ${fmt(i.reached)} of ${fmt(i.asked)} ` +
        `connected (${fmt(i.connectsPerSecond)} connects/s over the three nodes, ` +
        `${fmt(i.failed)} failed)` + (i.stoppedBy ? `; stopped by ${i.stoppedBy}` : "") +
        `. One REALTIME event to all of them, published on node 1: ${fmt(i.publish.received)} ` +
        `of ${fmt(i.publish.expected)} received within ${fmt(i.publish.timeoutMs / 1000)} s, ` +
        `the last ${fmt(i.publish.lastDeliveryMs)} ms after the publish (p50 ` +
        `${fmt(i.publish.p50Ms)} ms, p99 ${fmt(i.publish.p99Ms)} ms; 202 after ` +
        `${fmt(i.publish.answerMs)} ms). RSS is read after start-up and after every user ` +
        "connected and settled, before the event.",
      "",
      table(
        ["node", "users", "RSS at start, MB", "RSS connected, MB", "RSS per user, KB"],
        (i.nodes as Any[]).map((n) => [
          String(n.node),
          fmt(n.users),
          fmt(n.rssStartBytes / 1024 / 1024),
          fmt(n.rssAfterBytes / 1024 / 1024),
          kb(n.bytesPerUser),
        ]),
      ),
    );
  }
  return out.join("\n");
}
