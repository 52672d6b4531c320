/**
 * Scenario 1, idle users: server RSS per connected user (socket, session and user actor),
 * read from `/proc/PID/status` before and after connecting, on a fresh server each time.
 */

import {
  closeAll,
  connectAll,
  type Context,
  isRelais,
  type Peer,
  PEER_LABELS,
  request,
  sleep,
} from "../_context.ts";
import { median, round } from "../_stats.ts";

/** One measurement. */
export interface IdleRun {
  run: number;
  peer: Peer;
  size: number;
  connected: number;
  failed: number;
  connectMs: number;
  connectsPerSecond: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  bytesPerUser: number;
  /**
   * RSS per user once the server has been left alone for {@linkcode SETTLE_MS} more (the
   * last run's first size, on the peers of {@linkcode SETTLED}): what the connects left
   * behind has then been collected by V8's memory reducer, as it would in production.
   */
  settledBytesPerUser?: number;
  userActors?: number;
  firstError?: string;
}

/**
 * How long a server is left alone after its users connected before the settled reading,
 * ms: V8's memory reducer gave relais's connects' garbage back ~25–33 s after the last
 * connect in side checks (docs/PERFORMANCE.md, What the idle reading holds).
 */
const SETTLE_MS = 40_000;
/** How long a server is left alone before the settled reading in this profile, ms. */
const settleMsOf = (ctx: Context) => ctx.profile.quick ? 8000 : SETTLE_MS;

/**
 * The peers measured in the last run only, for the settled comparison: the bare server the
 * idle target compares relais to, and the same with one idle actor per socket (the floor).
 */
const LAST_ONLY: ReadonlySet<Peer> = new Set(["bare", "bare-actor"]);

/** The peers read settled too: relais and the bare servers. */
const SETTLED: ReadonlySet<Peer> = new Set(["relais", ...LAST_ONLY]);

/** The hard limit on open files of this process (the server's is the same). */
export async function openFileLimit(): Promise<number> {
  const limits = await Deno.readTextFile("/proc/self/limits");
  const line = limits.split("\n").find((l) => l.startsWith("Max open files"));
  return Number(line?.trim().split(/\s+/)[4] ?? NaN);
}

async function actorCount(ctx: Context, origin: string): Promise<number | undefined> {
  const res = await request(ctx, origin, "/metrics");
  const match = /relais_actors\{kind="user"\}\s+(\d+)/.exec(res.text);
  return match ? Number(match[1]) : undefined;
}

/**
 * Connects users to a fresh server in steps (each size in `sizes`, ascending), reading the
 * server's RSS before the first user and after each step has settled.
 */
async function measure(
  ctx: Context,
  run: number,
  peer: Peer,
  sizes: number[],
  settle = false,
): Promise<IdleRun[]> {
  const server = await ctx.startServer(peer);
  const group = `idle-${peer}-${run}`;
  const out: IdleRun[] = [];
  try {
    // Let start-up work settle before the baseline.
    await sleep(1500);
    const rssBeforeBytes = await server.rss();
    let connected = 0;
    let from = 0;
    for (const size of sizes) {
      ctx.log(`idle: run ${run}, ${peer}, ${from}..${size} users`);
      const result = await connectAll(ctx, {
        group,
        peer,
        url: server.connectUrl,
        prefix: "idle",
        from,
        to: size,
        concurrency: 64,
      });
      connected += result.connected;
      from = size;
      await sleep(ctx.profile.quick ? 1500 : 3000);
      const rssAfterBytes = await server.rss();
      // Left alone, then read again (the first size only: the others follow it at once).
      let settledBytesPerUser: number | undefined;
      if (settle && size === sizes[0]) {
        await sleep(settleMsOf(ctx));
        settledBytesPerUser = Math.round(
          (await server.rss() - rssBeforeBytes) / Math.max(1, connected),
        );
      }
      out.push({
        run,
        peer,
        size,
        connected,
        failed: result.failed,
        connectMs: round(result.ms),
        connectsPerSecond: round((result.connected * 1000) / result.ms),
        rssBeforeBytes,
        rssAfterBytes,
        bytesPerUser: Math.round((rssAfterBytes - rssBeforeBytes) / Math.max(1, connected)),
        ...(settledBytesPerUser === undefined ? {} : { settledBytesPerUser }),
        userActors: isRelais(peer) ? await actorCount(ctx, server.origin) : undefined,
        firstError: result.firstError,
      });
    }
    return out;
  } finally {
    // The server first: its clients then close at once instead of one handshake each.
    await server.stop();
    await closeAll(ctx, group).catch(() => {});
  }
}

/**
 * The peers measured here, in turn within each run: relais on both runtimes, relais's Node
 * stack without relais (`hono-node`), the floor of relais on Node's memory per user, and
 * the bare server alone and with one actor per socket (`bare-actor`).
 */
const PEERS: Peer[] = ["relais", "relais-node", "hono-node", "bare", "bare-actor"];

/**
 * Runs the idle scenario on relais, on relais on Node and on its Node stack alone: the first
 * size in every run, each on a fresh server, and relais in the last run on up to the
 * largest size the open-file limit allows. In the last run the bare server is measured
 * too, alone and with one actor per socket, and they and relais are read again once left
 * alone for {@linkcode SETTLE_MS} (the settled reading). A Node peer is reported not run
 * (with the reason) when its entry is
 * missing or fails. The Socket.IO server's memory per user is read in the fan-out scenario,
 * side by side with the others.
 */
export async function runIdle(ctx: Context) {
  const { profile } = ctx;
  const fdLimit = await openFileLimit();
  const runs: IdleRun[] = [];
  /** Peers that could not run (or stopped running), and why. */
  const notRun: Partial<Record<Peer, string>> = {};
  const entry = ctx.nodeEntry;
  if ("unavailable" in entry) {
    notRun["relais-node"] = entry.unavailable;
    notRun["hono-node"] = entry.unavailable;
  } else if (!entry.honoNode) {
    notRun["hono-node"] = "bench/peers/hono_node.ts could not be bundled for Node";
  }
  for (let run = 1; run <= profile.runs; run++) {
    const last = run === profile.runs;
    for (const peer of PEERS) {
      if (notRun[peer]) continue;
      // The bare servers are measured once, in the last run, for the settled comparison.
      if (LAST_ONLY.has(peer) && !last) continue;
      const sizes = last && isRelais(peer) ? profile.idleSizes : profile.idleSizes.slice(0, 1);
      try {
        runs.push(...await measure(ctx, run, peer, sizes, last && SETTLED.has(peer)));
      } catch (error) {
        if (peer === "relais" || peer === "bare") throw error;
        notRun[peer] = `failed in run ${run}: ${error instanceof Error ? error.message : error}`;
        ctx.log(`idle: ${PEER_LABELS[peer]} left out (${notRun[peer]})`);
      }
    }
  }
  const summary = PEERS.flatMap((peer) =>
    profile.idleSizes.flatMap((size) => {
      const of = runs.filter((r) => r.peer === peer && r.size === size);
      if (of.length === 0) return [];
      return [{
        peer,
        size,
        runs: of.length,
        connected: median(of.map((r) => r.connected)),
        bytesPerUser: median(of.map((r) => r.bytesPerUser)),
        ...(() => {
          const settled = of.flatMap((r) => r.settledBytesPerUser ?? []);
          return settled.length ? { settledBytesPerUser: median(settled) } : {};
        })(),
        connectsPerSecond: median(of.map((r) => r.connectsPerSecond)),
      }];
    })
  );
  return { fdLimit, runs, summary, notRun, settleMs: settleMsOf(ctx) };
}
