/**
 * Scenario 8, soak: a steady publish load for minutes with retention set to seconds, to show
 * that the store levels off instead of growing with every event.
 *
 * relais runs as deployed (Deno KV in a file) with `RELAIS_RETENTION_ITEMS` and
 * `RELAIS_RETENTION_EVENTS` at `soakRetentionS` seconds and a sweep every `soakSweepMs`.
 * The bench publishes `soakRate` events per second (three NOTIFICATIONs for one REALTIME)
 * to `soakUsers` users of the directory, and samples every few seconds the KV file's size
 * (with its WAL) and its key count (read from the same file, as a second SQLite reader),
 * plus what the retention actor reports. Levelled off: the key count of the last sample is
 * within 25 % of the one at the middle of the run, once the first retention period and two
 * sweeps have passed.
 */

import { type Context, request, type Server, sleep } from "../_context.ts";
import { round } from "../_stats.ts";

/** The soak's part of the bench profile. */
export interface SoakProfile {
  /** How long the load runs. */
  soakMs: number;
  /** Events per second. */
  soakRate: number;
  /** Users the events go to, in turn. */
  soakUsers: number;
  /** Retention of items and events, seconds. */
  soakRetentionS: number;
  /** Time between two retention sweeps. */
  soakSweepMs: number;
}

/** The soak of a full run. */
export const SOAK_FULL: SoakProfile = {
  soakMs: 120_000,
  soakRate: 200,
  soakUsers: 500,
  soakRetentionS: 20,
  soakSweepMs: 2000,
};

/** The soak of a quick run. */
export const SOAK_QUICK: SoakProfile = {
  soakMs: 30_000,
  soakRate: 100,
  soakUsers: 200,
  soakRetentionS: 5,
  soakSweepMs: 1000,
};

/** One sample of the store while the load runs. */
export interface SoakSample {
  /** Seconds since the load started. */
  s: number;
  published: number;
  /** The KV file and its WAL, bytes. */
  bytes: number;
  keys: number;
  /** Stream items among `keys`. */
  streamKeys: number;
  /** Records removed so far, as the retention actor counts them. */
  swept: number;
}

/** What the soak reports. */
export interface SoakResult {
  profile: SoakProfile;
  published: number;
  failed: number;
  firstError?: string;
  /** The first lines relais logged at error level, when a publish failed. */
  serverErrors?: string[];
  samples: SoakSample[];
  /** Keys at the last sample over keys at the middle one (after warm-up). */
  growth: number;
  levelledOff: boolean;
}

/** Requests in flight at most, as a backend's HTTP pool would. */
const CONNECTIONS = 32;
/** Time between two samples. */
const SAMPLE_MS = 5000;

/** The data folder `startServer` just made: the one that was not there before. */
async function newDataDir(tmp: string, before: Set<string>): Promise<string> {
  for await (const entry of Deno.readDir(tmp)) {
    if (entry.isDirectory && entry.name.startsWith("relais-") && !before.has(entry.name)) {
      return `${tmp}/${entry.name}`;
    }
  }
  throw new Error("Cannot find the soak server's data folder");
}

async function dirEntries(tmp: string): Promise<Set<string>> {
  const names = new Set<string>();
  for await (const entry of Deno.readDir(tmp)) names.add(entry.name);
  return names;
}

async function fileBytes(path: string): Promise<number> {
  let total = 0;
  for (const file of [path, `${path}-wal`]) {
    try {
      total += (await Deno.stat(file)).size;
    } catch { /* no WAL yet */ }
  }
  return total;
}

async function countKeys(kv: Deno.Kv): Promise<{ keys: number; streamKeys: number }> {
  let keys = 0;
  let streamKeys = 0;
  for await (const entry of kv.list({ prefix: [] }, { batchSize: 1000 })) {
    keys++;
    if (entry.key[0] === "stream") streamKeys++;
  }
  return { keys, streamKeys };
}

async function sweptSoFar(ctx: Context, server: Server): Promise<number> {
  const res = await request(ctx, server.origin, "/v1/admin/actors/retention/main");
  const totals = (res.body.context as { totals?: Record<string, number> } | undefined)?.totals;
  return Object.values(totals ?? {}).reduce((sum, n) => sum + n, 0);
}

