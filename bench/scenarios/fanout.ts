/**
 * Scenario 2, fan-out: one event to every online user, repeated, for relais, relais on Node,
 * the bare ceiling, the bare server with one actor per socket (the floor of the design's
 * rule, every frame through its user's actor) and Socket.IO (broadcast). On relais the
 * event is of one of three kinds:
 * REALTIME to the list of users (audience USER), SYSTEM without ack to a STRUCTURE holding
 * exactly the connected users, or NOTIFICATION (durable) to the list of users; relais on
 * Node runs the REALTIME kind only (it gets no directory); the peers, which have no notion
 * of kinds or audiences, broadcast the same client envelope. The servers run side by side
 * with the same clients connected; in each run the peers take turns (in a rotating order),
 * so each ratio compares measurements made moments apart.
 */

import {
  closeAll,
  connectAll,
  type Context,
  expectAll,
  type FanoutKind,
  type Peer,
  PEER_LABELS,
  type Server,
  sleep,
} from "../_context.ts";
import { quiesce as quiesceProcess, readCpuSeconds } from "../_procs.ts";
import { audienceUnavailable, bandStructure, measureAudience, putInstitution } from "./audience.ts";
import { median, round, type TurnFigures, turnFigures } from "../_stats.ts";

/** The peers of the fan-out, in the order the report lists their figures. */
export const PEERS: Peer[] = [
  "relais",
  "relais-node",
  "bare",
  "bare-actor",
  "bare-node",
  "bare-node-actor",
  "socketio",
];

/**
 * The kinds a peer runs when not all of them: relais on Node runs REALTIME to a USER list,
 * which needs no directory (SYSTEM needs the structures relais's directory is given first),
 * and so do the bare Node peers, the ceiling relais on Node is measured against and its
 * floor (one actor per socket).
 */
export const PEER_KINDS: Partial<Record<Peer, FanoutKind[]>> = {
  "relais-node": ["realtime"],
  "bare-node": ["realtime"],
  "bare-node-actor": ["realtime"],
};

/** Peers whose start or failure is reported as "not run" instead of failing the scenario. */
const OPTIONAL: ReadonlySet<Peer> = new Set([
  "relais-node",
  "bare-actor",
  "bare-node",
  "bare-node-actor",
]);

/** Whether `peer` runs events of `kind`. */
export function runsKind(peer: Peer, kind: FanoutKind): boolean {
  return PEER_KINDS[peer]?.includes(kind) ?? true;
}

/** The peers of `peers` in the order they take their turns in run `run` (from 1). */
export function turnOrder(peers: Peer[], run: number): Peer[] {
  return peers.map((_, i) => peers[(i + run - 1) % peers.length]);
}

/** The kinds in the order they run at each size (the durable one last). */
export const FANOUT_KINDS: FanoutKind[] = ["realtime", "system", "notification"];

/** What each kind is on relais, and how long its server may take to settle after a turn. */
export const KINDS: Record<FanoutKind, {
  type: "REALTIME" | "SYSTEM" | "NOTIFICATION";
  audience: "USER" | "STRUCTURE";
  label: string;
  settleMs: number;
}> = {
  realtime: { type: "REALTIME", audience: "USER", label: "REALTIME → USER list", settleMs: 5000 },
  system: {
    type: "SYSTEM",
    audience: "STRUCTURE",
    label: "SYSTEM (no ack) → STRUCTURE",
    settleMs: 5000,
  },
  // Durable items per recipient are written in the background after delivery: let them be.
  notification: {
    type: "NOTIFICATION",
    audience: "USER",
    label: "NOTIFICATION (durable) → USER list",
    settleMs: 20_000,
  },
};

/** One run: `reps` events of one kind to `size` users on one peer. */
export interface FanoutRun extends TurnFigures {
  run: number;
  kind: FanoutKind;
  peer: Peer;
  size: number;
  /** Publish → answer (relais: 202), per event (median). */
  answerMs: number;
  serverCpuMicrosPerDelivery: number;
  timedOut: boolean;
}

/** Waits until the server uses less than 5 % of a core over 250 ms (at most `maxMs`). */
const quiesce = (server: Server, maxMs = 5000) => quiesceProcess(server.child.pid, maxMs);

async function oneEvent(
  ctx: Context,
  server: Server,
  kind: FanoutKind,
  size: number,
  tag: string,
) {
  const group = `fanout-${server.peer}`;
  const { type, audience } = KINDS[kind];
  const pub = await ctx.publisher.call("publish", {
    peer: server.peer,
    url: server.origin,
    tag,
    type,
    ...(audience === "STRUCTURE"
      ? { audience: { type: "STRUCTURE", targets: [bandStructure(size)] } }
      : { users: { prefix: "fan", from: 0, to: size } }),
  }, 120_000);
  if (pub.status !== 202) {
    throw new Error(`${server.peer} refused the publish: ${pub.status} ${pub.body ?? ""}`);
  }
  const got = await expectAll(ctx, { group, tag, timeoutMs: 60_000 });
  return { t: pub.t as number, answerMs: pub.ms as number, ...got };
}

