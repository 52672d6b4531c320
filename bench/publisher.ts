/**
 * The publisher: its own process, so that publishing competes with nothing in the harness.
 *
 * Every event carries its tag (`k`) and its send time (`t`, the shared clock of `_rpc.ts`)
 * in the payload; load generators compute publish→receive from it. Its id is time-ordered
 * (version 7, `_ids.ts`), as the platform's emitters make them. relais gets the envelope
 * (REALTIME unless asked otherwise) through `POST /v1/events`; the bare and Socket.IO peers
 * get the same client envelope (metadata and payload, no routing) through `POST /broadcast`.
 *
 * Run: `deno run --allow-net --allow-env bench/publisher.ts` (BENCH_SERVICE_KEY).
 */

import type { Peer } from "./_context.ts";
import { userIds, uuidv7 } from "./_ids.ts";
import { now, serveCommands } from "./_rpc.ts";

type Users = { prefix: string; from: number; to: number };

const serviceKey = Deno.env.get("BENCH_SERVICE_KEY") ?? "";

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

interface EventSpec {
  peer: Peer;
  url: string;
  tag: string;
  type?: "REALTIME" | "SYSTEM" | "NOTIFICATION";
  audience?: { type: string; targets: string[] };
  pad?: number;
}

/** Sends one event; `t` is when it was due (default: now, just before it leaves). */
async function send(spec: EventSpec & { due?: number }) {
  const t = spec.due ?? now();
  const client = {
    metadata: {
      // Time-ordered, as the platform's emitters make them.
      id: uuidv7(),
      priority: "NORMAL",
      type: spec.type ?? "REALTIME",
      emitter: "bench",
      source: "bench",
      topic: "bench.event",
      operation: "update",
    },
    payload: { k: spec.tag, t, pad: "x".repeat(spec.pad ?? 0) },
  };
  // relais on Deno and on Node take the same request.
  const relais = spec.peer === "relais" || spec.peer === "relais-node";
  const body = relais
    ? JSON.stringify({ ...client, routing: { audience: spec.audience } })
    : JSON.stringify(client);
  const res = await fetch(relais ? `${spec.url}/v1/events` : `${spec.url}/broadcast`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": serviceKey },
    body,
  });
  const text = await res.text();
  return {
    t,
    id: client.metadata.id,
    status: res.status,
    ms: now() - t,
    body: res.status >= 300 ? text : undefined,
  };
}

await serveCommands({
  /** Directory sync: `PUT /v1/users/:id` for each user, `concurrency` at a time. */
  async putUsers(args: { url: string; users: Users; body: unknown; concurrency: number }) {
    const users = userIds(args.users);
    const body = JSON.stringify(args.body);
    const started = now();
    let ok = 0;
    let failed = 0;
    let firstError: string | undefined;
    let next = 0;
    await Promise.all(Array.from({ length: args.concurrency }, async () => {
      while (next < users.length) {
        const user = users[next++];
        const res = await fetch(`${args.url}/v1/users/${encodeURIComponent(user)}`, {
          method: "PUT",
          headers: { "content-type": "application/json", "x-api-key": serviceKey },
          body,
        }).catch((e) => e as Error);
        if (res instanceof Error) {
          failed++;
          firstError ??= String(res);
        } else if (res.ok) {
          ok++;
          await res.body?.cancel();
        } else {
          failed++;
          firstError ??= `${res.status} ${(await res.text()).slice(0, 300)}`;
        }
      }
    }));
    return { ok, failed, ms: now() - started, firstError };
  },

  /**
   * One event to `users` (relais: audience USER) or to every socket (broadcast peers). The
   * targets are listed in id order, as a backend's query returns them, not in the order the
   * clients connected: that is the order of the users' state in relais's memory, a best
   * case no platform sends.
   */
  publish(args: Omit<EventSpec, "audience"> & { users?: Users; audience?: EventSpec["audience"] }) {
    const audience = args.audience ??
      (args.users ? { type: "USER", targets: userIds(args.users).sort() } : undefined);
    return send({ ...args, audience });
  },

  /**
   * Open loop: `rate` events per second for `durationMs`, each to one user picked in turn
   * (relais), over at most `connections` requests at a time, as a backend's HTTP pool would.
   * Each event is stamped with the time it was due, not the time it left: waiting for a free
   * connection counts in its latency, so an overloaded server cannot hide it. Beyond
   * `maxQueued` waiting events, an event is skipped and counted.
   */
  async rate(args: {
    url: string;
    rate: number;
    durationMs: number;
    users: Users;
    tagPrefix: string;
    connections: number;
    maxQueued: number;
  }) {
    const users = userIds(args.users);
    const total = Math.round((args.rate * args.durationMs) / 1000);
    const statuses: Record<string, number> = {};
    const answers: number[] = [];
    const queue: { n: number; due: number }[] = [];
    let inFlight = 0;
    let skipped = 0;
    let firstError: string | undefined;
    let settle: () => void = () => {};
    const allDone = new Promise<void>((r) => settle = r);
    let finished = 0;
    const pump = () => {
      while (inFlight < args.connections && queue.length > 0) {
        const { n, due } = queue.shift()!;
        inFlight++;
        send({
          peer: "relais",
          url: args.url,
          tag: `${args.tagPrefix}${n}`,
          due,
          audience: { type: "USER", targets: [users[(n * 7919) % users.length]] },
        }).then((r) => {
          statuses[r.status] = (statuses[r.status] ?? 0) + 1;
          answers.push(r.ms);
          if (r.body && !firstError) firstError = r.body.slice(0, 300);
        }, (e) => {
          statuses.error = (statuses.error ?? 0) + 1;
          firstError ??= String(e);
        }).finally(() => {
          inFlight--;
          if (++finished + skipped === total) settle();
          pump();
        });
      }
    };
    const started = now();
    let i = 0;
    while (i < total) {
      const due = Math.min(total, Math.floor(((now() - started) * args.rate) / 1000) + 1);
      while (i < due) {
        const n = i++;
        if (queue.length >= args.maxQueued) {
          skipped++;
          continue;
        }
        queue.push({ n, due: started + (n * 1000) / args.rate });
      }
      pump();
      await new Promise((r) => setTimeout(r, 1));
    }
    const sendingMs = now() - started;
    if (finished + skipped < total) await allDone;
    const handledMs = now() - started;
    answers.sort((a, b) => a - b);
    return {
      total,
      sent: total - skipped,
      skipped,
      statuses,
      firstError,
      sendingMs,
      achievedRate: ((total - skipped) * 1000) / sendingMs,
      /** Answered events per second, from the first send to the last answer. */
      handledRate: (finished * 1000) / handledMs,
      answerMs: { p50: quantile(answers, 0.5), p99: quantile(answers, 0.99) },
    };
  },
});
