/**
 * Scenario 3, latency: publish→receive percentiles with many users connected, at fixed
 * publish rates, each event to one user. The publisher runs open loop in its own process
 * and stamps each payload with its send time; clients subtract it on receipt (one clock).
 * The same publisher and clients then run the same rates against the bare WebSocket server,
 * which answers each publish at once and sends the event to its user's socket: its
 * figures are the share of every relais figure that the harness and the machine take.
 */

import { closeAll, connectAll, type Context, samplesAll, type Server, sleep } from "../_context.ts";
import { median, percentiles, round } from "../_stats.ts";
import { measureStorm } from "./storm.ts";
import { quiesce, readCpuSeconds } from "../_procs.ts";

/** Requests the publisher keeps open at once, as a backend's HTTP connection pool. */
export const CONNECTIONS = 64;

/** One run at one rate. */
export interface LatencyRun {
  run: number;
  rate: number;
  sent: number;
  skipped: number;
  accepted: number;
  received: number;
  achievedRate: number;
  handledRate: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  answerP99: number;
  /**
   * The server's CPU time (every thread) from the first send to the last receipt, per
   * publish answered `202`, in µs.
   */
  cpuMicrosPerPublish?: number;
  firstError?: string;
}

async function phase(
  ctx: Context,
  group: string,
  server: Server,
  users: number,
  rate: number,
  durationMs: number,
  tagPrefix: string,
) {
  const cpu0 = await readCpuSeconds(server.child.pid);
  const res = await ctx.publisher.call("rate", {
    url: server.origin,
    rate,
    durationMs,
    users: { prefix: "lat", from: 0, to: users },
    tagPrefix,
    connections: CONNECTIONS,
    maxQueued: 20_000,
  }, durationMs + 120_000);
  const accepted = res.statuses["202"] ?? 0;
  const samples: number[] = [];
  const drainUntil = Date.now() + 5000;
  while (true) {
    samples.push(...await samplesAll(ctx, group, tagPrefix));
    if (samples.length >= accepted || Date.now() > drainUntil) break;
    await sleep(100);
  }
  const cpu = await readCpuSeconds(server.child.pid) - cpu0;
  const cpuMicrosPerPublish = accepted > 0 ? round((cpu * 1e6) / accepted) : undefined;
  return { res, accepted, samples, cpuMicrosPerPublish };
}

/**
 * Runs the latency scenario at every rate. With `storm`, the reconnect storms then run on
 * the same server and users (their clients track every seq from the start).
 */
export async function runLatency(ctx: Context, options: { storm?: boolean } = {}) {
  const { profile } = ctx;
  const users = profile.latencyUsers;
  const server = await ctx.startServer("relais");
  const runs: LatencyRun[] = [];
  let connect;
  let storm: Record<string, unknown> | undefined;
  try {
    ctx.log(`latency: connecting ${users} users`);
    connect = await connectUsers(ctx, server, "latency");
    // Work that follows first connections (directory and presence writes) settles first;
    // then a warm-up, not measured.
    await sleep(ctx.profile.quick ? 1000 : 3000);
    runs.push(...await measureRates(ctx, server, "latency", "lat"));
    if (options.storm) {
      try {
        storm = await measureStorm(ctx, { server, group: "latency", prefix: "lat", users });
      } catch (error) {
        storm = { error: String(error instanceof Error ? error.message : error) };
      }
    }
  } finally {
    await server.stop();
    await closeAll(ctx, "latency").catch(() => {});
  }
  const bare = await measureBare(ctx);
  return { users, connect, runs, summary: summarize(ctx, runs), storm, bare };
}

/**
 * Connects the scenario's users (`lat-…`) to `server` in `group`, their latency samples
 * collected (and, on relais, every seq of their streams checked); throws if one fails.
 */