/** The sizes `kind` runs at: those of the profile's steps it asks for. */
function sizesOf(ctx: Context, kind: FanoutKind): number[] {
  return (ctx.profile.fanoutKinds[kind] ?? []).filter((s) => ctx.profile.fanoutSizes.includes(s));
}

/**
 * Runs the fan-out scenario: at every size, each kind asked for at that size. The relais
 * server's users are first put in one institution (and in one structure per SYSTEM size);
 * with `audience`, the audience scenario then runs on it at the end.
 */
export async function runFanout(ctx: Context, options: { audience?: boolean } = {}) {
  const { profile } = ctx;
  const servers = new Map<Peer, Server>();
  const runs: FanoutRun[] = [];
  const connects: Record<string, unknown>[] = [];
  const rss: { peer: Peer; size: number; bytesPerUser: number }[] = [];
  const largest = profile.fanoutSizes.at(-1)!;
  const kinds = Object.fromEntries(FANOUT_KINDS.map((k) => [k, sizesOf(ctx, k)])) as Record<
    FanoutKind,
    number[]
  >;
  /** Kinds that could not run, and why. */
  const skipped: Partial<Record<FanoutKind, string>> = {};
  /** Optional peers that could not run (or stopped running), and why. */
  const notRun: Partial<Record<Peer, string>> = {};
  const active = () => PEERS.filter((p) => servers.has(p));
  /** Takes an optional peer out of the run on `error`; any other peer's error fails it. */
  const drop = async (peer: Peer, error: unknown, what: string) => {
    if (!OPTIONAL.has(peer)) throw error;
    const message = error instanceof Error ? error.message : String(error);
    notRun[peer] = what ? `${what}: ${message}` : message;
    ctx.log(`fan-out: ${PEER_LABELS[peer]} left out (${notRun[peer]})`);
    const server = servers.get(peer);
    servers.delete(peer);
    await server?.stop();
    await closeAll(ctx, `fanout-${peer}`).catch(() => {});
  };
  let audience: Record<string, unknown> | undefined;
  let putRate = NaN;
  try {
    for (const peer of PEERS) {
      try {
        servers.set(peer, await ctx.startServer(peer));
      } catch (error) {
        // An entry that could not be prepared says why itself.
        await drop(peer, error, "unavailable" in ctx.nodeEntry ? "" : "did not start");
      }
    }
    const relais = servers.get("relais")!;
    if (options.audience || kinds.system.length > 0) {
      const missing = await audienceUnavailable(ctx, relais);
      if (missing) {
        if (options.audience) audience = { available: false, note: missing };
        if (kinds.system.length > 0) skipped.system = missing;
      } else putRate = await putInstitution(ctx, relais, "fan", largest, kinds.system);
    }
    await sleep(1500);
    const baseline = new Map<Peer, number>();
    for (const [peer, server] of servers) baseline.set(peer, await server.rss());
    let connected = 0;
    for (const size of profile.fanoutSizes) {
      for (const peer of active()) {
        ctx.log(`fan-out: connecting ${connected}..${size} users to ${peer}`);
        try {
          const result = await connectAll(ctx, {
            group: `fanout-${peer}`,
            peer,
            url: servers.get(peer)!.connectUrl,
            prefix: "fan",
            from: connected,
            to: size,
            concurrency: 64,
          });
          connects.push({ peer, from: connected, to: size, ...result });
          if (result.failed > 0) {
            throw new Error(
              `${result.failed} connections to ${peer} failed: ${result.firstError}`,
            );
          }
        } catch (error) {
          await drop(peer, error, `failed at ${size} users`);
        }
      }
      connected = size;
      // Memory per connected user before this size's events, as a cross-check of the idle
      // scenario with the servers measured side by side.
      await sleep(2000);
      for (const [peer, server] of servers) {
        const bytes = await server.rss() - baseline.get(peer)!;
        rss.push({ peer, size, bytesPerUser: Math.round(bytes / size) });
      }
      for (const kind of FANOUT_KINDS) {
        if (!kinds[kind].includes(size) || skipped[kind]) continue;
        const { label, settleMs } = KINDS[kind];
        const peers = active().filter((p) => runsKind(p, kind));
        // One untimed event per peer: JIT, actors and buffers warm up.
        for (const peer of peers) {
          try {
            await oneEvent(ctx, servers.get(peer)!, kind, size, `warm-${kind}-${peer}-${size}`);
            await quiesce(servers.get(peer)!, settleMs);
          } catch (error) {
            await drop(peer, error, `failed at ${size} users`);
          }
        }
        for (let run = 1; run <= profile.runs; run++) {
          for (const peer of turnOrder(peers, run)) {
            const server = servers.get(peer);
            if (!server) continue; // left out after a failure
            ctx.log(
              `fan-out: ${label}, run ${run}, ${peer}, ${size} users × ${profile.fanoutReps} events`,
            );
            const cpu0 = await readCpuSeconds(server.child.pid);
            const events = [];
            try {
              for (let i = 0; i < profile.fanoutReps; i++) {
                const tag = `fan-${kind}-${peer}-${size}-${run}-${i}`;
                events.push(await oneEvent(ctx, server, kind, size, tag));
              }
            } catch (error) {
              await drop(peer, error, `failed at ${size} users`);
              continue;
            }
            // Work a server defers (relais records deliveries, and writes durable items,
            // after sending) is its cost too, and must not overlap the next peer's turn.
            await quiesce(server, settleMs);
            const cpu = (await readCpuSeconds(server.child.pid)) - cpu0;
            const figures = turnFigures(events, size);
            const { deliveries } = figures;
            runs.push({
              run,
              kind,
              peer,
              size,
              ...figures,
              answerMs: round(median(events.map((e) => e.answerMs))),
              serverCpuMicrosPerDelivery: round((cpu * 1e6) / deliveries),
              timedOut: events.some((e) => e.timedOut),
            });
          }
        }
      }
    }
    if (options.audience && !audience) {
      audience = await measureAudience(ctx, relais, "fanout-relais", largest, putRate);
    }
  } catch (error) {
    if (options.audience && !audience) {
      audience = { error: `the fan-out it shares a server with failed: ${error}` };
    }
    throw Object.assign(error as Error, { audience });
  } finally {
    // Servers first: their clients then close at once instead of one handshake each.
    await Promise.all([...servers.values()].map((s) => s.stop()));
    for (const peer of PEERS) await closeAll(ctx, `fanout-${peer}`).catch(() => {});
  }

  const summary = summarizeFanout(runs, kinds, skipped, profile.runs);
  return { kinds, skipped, notRun, runs, summary, rss, connects, audience };
}

