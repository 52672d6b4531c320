/**
 * Scenario 4, audience: one NOTIFICATION to a whole institution (a STRUCTURE audience of
 * every user whose directory entry lists it), with all its users online. Measured:
 * publish → 202 (durable), publish → fan-out finished (every stream item written), and
 * publish → the last user received it. Needs the directory (`PUT /v1/users/:id`).
 *
 * In a full run it shares the fan-out scenario's relais (its users are the institution),
 * which saves connecting 10,000 more users; `--only audience` runs it on its own server.
 */

import {
  closeAll,
  connectAll,
  type Context,
  expectAll,
  isMissingRoute,
  request,
  type Server,
  sleep,
} from "../_context.ts";
import { now } from "../_rpc.ts";
import { median, round } from "../_stats.ts";

const STRUCTURE = "univ-bench";

/** One publish. */
export interface AudienceRun {
  run: number;
  targeted: number;
  /** Publish → 202. */
  durableMs: number;
  /** Publish → the status endpoint reports the fan-out done. */
  fanoutDoneMs: number;
  /** Publish → the last online user received it. */
  deliveredMs: number;
  received: number;
}

/** Why the audience scenario cannot run, if the directory routes are missing. */
export async function audienceUnavailable(ctx: Context, server: Server) {
  const probe = await request(ctx, server.origin, "/v1/users/bench-probe", {
    method: "PUT",
    body: { structures: ["bench-probe"] },
  });
  if (isMissingRoute(probe)) {
    return "not available yet: PUT /v1/users/:id answers 404 (no directory routes)";
  }
  if (probe.status >= 300) {
    return `not available: PUT /v1/users/:id answered ${probe.status} ${probe.text.slice(0, 200)}`;
  }
  return undefined;
}

/** The structure holding exactly the users `0..size` of group `prefix` (`userId`) (see {@linkcode putInstitution}). */
export function bandStructure(size: number): string {
  return `${STRUCTURE}-${size}`;
}

/**
 * Puts `0..users` of group `prefix` (`userId`) in the institution; returns the PUT rate. Each user is also put in
 * `bandStructure(b)` for every band `b` above its index, so that a STRUCTURE audience of
 * `bandStructure(b)` is exactly the users `0..b` of group `prefix`.
 */
export async function putInstitution(
  ctx: Context,
  server: Server,
  prefix: string,
  users: number,
  bands: number[] = [],
): Promise<number> {
  ctx.log(`audience: writing ${users} directory entries`);
  // Contiguous ranges of users that share the same structures.
  const cuts = [...new Set([0, ...bands.filter((b) => b > 0 && b < users), users])]
    .sort((a, b) => a - b);
  let ok = 0;
  let ms = 0;
  for (let i = 0; i + 1 < cuts.length; i++) {
    const [from, to] = [cuts[i], cuts[i + 1]];
    const structures = [STRUCTURE, ...bands.filter((b) => from < b).map(bandStructure)];
    const put = await ctx.publisher.call("putUsers", {
      url: server.origin,
      users: { prefix, from, to },
      body: { structures, category: "STUDENT", locale: "fr" },
      concurrency: 32,
    }, 300_000);
    if (put.failed > 0) throw new Error(`${put.failed} directory writes failed: ${put.firstError}`);
    ok += put.ok;
    ms += put.ms;
  }
  return round((ok * 1000) / ms);
}

/** Publishes to the institution (a warm-up, then `runs` times) with its users online. */
export async function measureAudience(
  ctx: Context,
  server: Server,
  group: string,
  users: number,
  putRate: number,
) {
  const runs: AudienceRun[] = [];
  for (let run = 0; run <= ctx.profile.runs; run++) {
    ctx.log(`audience: ${run === 0 ? "warm-up" : `run ${run}`}, STRUCTURE of ${users} users`);
    const tag = `aud-${run}`;
    const pub = await ctx.publisher.call("publish", {
      peer: "relais",
      url: server.origin,
      tag,
      type: "NOTIFICATION",
      audience: { type: "STRUCTURE", targets: [STRUCTURE] },
    }, 120_000);
    if (pub.status !== 202) throw new Error(`Publish refused: ${pub.status} ${pub.body ?? ""}`);
    const [got, doneAt] = await Promise.all([
      expectAll(ctx, { group, tag, timeoutMs: 60_000 }),
      (async () => {
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline) {
          const res = await request(ctx, server.origin, `/v1/events/${pub.id}`);
          if (res.body.fan_out === "done") return now();
          await sleep(20);
        }
        return NaN;
      })(),
    ]);
    if (run > 0) {
      runs.push({
        run,
        targeted: users,
        durableMs: round(pub.ms),
        fanoutDoneMs: round(doneAt - pub.t),
        deliveredMs: round(got.last - pub.t),
        received: got.count,
      });
    }
    await sleep(300);
  }
  return {
    available: true,
    users,
    directoryWritesPerSecond: putRate,
    runs,
    summary: {
      durableMs: round(median(runs.map((r) => r.durableMs))),
      fanoutDoneMs: round(median(runs.map((r) => r.fanoutDoneMs))),
      deliveredMs: round(median(runs.map((r) => r.deliveredMs))),
      lost: runs.reduce((s, r) => s + r.targeted - r.received, 0),
    },
  };
}

/** Runs the audience scenario on its own server, or reports why it cannot. */
export async function runAudience(ctx: Context) {
  const users = ctx.profile.audienceUsers;
  const server = await ctx.startServer("relais");
  try {
    const missing = await audienceUnavailable(ctx, server);
    if (missing) return { available: false, note: missing };
    const putRate = await putInstitution(ctx, server, "aud", users);
    ctx.log(`audience: connecting ${users} users`);
    const connect = await connectAll(ctx, {
      group: "audience",
      peer: "relais",
      url: server.connectUrl,
      prefix: "aud",
      from: 0,
      to: users,
    });
    if (connect.failed > 0) {
      throw new Error(`${connect.failed} connections failed: ${connect.firstError}`);
    }
    return await measureAudience(ctx, server, "audience", users, putRate);
  } finally {
    await server.stop();
    await closeAll(ctx, "audience").catch(() => {});
  }
}
