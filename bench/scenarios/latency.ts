/**
 * Scenario 3, latency: publish→receive percentiles with many users connected, at fixed
 * publish rates, each event to one user. The publisher runs open loop in its own process
 * and stamps each payload with its send time; clients subtract it on receipt (one clock).
 */

import { closeAll, connectAll, type Context, samplesAll, sleep } from "../_context.ts";
import { median, percentiles, round } from "../_stats.ts";
import { measureStorm } from "./storm.ts";
import { quiesce } from "../_procs.ts";

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
  firstError?: string;
}

async function phase(
  ctx: Context,
  origin: string,
  users: number,
  rate: number,
  durationMs: number,
  tagPrefix: string,
) {
  const res = await ctx.publisher.call("rate", {
    url: origin,
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
    samples.push(...await samplesAll(ctx, "latency", tagPrefix));
    if (samples.length >= accepted || Date.now() > drainUntil) break;
    await sleep(100);
  }
  return { res, accepted, samples };
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
    connect = await connectAll(ctx, {
      group: "latency",
      peer: "relais",
      url: server.connectUrl,
      prefix: "lat",
      from: 0,
      to: users,
      concurrency: 64,
      collect: true,
      trackSeq: true,
    });
    if (connect.failed > 0) {
      throw new Error(`${connect.failed} connections failed: ${connect.firstError}`);
    }
    // Work that follows first connections (directory and presence writes) settles first;
    // then a warm-up, not measured.
    await sleep(ctx.profile.quick ? 1000 : 3000);
    await phase(ctx, server.origin, users, 100, 1000, "lat-warm-");
    for (let run = 1; run <= profile.runs; run++) {
      for (const rate of profile.latencyRates) {
        ctx.log(`latency: run ${run}, ${rate} events/s for ${profile.latencyMs} ms`);
        const { res, accepted, samples } = await phase(
          ctx,
          server.origin,
          users,
          rate,
          profile.latencyMs,
          `lat-${run}-${rate}-`,
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
          firstError: res.firstError,
        });
        // A rate the server could not keep up with leaves a backlog: the next rate starts
        // once it is drained.
        await quiesce(server.child.pid, 20_000);
      }
    }
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
  const summary = profile.latencyRates.map((rate) => {
    const of = runs.filter((r) => r.rate === rate);
    return {
      rate,
      p50: round(median(of.map((r) => r.p50))),
      p95: round(median(of.map((r) => r.p95))),
      p99: round(median(of.map((r) => r.p99))),
      achievedRate: round(median(of.map((r) => r.achievedRate))),
      handledRate: round(median(of.map((r) => r.handledRate))),
      lost: of.reduce((s, r) => s + r.accepted - r.received, 0),
      refused: of.reduce((s, r) => s + r.sent - r.accepted, 0),
      skipped: of.reduce((s, r) => s + r.skipped, 0),
    };
  });
  return { users, connect, runs, summary, storm };
}