async function connectUsers(ctx: Context, server: Server, group: string) {
  const connect = await connectAll(ctx, {
    group,
    peer: server.peer,
    url: server.connectUrl,
    prefix: "lat",
    from: 0,
    to: ctx.profile.latencyUsers,
    concurrency: 64,
    collect: true,
    trackSeq: server.peer === "relais",
  });
  if (connect.failed > 0) {
    throw new Error(`${connect.failed} ${server.peer} connections failed: ${connect.firstError}`);
  }
  return connect;
}

/**
 * A warm-up at 100 events/s, not measured, then every rate of the profile `runs` times on
 * `server`, whose users (`lat-…`) are connected in `group`; tags start with `tag`.
 */
async function measureRates(
  ctx: Context,
  server: Server,
  group: string,
  tag: string,
): Promise<LatencyRun[]> {
  const { profile } = ctx;
  const users = profile.latencyUsers;
  const runs: LatencyRun[] = [];
  await phase(ctx, group, server, users, 100, 1000, `${tag}-warm-`);
  for (let run = 1; run <= profile.runs; run++) {
    for (const rate of profile.latencyRates) {
      ctx.log(`latency: run ${run}, ${server.peer}, ${rate} events/s for ${profile.latencyMs} ms`);
      const { res, accepted, samples, cpuMicrosPerPublish } = await phase(
        ctx,
        group,
        server,
        users,
        rate,
        profile.latencyMs,
        `${tag}-${run}-${rate}-`,
      );
      const p = percentiles(samples);
      runs.push({
        run,
        rate,
        sent: res.sent,
        skipped: res.skipped,
        accepted,
        received: samples.length,
        achievedRate: round(res.achievedRate),
        handledRate: round(res.handledRate),
        p50: round(p.p50),
        p95: round(p.p95),
        p99: round(p.p99),
        max: round(p.max),
        answerP99: round(res.answerMs.p99),
        ...(cpuMicrosPerPublish === undefined ? {} : { cpuMicrosPerPublish }),
        firstError: res.firstError,
      });
      // A rate the server could not keep up with leaves a backlog: the next rate starts
      // once it is drained.
      await quiesce(server.child.pid, 20_000);
    }
  }
  return runs;
}

/**
 * The floor of the latency figures on this machine: the same users, publisher and rates
 * against the bare WebSocket server (no token, no store, no actor: a publish is answered
 * and its event sent at once). What it measures is the clients' and the runtime's share,
 * which relais pays too.
 */
async function measureBare(ctx: Context) {
  const users = ctx.profile.latencyUsers;
  const group = "latency-bare";
  let server: Server | undefined;
  try {
    server = await ctx.startServer("bare");
    ctx.log(`latency: connecting ${users} users to the bare server`);
    await connectUsers(ctx, server, group);
    const runs = await measureRates(ctx, server, group, "latb");
    return { runs, summary: summarize(ctx, runs) };
  } catch (error) {
    return { error: String(error instanceof Error ? error.message : error) };
  } finally {
    await server?.stop();
    await closeAll(ctx, group).catch(() => {});
  }
}

/** The median of the runs at each rate, and what was lost, refused or skipped in all. */
function summarize(ctx: Context, runs: LatencyRun[]) {
  return ctx.profile.latencyRates.map((rate) => {
    const of = runs.filter((r) => r.rate === rate);
    return {
      rate,
      p50: round(median(of.map((r) => r.p50))),
      p95: round(median(of.map((r) => r.p95))),
      p99: round(median(of.map((r) => r.p99))),
      achievedRate: round(median(of.map((r) => r.achievedRate))),
      handledRate: round(median(of.map((r) => r.handledRate))),
      cpuMicrosPerPublish: round(median(of.flatMap((r) => r.cpuMicrosPerPublish ?? []))),
      lost: of.reduce((s, r) => s + r.accepted - r.received, 0),
      refused: of.reduce((s, r) => s + r.sent - r.accepted, 0),
      skipped: of.reduce((s, r) => s + r.skipped, 0),
    };
  });
}
