/**
 * Scenario 7, change-data ingest: relais reads a Redis stream of Debezium changes (a
 * `redis-server` started for the scenario), users connected; a burst of changes is
 * XADDed at once, one row per change, each row's `owner_id` naming a connected user.
 * Measured: changes delivered per second from the first XADD to the last delivery, XADD →
 * receive percentiles (the change carries its XADD time in an allowed column), and the
 * group's lag as `GET /v1/admin/ingest` reports it while the burst drains.
 */

import { Redis } from "ioredis";
import { closeAll, connectAll, type Context, request, samplesAll, sleep } from "../_context.ts";
import { userId } from "../_ids.ts";
import { spawnChild } from "../_procs.ts";
import { now } from "../_rpc.ts";
import { median, percentiles, round, split } from "../_stats.ts";
import { freePort } from "../../src/cluster/dev/loopback.ts";

/** Changes XADDed per pipeline round trip. */
const PIPELINE = 500;
const STREAM = "bench-changes";

/** One run. */
export interface IngestRun {
  run: number;
  changes: number;
  delivered: number;
  changesPerSecond: number;
  /** Milliseconds from the first XADD to the last XADD. */
  addMs: number;
  p50: number;
  p99: number;
  /** The largest lag the admin route reported while the burst drained. */
  maxLag: number;
  timedOut: boolean;
}

/** A change of the platform's shape (Debezium, PostgreSQL connector, JSON converter). */
function change(run: number, i: number, owner: string): string {
  return JSON.stringify({
    before: null,
    after: { id: run * 1_000_000 + i, owner_id: owner, k: `ingest-r${run}-x`, t: now() },
    source: {
      connector: "postgresql",
      schema: "public",
      table: "activity",
      txId: run * 1_000_000 + i,
      lsn: run * 1_000_000_000 + i,
      // The commit time, as the connector gives it (the event's id begins with it).
      ts_ms: Date.now(),
    },
    op: "c",
    ts_ms: Date.now(),
  });
}

/** Runs the ingest scenario, or reports why it cannot. */
export async function runIngest(ctx: Context) {
  const { profile } = ctx;
  const users = profile.ingestUsers;
  const changes = profile.ingestChanges;
  const port = freePort();
  let redisChild;
  try {
    redisChild = await spawnChild("redis", "redis-server", [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
    ], { stdout: "null" });
  } catch (error) {
    return { available: false, note: `not run: cannot start redis-server (${error})` };
  }
  const redisUrl = `redis://127.0.0.1:${port}`;
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
  const rules = `${ctx.tmp}/ingest-rules.json`;
  await Deno.writeTextFile(
    rules,
    JSON.stringify({
      rules: [{
        table: "public.activity",
        type: "REALTIME",
        source: "activities",
        topic: "activity.changed",
        key: ["id"],
        audience: { type: "USER", column: "owner_id" },
        columns: ["id", "k", "t"],
      }],
    }),
  );
  const group = "ingest";
  let server;
  try {
    for (let i = 0; i < 100; i++) {
      try {
        await redis.connect();
        break;
      } catch {
        await sleep(50);
      }
    }
    server = await ctx.startServer("relais", {
      REDIS_URL: redisUrl,
      RELAIS_INGEST_STREAM: STREAM,
      RELAIS_INGEST_RULES: rules,
      RELAIS_RATE_LIMITER: "memory",
    });
    ctx.log(`ingest: connecting ${users} users`);
    const connected = await connectAll(ctx, {
      group,
      peer: "relais",
      url: server.connectUrl,
      prefix: "ing",
      from: 0,
      to: users,
      collect: true,
    });
    if (connected.connected < users) {
      return { available: false, note: `not run: ${connected.failed} users could not connect` };
    }
    // Which load generator holds which users, to wait for each one's share.
    const ranges = split(users, ctx.loadgens.length, 0);
    const runs: IngestRun[] = [];
    for (let run = 0; run <= profile.runs; run++) {
      const count = run === 0 ? Math.min(500, changes) : changes;
      const owners = Array.from({ length: count }, (_, i) => i % users);
      const shares = ranges.map(([from, to]) => owners.filter((u) => u >= from && u < to).length);
      const tag = `ingest-r${run}-x`;
      ctx.log(`ingest: ${run === 0 ? "warm-up" : `run ${run}`}, ${count} changes`);
      const waiting = Promise.all(
        ctx.loadgens.map((lg, i) =>
          lg.call("expect", { group, tag, count: shares[i], timeoutMs: 60_000 }, 70_000)
        ),
      );
      let maxLag = 0;
      let draining = true;
      const watch = (async () => {
        while (draining) {
          const res = await request(ctx, server!.origin, "/v1/admin/ingest", { method: "GET" });
          const lag = Number(res.body.lag ?? 0) + Number(res.body.pending ?? 0);
          if (Number.isFinite(lag)) maxLag = Math.max(maxLag, lag);
          await sleep(100);
        }
      })();
      const started = now();
      for (let i = 0; i < count; i += PIPELINE) {
        const pipe = redis.pipeline();
        for (let j = i; j < Math.min(count, i + PIPELINE); j++) {
          pipe.xadd(STREAM, "*", "data", change(run, j, userId("ing", owners[j])));
        }
        await pipe.exec();
      }
      const added = now();
      const results = await waiting;
      draining = false;
      await watch;
      const last = Math.max(...results.map((r) => r.last));
      const delivered = results.reduce((s, r) => s + r.count, 0);
      const samples = await samplesAll(ctx, group, "ingest-r" + run + "-");
      if (run === 0) continue;
      const p = percentiles(samples);
      runs.push({
        run,
        changes: count,
        delivered,
        changesPerSecond: round((delivered * 1000) / (last - started)),
        addMs: round(added - started),
        p50: round(p.p50),
        p99: round(p.p99),
        maxLag,
        timedOut: results.some((r) => r.timedOut),
      });
    }
    return {
      available: true,
      users,
      changes,
      runs,
      summary: {
        changesPerSecond: round(median(runs.map((r) => r.changesPerSecond))),
        p50: round(median(runs.map((r) => r.p50))),
        p99: round(median(runs.map((r) => r.p99))),
        maxLag: Math.max(...runs.map((r) => r.maxLag)),
        lost: runs.reduce((s, r) => s + (r.changes - r.delivered), 0),
      },
    };
  } finally {
    await closeAll(ctx, group).catch(() => {});
    await server?.stop();
    redis.disconnect();
    await redisChild.stop();
  }
}