/** The ratios of deliveries/s the report shows: [name, numerator, denominator]. */
const RATIOS: [string, Peer, Peer][] = [
  ["relais/socketio", "relais", "socketio"],
  ["relais/bare", "relais", "bare"],
  // The design's floor: the bare server with one actor per socket, every frame through it.
  ["relais/bare-actor", "relais", "bare-actor"],
  ["bare-actor/socketio", "bare-actor", "socketio"],
  ["bare-actor/bare", "bare-actor", "bare"],
  ["relais-node/socketio", "relais-node", "socketio"],
  ["relais-node/bare", "relais-node", "bare"],
  ["relais-node/bare-node", "relais-node", "bare-node"],
  ["relais-node/bare-node-actor", "relais-node", "bare-node-actor"],
  ["bare-node-actor/socketio", "bare-node-actor", "socketio"],
  ["bare-node-actor/bare-node", "bare-node-actor", "bare-node"],
  ["relais-node/relais", "relais-node", "relais"],
];

/**
 * Medians by kind, size and peer, and each ratio of deliveries/s: computed run by run from
 * turns made in the same run, then their median (a peer that did not run a kind at a size
 * has no figures, and no ratios, there).
 */
export function summarizeFanout(
  runs: FanoutRun[],
  kinds: Record<FanoutKind, number[]>,
  skipped: Partial<Record<FanoutKind, string>>,
  runCount: number,
) {
  const summary = [];
  for (const kind of FANOUT_KINDS) {
    if (skipped[kind]) continue;
    for (const size of kinds[kind] ?? []) {
      const at = (peer: Peer) =>
        runs.filter((r) => r.kind === kind && r.size === size && r.peer === peer);
      const ran = PEERS.filter((p) => at(p).length > 0);
      const ratio = (a: Peer, b: Peer) => {
        const per = [];
        for (let run = 1; run <= runCount; run++) {
          const x = at(a).find((r) => r.run === run);
          const y = at(b).find((r) => r.run === run);
          if (x && y) per.push(x.deliveriesPerSecond / y.deliveriesPerSecond);
        }
        return round(median(per));
      };
      const per = (f: (r: FanoutRun) => number) =>
        Object.fromEntries(ran.map((p) => [p, round(median(at(p).map(f)))]));
      const ratios = Object.fromEntries(
        RATIOS.filter(([, a, b]) => ran.includes(a) && ran.includes(b))
          .map(([name, a, b]) => [name, ratio(a, b)]),
      );
      summary.push({
        kind,
        size,
        deliveriesPerSecond: per((r) => r.deliveriesPerSecond),
        lastDeliveryMs: per((r) => r.lastDeliveryMs),
        serverCpuMicrosPerDelivery: per((r) => r.serverCpuMicrosPerDelivery),
        relaisAnswerMs: round(median(at("relais").map((r) => r.answerMs))),
        ...(ran.includes("relais-node")
          ? { relaisNodeAnswerMs: round(median(at("relais-node").map((r) => r.answerMs))) }
          : {}),
        ratios,
        lost: runs.filter((r) => r.kind === kind && r.size === size)
          .reduce((s, r) => s + r.expected - r.deliveries, 0),
      });
    }
  }
  return summary;
}
