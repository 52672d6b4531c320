/**
 * What every scenario uses: the servers under test (started fresh, each in its own
 * process), the pool of load generators, the publisher, and progress output.
 */

import {
  type Child,
  cpuProfileDir,
  readRss,
  spawnChild,
  spawnWorker,
  waitForLine,
} from "./_procs.ts";
import type { WorkerClient } from "./_rpc.ts";
import { split } from "./_stats.ts";

/**
 * The servers compared: relais on Deno and on Node, the bare ceiling (on Deno, and on Node
 * with `ws`), the bare servers with one XState actor per socket (`bare-actor`, and on Node
 * `bare-node-actor`: the floor of the design's rule, every frame through its user's actor),
 * Socket.IO, and relais's Node stack without relais (`hono-node`, for the floor of relais on
 * Node's memory).
 */
export type Peer =
  | "relais"
  | "relais-node"
  | "bare"
  | "bare-actor"
  | "bare-node"
  | "bare-node-actor"
  | "hono-node"
  | "socketio";

/** Whether `peer` is relais (on either runtime): it speaks `relais.v1` and takes `/v1/events`. */
export function isRelais(peer: Peer): boolean {
  return peer === "relais" || peer === "relais-node";
}

/** The peers' names in the report. */
export const PEER_LABELS: Record<Peer, string> = {
  relais: "relais",
  "relais-node": "relais on Node",
  bare: "bare WebSocket",
  "bare-actor": "bare WebSocket + one actor per socket",
  "bare-node": "bare WebSocket on Node",
  "bare-node-actor": "bare WebSocket on Node + one actor per socket",
  "hono-node": "Hono on Node without relais",
  socketio: "Socket.IO",
};

/**
 * relais's Node entry for this run: its bundle, or why it cannot run. Beside it, when they
 * could be bundled, the Node stack's peer (`hono-node`) and the actor-step probe for Node.
 */
export type NodeEntry =
  | { bundle: string; node: string; honoNode?: string; probe?: string }
  | { unavailable: string };

