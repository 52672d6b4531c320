/**
 * Scenario 6, reconnect storm: every user drops, durable notifications are published while
 * they are away, then all reconnect at once with `after` = the last seq each one saw (and
 * one more notification is published in the middle of the storm). Measured: the time until
 * every client is welcomed and caught up; checked: no client misses or skips a seq.
 *
 * In a full run it reuses the latency scenario's relais and users (whose streams the
 * clients have tracked seq by seq since they connected); `--only storm` runs it alone.
 */

import {
  closeAll,
  connectAll,
  type Context,
  expectAll,
  request,
  type Server,
  sleep,
  statsAll,
} from "../_context.ts";
import { median, round } from "../_stats.ts";

/** One storm. */
export interface StormRun {
  run: number;
  users: number;
  resumed: number;
  failed: number;
  /** Storm start → every client welcomed and caught up with its welcome's seq. */
  resumedMs: number;
  /** Storm start → every client has every item, including the one published mid-storm. */
  completeMs: number;
  recoveredFalse: number;
  /** Clients left behind the seq their welcome announced. */
  behind: number;
  /** Clients without the mid-storm item. */
  missedLive: number;
  gaps: number;
  duplicates: number;
  firstError?: string;
}

/** The users a storm acts on: a connected group of `0..users` of group `prefix` (`userId`) on `server`. */
export interface StormTarget {
  server: Server;
  group: string;
  prefix: string;
  users: number;
}

async function publish(ctx: Context, t: StormTarget, tag: string) {
  const res = await ctx.publisher.call("publish", {
    peer: "relais",
    url: t.server.origin,
    tag,
    type: "NOTIFICATION",
    users: { prefix: t.prefix, from: 0, to: t.users },
  }, 120_000);
  if (res.status !== 202) throw new Error(`Publish refused: ${res.status} ${res.body ?? ""}`);
  return res;
}

async function fanoutDone(ctx: Context, server: Server, id: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await request(ctx, server.origin, `/v1/events/${id}`);
    if (res.status === 200 && res.body.fan_out === "done") return true;
    await sleep(50);
  }
  return false;
}

/** Runs the storms on connected users. */
export async function measureStorm(ctx: Context, t: StormTarget) {
  const { profile } = ctx;
  const runs: StormRun[] = [];
  // The clients' counters run since they connected: each storm reports its own part.
  const before = await statsAll(ctx, t.group);
  const counters = { gaps: before.gaps, dups: before.dups };
  for (let run = 1; run <= profile.runs; run++) {
    await closeAll(ctx, t.group, false);
    await sleep(500);
    ctx.log(
      `storm: run ${run}, ${profile.stormMissed} notifications while ${t.users} users are away`,
    );
    for (let i = 0; i < profile.stormMissed; i++) {
      const res = await publish(ctx, t, `storm-${run}-missed-${i}`);
      // A large audience is answered before its fan-out ends: wait for it to finish.
      if (!(await fanoutDone(ctx, t.server, res.id, 60_000))) {
        throw new Error(`The fan-out of "${res.id}" did not finish within 60 s`);
      }
    }
    ctx.log(`storm: run ${run}, ${t.users} users reconnect at once`);
    const storm = connectAll(ctx, {
      group: t.group,
      peer: "relais",
      url: t.server.connectUrl,
      prefix: t.prefix,
      from: 0,
      to: t.users,
      concurrency: t.users,
      resume: true,
      trackSeq: true,
      timeoutMs: 60_000,
    });
    const tag = `storm-${run}-during`;
    const mid = sleep(20).then(() => publish(ctx, t, tag));
    const [result] = await Promise.all([storm, mid]);
    const done = await expectAll(ctx, { group: t.group, tag, timeoutMs: 60_000 });
    await sleep(300);
    const stats = await statsAll(ctx, t.group);
    runs.push({
      run,
      users: t.users,
      resumed: result.connected,
      failed: result.failed,
      resumedMs: round(result.ms),
      completeMs: round(Math.max(result.started + result.ms, done.last) - result.started),
      recoveredFalse: result.recoveredFalse,
      behind: stats.behindWelcome,
      missedLive: t.users - done.count,
      gaps: stats.gaps - counters.gaps,
      duplicates: stats.dups - counters.dups,
      firstError: result.firstError,
    });
    counters.gaps = stats.gaps;
    counters.dups = stats.dups;
  }
  const bare = await measureBareStorm(ctx, t.users);
  return {
    users: t.users,
    missedPerStorm: profile.stormMissed,
    runs,
    bare,
    summary: {
      resumedMs: round(median(runs.map((r) => r.resumedMs))),
      completeMs: round(median(runs.map((r) => r.completeMs))),
      lost: runs.reduce((s, r) => s + r.behind + r.missedLive + r.gaps, 0),
      failed: runs.reduce((s, r) => s + r.failed, 0),
      recoveredFalse: runs.reduce((s, r) => s + r.recoveredFalse, 0),
    },
  };
}

/**
 * The ceiling of a storm on this machine: as many clients reconnecting at once to the bare
 * WebSocket server, each welcomed on its `hello` (no token, no stream, nothing to replay).
 * What it takes is the runtime's handshakes and the load generators' own, which relais
 * pays too.
 */
async function measureBareStorm(ctx: Context, users: number) {
  const server = await ctx.startServer("bare");
  const group = "storm-bare";
  const ms: number[] = [];
  try {
    const target = {
      group,
      peer: "bare" as const,
      url: server.connectUrl,
      prefix: "bare",
      from: 0,
      to: users,
    };
    const first = await connectAll(ctx, target);
    if (first.failed > 0) throw new Error(`${first.failed} bare connections failed`);
    for (let run = 1; run <= ctx.profile.runs; run++) {
      await closeAll(ctx, group, false);
      await sleep(500);
      const storm = await connectAll(ctx, { ...target, concurrency: users, timeoutMs: 60_000 });
      if (storm.failed > 0) throw new Error(`${storm.failed} bare reconnections failed`);
      ms.push(round(storm.ms));
    }
    return { runs: ms, medianMs: round(median(ms)) };
  } catch (error) {
    return { error: String(error instanceof Error ? error.message : error) };
  } finally {
    await server.stop();
    await closeAll(ctx, group).catch(() => {});
  }
}

/** Runs the storm scenario on its own server. */
export async function runStorm(ctx: Context) {
  const users = ctx.profile.stormUsers;
  const server = await ctx.startServer("relais");
  const target: StormTarget = { server, group: "storm", prefix: "storm", users };
  try {
    ctx.log(`storm: connecting ${users} users`);
    const first = await connectAll(ctx, {
      group: target.group,
      peer: "relais",
      url: server.connectUrl,
      prefix: target.prefix,
      from: 0,
      to: users,
      trackSeq: true,
    });
    if (first.failed > 0) {
      throw new Error(`${first.failed} connections failed: ${first.firstError}`);
    }
    await publish(ctx, target, "storm-warm");
    await expectAll(ctx, { group: target.group, tag: "storm-warm", timeoutMs: 60_000 });
    return await measureStorm(ctx, target);
  } finally {
    await server.stop();
    await closeAll(ctx, target.group).catch(() => {});
  }
}