/** Runs the soak on its own relais. */
export async function runSoak(ctx: Context, soak: SoakProfile = SOAK_QUICK): Promise<SoakResult> {
  const before = await dirEntries(ctx.tmp);
  const server = await ctx.startServer("relais", {
    RELAIS_RETENTION_ITEMS: `${soak.soakRetentionS}s`,
    RELAIS_RETENTION_EVENTS: `${soak.soakRetentionS}s`,
    RELAIS_RETENTION_SWEEP_MS: String(soak.soakSweepMs),
  });
  const kvPath = `${await newDataDir(ctx.tmp, before)}/relais.kv`;
  let kv: Deno.Kv | undefined;
  try {
    ctx.log(`soak: ${soak.soakUsers} users in the directory`);
    const put = await ctx.publisher.call("putUsers", {
      url: server.origin,
      users: { prefix: "soak", from: 0, to: soak.soakUsers },
      body: { structures: ["soak"], category: "STUDENT", locale: "fr" },
      concurrency: 32,
    }, 120_000);
    if (put.failed > 0) throw new Error(`${put.failed} directory writes failed: ${put.firstError}`);
    kv = await Deno.openKv(kvPath);

    ctx.log(
      `soak: ${soak.soakRate} events/s for ${
        soak.soakMs / 1000
      } s, retention ${soak.soakRetentionS} s`,
    );
    const total = Math.round((soak.soakRate * soak.soakMs) / 1000);
    const samples: SoakSample[] = [];
    let published = 0;
    let failed = 0;
    let inFlight = 0;
    let firstError: string | undefined;
    const publishOne = async (n: number) => {
      const type = n % 4 === 3 ? "REALTIME" : "NOTIFICATION";
      const user = `soak${(n * 7919) % soak.soakUsers}`;
      try {
        const res = await request(ctx, server.origin, "/v1/events", {
          body: {
            metadata: {
              id: crypto.randomUUID(),
              type,
              emitter: "bench",
              source: "bench",
              topic: "bench.soak",
            },
            payload: {
              fr: { title: `Soak ${n}`, body: "…" },
              en: { title: `Soak ${n}`, body: "…" },
            },
            routing: { audience: { type: "USER", targets: [user] } },
          },
        });
        if (res.status === 202) published++;
        else {
          failed++;
          firstError ??= `${res.status} ${res.text.slice(0, 300)}`;
        }
      } catch (error) {
        failed++;
        firstError ??= String(error);
      }
    };
    const started = Date.now();
    let nextSample = started;
    let sent = 0;
    const pending = new Set<Promise<void>>();
    while (sent < total && ctx.left() > 30_000) {
      const due = Math.min(total, Math.floor(((Date.now() - started) * soak.soakRate) / 1000));
      while (sent < due && inFlight < CONNECTIONS) {
        inFlight++;
        const p: Promise<void> = publishOne(sent++).finally(() => {
          inFlight--;
          pending.delete(p);
        });
        pending.add(p);
      }
      if (Date.now() >= nextSample) {
        nextSample += SAMPLE_MS;
        const [bytes, counted, swept] = await Promise.all([
          fileBytes(kvPath),
          countKeys(kv),
          sweptSoFar(ctx, server),
        ]);
        samples.push({
          s: round((Date.now() - started) / 1000),
          published,
          bytes,
          ...counted,
          swept,
        });
        const last = samples.at(-1)!;
        ctx.log(`soak: ${last.s} s, ${last.keys} keys, ${last.bytes} bytes, ${last.swept} swept`);
      }
      await sleep(5);
    }
    await Promise.all(pending);

    // Past the first retention and two sweeps, the store should hold a steady window.
    const warm = soak.soakRetentionS + (2 * soak.soakSweepMs) / 1000;
    const steady = samples.filter((x) => x.s >= warm);
    const middle = steady[Math.floor(steady.length / 2)];
    const end = steady.at(-1);
    const growth = middle && end && middle.keys > 0
      ? Math.round((end.keys / middle.keys) * 100) / 100
      : NaN;
    return {
      profile: soak,
      published,
      failed,
      ...(firstError ? { firstError } : {}),
      // What relais logged at error level, when a publish failed: the cause of a 500.
      ...(failed > 0 && server.child.errorLines.length > 0
        ? { serverErrors: server.child.errorLines.slice(0, 3) }
        : {}),
      samples,
      growth,
      levelledOff: steady.length >= 3 && growth <= 1.25,
    };
  } finally {
    kv?.close();
    await server.stop();
  }
}

const fmt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "—");

/** The soak's section of `BENCHMARKS.md`. */
export function soakSection(r: SoakResult | { error: string } | undefined): string {
  if (!r) return "Not run.";
  if ("error" in r) return `Failed: ${r.error}`;
  const p = r.profile;
  const head = ["s", "published", "keys", "stream items", "KV file + WAL (bytes)", "swept"];
  const rows = r.samples.map((x) => [
    String(x.s),
    fmt(x.published),
    fmt(x.keys),
    fmt(x.streamKeys),
    fmt(x.bytes),
    fmt(x.swept),
  ]);
  return [
    `${fmt(p.soakRate)} events/s for ${p.soakMs / 1000} s (three NOTIFICATIONs for one ` +
    `REALTIME) to ${fmt(p.soakUsers)} users, with \`RELAIS_RETENTION_ITEMS\` and ` +
    `\`RELAIS_RETENTION_EVENTS\` at ${p.soakRetentionS} s and a sweep every ` +
    `${p.soakSweepMs} ms; the KV file and its key count sampled every ${SAMPLE_MS / 1000} s.`,
    "",
    `${fmt(r.published)} published, ${fmt(r.failed)} refused${
      r.firstError ? ` (first: ${r.firstError})` : ""
    }. Keys at the end over keys mid-run (after warm-up): ${r.growth} — ` +
    (r.levelledOff ? "**levelled off**." : "**still growing**.") +
    (r.serverErrors?.length
      ? ` relais logged: ${r.serverErrors.map((l) => `\`${l}\``).join(", ")}.`
      : ""),
    "",
    `| ${head.join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
    ...rows.map((row) => `| ${row.join(" | ")} |`),
  ].join("\n");
}