/** A server under test. */
export interface Server {
  peer: Peer;
  /** `http://127.0.0.1:PORT`. */
  origin: string;
  /** What the load generators connect to for this peer. */
  connectUrl: string;
  child: Child;
  rss(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * What a fan-out event is on relais: REALTIME to the list of users, SYSTEM (no ack) to a
 * STRUCTURE holding exactly the connected users, or NOTIFICATION (durable) to the list.
 */
export type FanoutKind = "realtime" | "system" | "notification";

/** Sizes and durations of one profile (`--quick` or the full run). */
export interface Profile {
  quick: boolean;
  runs: number;
  loadgens: number;
  idleSizes: number[];
  /** The steps of connected users (ascending); each kind runs at some of them. */
  fanoutSizes: number[];
  /** The sizes (among `fanoutSizes`) each kind of fan-out event is measured at. */
  fanoutKinds: Record<FanoutKind, number[]>;
  fanoutReps: number;
  latencyUsers: number;
  latencyRates: number[];
  latencyMs: number;
  audienceUsers: number;
  chatConversations: number;
  chatMembers: number;
  chatMs: number;
  stormUsers: number;
  stormMissed: number;
  /** Users connected while the ingest drains a burst of `ingestChanges` changes. */
  ingestUsers: number;
  ingestChanges: number;
  budgetMs: number;
}

/** The shared state of a bench run. */
export interface Context {
  root: URL;
  rootPath: string;
  tmp: string;
  profile: Profile;
  jwtSecret: string;
  serviceKey: string;
  loadgens: WorkerClient[];
  publisher: WorkerClient;
  /** relais on Node: the bundle built at the start of the run, or why it is not run. */
  nodeEntry: NodeEntry;
  log(message: string): void;
  /** Milliseconds left before the harness's own deadline. */
  left(): number;
  startServer(peer: Peer, env?: Record<string, string>): Promise<Server>;
}

/** Aggregate of a connect across load generators. */
export interface ConnectResult {
  /** When the first load generator started connecting (shared clock). */
  started: number;
  connected: number;
  failed: number;
  ms: number;
  recoveredFalse: number;
  firstError?: string;
}

let serial = 0;

/** relais's rate limits and push budget, raised out of the bench's way (see the method). */
export const BENCH_LIMITS: Record<string, string> = {
  RELAIS_RATE_CONNECTS: "100000000/1s",
  RELAIS_RATE_EVENTS: "100000000/1s",
  RELAIS_RATE_MESSAGES: "100000000/1s",
  RELAIS_RATE_CONVERSATIONS: "100000000/1s",
  RELAIS_PUSH_BUDGET: "100000",
  RELAIS_RATE_LIMITER: "memory",
};

/** Reads `deno task start` and points its data folder at `dataDir`, so relais runs as deployed. */
async function relaisArgs(rootPath: string, dataDir: string): Promise<string[]> {
  const fallback = [
    "run",
    "--v8-flags=--no-allocation-site-pretenuring",
    "--allow-net",
    "--allow-env",
    "--allow-read=./data",
    "--allow-write=./data",
    "src/main.ts",
  ];
  let args = fallback;
  try {
    const config = JSON.parse(await Deno.readTextFile(`${rootPath}/deno.json`));
    const start = String(config.tasks?.start ?? "").trim().split(/\s+/);
    if (start[0] === "deno" && start[1] === "run") args = start.slice(1);
  } catch { /* fallback */ }
  const profiles = cpuProfileDir();
  if (profiles) args = [args[0], "--cpu-prof", `--cpu-prof-dir=${profiles}`, ...args.slice(1)];
  return args.map((a) => a.replaceAll("./data", dataDir));
}

/** The oldest Node.js major version relais's Node entry runs on. */
const NODE_MIN_MAJOR = 20;

/** The last few lines of a command's output, on one line, for a "not run" note. */
function tail(text: string, lines = 3): string {
  // deno-lint-ignore no-control-regex -- the colour codes `deno task` prints
  const plain = text.replace(/\x1b\[[0-9;]*m/g, "");
  return plain.split("\n").map((l) => l.trim()).filter(Boolean).slice(-lines).join(" / ");
}

/**
 * Makes relais's Node entry ready for the run: checks `node` (20 or later) and runs
 * `deno task build:node` (which rebuilds the bundle only when a source changed). Never
 * throws: when either is missing, the reason is returned and the peer is reported not run.
 */
export async function prepareNodeEntry(
  rootPath: string,
  options: { node?: string; timeoutSeconds?: number } = {},
): Promise<NodeEntry> {
  const node = options.node ?? "node";
  let version = "";
  try {
    const out = await new Deno.Command(node, {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
    })
      .output();
    version = new TextDecoder().decode(out.stdout).trim();
  } catch (error) {
    return { unavailable: `"${node}" cannot be run (${(error as Error).message})` };
  }
  const major = Number(/^v(\d+)\./.exec(version)?.[1]);
  if (!(major >= NODE_MIN_MAJOR)) {
    return {
      unavailable: `Node.js ${NODE_MIN_MAJOR} or later is needed, "${node}" is "${version}"`,
    };
  }
  const seconds = String(options.timeoutSeconds ?? 300);
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("timeout", {
      args: ["-s", "KILL", seconds, Deno.execPath(), "task", "build:node"],
      cwd: rootPath,
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    return { unavailable: `the Node build cannot be run (${(error as Error).message})` };
  }
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  if (!out.success) {
    const why = tail(decode(out.stderr)) || tail(decode(out.stdout)) || `exit ${out.code}`;
    return { unavailable: `\`deno task build:node\` failed: ${why}` };
  }
  const printed = decode(out.stdout).trim().split("\n").at(-1)?.trim() ?? "";
  const bundle = printed.startsWith("/") ? printed : `${rootPath}/dist/node/relais.mjs`;
  try {
    await Deno.stat(bundle);
  } catch {
    return { unavailable: `\`deno task build:node\` left no bundle at "${bundle}"` };
  }
  const [honoNode, probe] = await Promise.all([
    bundleForNode(rootPath, "bench/peers/hono_node.ts", seconds),
    bundleForNode(rootPath, "bench/actor_probe.ts", seconds),
  ]);
  return { bundle, node, ...(honoNode ? { honoNode } : {}), ...(probe ? { probe } : {}) };
}

/**
 * Bundles `source` (a path from the root) into one ES module for Node under `dist/bench/`
 * (`deno bundle --platform node`, as `deno task build:node` bundles relais). Answers its
 * path, or `undefined` when it could not be built (what needs it is then left out).
 */
async function bundleForNode(
  rootPath: string,
  source: string,
  seconds: string,
): Promise<string | undefined> {
  const out = `${rootPath}/dist/bench/${source.split("/").at(-1)!.replace(/\.ts$/, ".mjs")}`;
  try {
    const built = await new Deno.Command("timeout", {
      args: [
        "-s",
        "KILL",
        seconds,
        Deno.execPath(),
        "bundle",
        "--platform",
        "node",
        "--config",
        `${rootPath}/deno.json`,
        "-o",
        out,
        `${rootPath}/${source}`,
      ],
      cwd: rootPath,
      stdout: "null",
      stderr: "null",
    }).output();
    return built.success ? out : undefined;
  } catch {
    return undefined;
  }
}

/** relais's environment in the bench (both runtimes): as deployed, limits out of the way. */
function relaisEnv(
  ctx: Omit<Context, "startServer">,
  dataDir: string,
  env: Record<string, string>,
): Record<string, string> {
  return {
    HOST: "127.0.0.1",
    PORT: "0",
    RELAIS_ENV: "production",
    RELAIS_KV_PATH: `${dataDir}/relais.kv`,
    RELAIS_OUTBOX_DIR: `${dataDir}/outbox`,
    RELAIS_JWT_SECRET: ctx.jwtSecret,
    RELAIS_SERVICE_KEYS:
      `bench:${ctx.serviceKey}:events:publish+directory:write+conversations:write+admin`,
    RELAIS_LOG_LEVEL: "warning",
    // A USER audience of 10k ids is ~150 KB of JSON: above the default body limit.
    RELAIS_MAX_BODY_BYTES: String(8 * 1024 * 1024),
    // Abuse limits stay on (their cost is measured) but so high the bench never trips
    // them: every client here comes from one address, one key and a few senders.
    ...BENCH_LIMITS,
    ...env,
  };
}

/**
 * Starts a server of `peer` on a random loopback port and waits for its listening line.
 * `relais-node` throws the reason it is unavailable when its entry could not be prepared.
 */
export async function startServer(
  ctx: Omit<Context, "startServer">,
  peer: Peer,
  env: Record<string, string> = {},
): Promise<Server> {
  // Children inherit the harness's environment; these entries override it.
  const base = { HOST: "127.0.0.1", PORT: "0" };
  let child: Child;
  let pattern: RegExp;
  if (peer === "relais") {
    const dataDir = `${ctx.tmp}/relais-${++serial}`;
    await Deno.mkdir(dataDir, { recursive: true });
    const args = (await relaisArgs(ctx.rootPath, dataDir)).map((a) =>
      // A rules file elsewhere than the data folder is granted as `deno run` would need.
      env.RELAIS_INGEST_RULES && a.startsWith("--allow-read=")
        ? `${a},${env.RELAIS_INGEST_RULES}`
        : a
    );
    child = await spawnChild("relais", Deno.execPath(), args, {
      cwd: ctx.rootPath,
      env: relaisEnv(ctx, dataDir, env),
    });
    pattern = /relais listening on (http:\/\/\S+)/;
  } else if (peer === "relais-node") {
    const entry = ctx.nodeEntry;
    if ("unavailable" in entry) throw new Error(entry.unavailable);
    const dataDir = `${ctx.tmp}/relais-node-${++serial}`;
    await Deno.mkdir(dataDir, { recursive: true });
    // As `deno task start:node` runs it: `node --no-allocation-site-pretenuring
    // dist/node/relais.mjs`, from the checkout.
    const profiles = cpuProfileDir();
    const flags = ["--no-allocation-site-pretenuring"];
    if (profiles) flags.push("--cpu-prof", `--cpu-prof-dir=${profiles}`);
    child = await spawnChild("relais-node", entry.node, [...flags, entry.bundle], {
      cwd: ctx.rootPath,
      env: { NODE_ENV: "production", ...relaisEnv(ctx, dataDir, env) },
    });
    pattern = /relais listening on (http:\/\/\S+)/;
  } else if (peer === "bare" || peer === "bare-actor") {
    child = await spawnChild(peer, Deno.execPath(), [
      "run",
      "--allow-net",
      "--allow-env",
      "bench/peers/bare_ws.ts",
    ], {
      cwd: ctx.rootPath,
      env: { ...base, BARE_ACTORS: peer === "bare-actor" ? "1" : "0", ...env },
    });
    pattern = new RegExp(`${peer} listening on (http:\\/\\/\\S+)`);
  } else if (peer === "bare-node" || peer === "bare-node-actor" || peer === "hono-node") {
    const entry = ctx.nodeEntry;
    if ("unavailable" in entry) throw new Error(entry.unavailable);
    const script = peer === "hono-node" ? entry.honoNode : "bench/peers/socketio/bare.mjs";
    if (!script) throw new Error("bench/peers/hono_node.ts could not be bundled for Node");
    const actors = peer === "bare-node-actor" ? "1" : "0";
    child = await spawnChild(peer, entry.node, [script], {
      cwd: ctx.rootPath,
      env: { ...base, NODE_ENV: "production", BARE_ACTORS: actors, ...env },
    });
    pattern = new RegExp(`${peer} listening on (http:\\/\\/\\S+)`);
  } else {
    child = await spawnChild("socketio", "node", ["bench/peers/socketio/server.mjs"], {
      cwd: ctx.rootPath,
      env: { ...base, NODE_ENV: "production", ...env },
    });
    pattern = /socketio listening on (http:\/\/\S+)/;
  }
  const origin = (await waitForLine(child, pattern, 60_000))[1];
  const ws = origin.replace("http://", "ws://");
  return {
    peer,
    origin,
    // relais on either runtime and the bare peers serve the same `relais.v1` endpoint.
    connectUrl: peer === "socketio" ? origin : `${ws}/v1/ws`,
    child,
    rss: () => readRss(child.pid),
    stop: () => child.stop(),
  };
}

/** Starts `count` load generators and the publisher. */
export async function startWorkers(
  rootPath: string,
  count: number,
  env: Record<string, string>,
): Promise<{ loadgens: WorkerClient[]; publisher: WorkerClient }> {
  const common = { ...env };
  const deno = Deno.execPath();
  const flags = [
    "run",
    "--allow-net",
    "--allow-env",
    "--allow-read",
    `--config=${rootPath}/deno.json`,
  ];
  const loadgens = await Promise.all(
    Array.from(
      { length: count },
      (_, i) =>
        spawnWorker(`loadgen-${i + 1}`, deno, [...flags, `${rootPath}/bench/loadgen.ts`], common)
          .then((w) => w.rpc),
    ),
  );
  const publisher = (await spawnWorker(
    "publisher",
    deno,
    [...flags, `${rootPath}/bench/publisher.ts`],
    common,
  )).rpc;
  return { loadgens, publisher };
}

/**
 * Connects users `from..to` of group `prefix` (`userId`) (or the explicit list `users`) spread over every load
 * generator, in parallel.
 */
export async function connectAll(
  ctx: Context,
  args: {
    group: string;
    peer: Peer;
    url: string;
    concurrency?: number;
    resume?: boolean;
    collect?: boolean;
    trackSeq?: boolean;
    timeoutMs?: number;
  } & ({ prefix: string; from: number; to: number } | { users: string[] }),
): Promise<ConnectResult> {
  const n = ctx.loadgens.length;
  const shares = "users" in args
    ? split(args.users.length, n).map(([from, to]) => args.users.slice(from, to))
    : split(args.to - args.from, n, args.from).map(([from, to]) => ({
      prefix: args.prefix,
      from,
      to,
    }));
  const timeoutMs = args.timeoutMs ?? 60_000;
  const results = await Promise.all(ctx.loadgens.map((lg, i) =>
    lg.call("connect", {
      group: args.group,
      peer: args.peer,
      url: args.url,
      users: shares[i],
      concurrency: args.concurrency ?? 64,
      timeoutMs,
      resume: args.resume,
      collect: args.collect,
      trackSeq: args.trackSeq,
    }, timeoutMs * 4 + 60_000)
  ));
  const started = Math.min(...results.map((r) => r.started));
  const lastAt = Math.max(...results.map((r) => r.lastAt));
  return {
    started,
    connected: results.reduce((s, r) => s + r.connected, 0),
    failed: results.reduce((s, r) => s + r.failed, 0),
    recoveredFalse: results.reduce((s, r) => s + r.recoveredFalse, 0),
    ms: lastAt - started,
    firstError: results.find((r) => r.firstError)?.firstError,
  };
}

/** Waits until every client of the group, on every load generator, got the event `tag`. */
export async function expectAll(
  ctx: Context,
  args: { group: string; tag: string; timeoutMs: number },
): Promise<{ count: number; expected: number; first: number; last: number; timedOut: boolean }> {
  const results = await Promise.all(
    ctx.loadgens.map((lg) =>
      lg.call(
        "expect",
        { group: args.group, tag: args.tag, timeoutMs: args.timeoutMs },
        args.timeoutMs + 10_000,
      )
    ),
  );
  const counted = results.filter((r) => r.count > 0);
  return {
    count: results.reduce((s, r) => s + r.count, 0),
    expected: results.reduce((s, r) => s + r.expected, 0),
    first: counted.length ? Math.min(...counted.map((r) => r.first)) : NaN,
    last: counted.length ? Math.max(...counted.map((r) => r.last)) : NaN,
    timedOut: results.some((r) => r.timedOut),
  };
}

/** Closes (and forgets) a group on every load generator. */
export async function closeAll(ctx: Context, group: string, forget = true): Promise<void> {
  await Promise.all(ctx.loadgens.map((lg) => lg.call("close", { group, forget }, 120_000)));
}

/** Sums the stream health of a group over every load generator. */
export async function statsAll(ctx: Context, group: string, expectSeq?: number) {
  const results = await Promise.all(
    ctx.loadgens.map((lg) => lg.call("stats", { group, expectSeq })),
  );
  const sum = (k: string) => results.reduce((s, r) => s + r[k], 0);
  return {
    conns: sum("conns"),
    open: sum("open"),
    gaps: sum("gaps"),
    dups: sum("dups"),
    behind: sum("behind"),
    behindWelcome: sum("behindWelcome"),
    events: sum("events"),
    minSeq: Math.min(...results.map((r) => r.minSeq)),
    maxSeq: Math.max(...results.map((r) => r.maxSeq)),
  };
}

/** Takes the latency samples of events tagged `prefix…` from every load generator. */
export async function samplesAll(ctx: Context, group: string, prefix: string): Promise<number[]> {
  const results: number[][] = await Promise.all(
    ctx.loadgens.map((lg) => lg.call("samples", { group, prefix })),
  );
  return results.flat();
}

/** Sleeps. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A request with the bench's service key; JSON in and out. */
export async function request(
  ctx: Context,
  origin: string,
  path: string,
  init: { method?: string; body?: unknown } = {},
): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
  const res = await fetch(`${origin}${path}`, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers: { "content-type": "application/json", "x-api-key": ctx.serviceKey },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, body, text };
}

/** Whether a route answered with relais's "No route" 404 (the feature is not built yet). */
export function isMissingRoute(res: { status: number; text: string }): boolean {
  return res.status === 404 && /No route/i.test(res.text);
}
