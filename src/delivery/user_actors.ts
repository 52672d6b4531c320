/**
 * Wires user actors to their effects: sockets through the hub, state through the store,
 * counts through the metrics. This is where the user machine meets the adapters.
 */

import { createActor, fromPromise } from "xstate";
import type { Registry } from "../../actors/registry.ts";
import {
  backoffDelay,
  type RedeliverInput,
  type RedeliverOutput,
  userMachine,
} from "../../actors/user.machine.ts";
import type { Metrics } from "../metrics.ts";
import type { Hub } from "../realtime/hub.ts";
import { encodeEventFrame } from "../schemas/frames.ts";
import { toClientEnvelope } from "../schemas/envelope.ts";
import type { PendingAck, Store } from "../store/store.ts";
import type { DeliveryRecorder } from "./recorder.ts";

/** Dependencies of {@linkcode defineUserActors}. */
export interface UserActorDeps {
  registry: Registry;
  store: Store;
  hub: Hub;
  metrics: Metrics;
  recorder: DeliveryRecorder;
  ackBaseMs: number;
  idleMs: number;
  onError(message: string, error: unknown): void;
}

/** Registers how user actors are spawned, with their effects provided. */
export function defineUserActors(deps: UserActorDeps): void {
  const { registry, store, hub, metrics, recorder } = deps;

  async function redeliver({ userId, connections, due }: RedeliverInput) {
    const now = Date.now();
    const expired = due.filter((p) => p.exp !== undefined && p.exp <= now);
    const exhausted = due.filter((p) => !expired.includes(p) && p.attempts >= p.limit);
    const resend = due.filter((p) => !expired.includes(p) && !exhausted.includes(p));
    if (expired.length > 0) await store.deadLetter(userId, expired, "expired", now);
    if (exhausted.length > 0) {
      await store.deadLetter(userId, exhausted, "ack limit reached", now);
      metrics.deadLetters.inc(exhausted.length);
    }
    const resent: PendingAck[] = [];
    for (const p of resend) {
      const envelope = await store.getEnvelope(p.id);
      if (!envelope) continue;
      const frame = encodeEventFrame(p.seq, JSON.stringify(toClientEnvelope(envelope)));
      for (const conn of connections) hub.send(conn, frame);
      const attempts = p.attempts + 1;
      resent.push({ ...p, attempts, nextAt: now + backoffDelay(p, attempts, deps.ackBaseMs) });
    }
    if (resent.length > 0) {
      await store.savePending(userId, resent);
      metrics.redeliveries.inc(resent.length);
    }
    return {
      resent,
      dropped: [...expired, ...exhausted].map((p) => p.seq),
    } satisfies RedeliverOutput;
  }

  const machine = userMachine.provide({
    actions: {
      sendFrame: (_, { userId, connections, live }) => {
        const { item } = live;
        if (item.exp !== undefined && item.exp <= Date.now()) return;
        let sent = 0;
        for (const conn of connections) if (hub.sendItem(conn, item.seq, live.frame)) sent++;
        if (sent === 0) return;
        metrics.deliveries.inc(sent);
        metrics.latency.observe((Date.now() - live.acceptedAt) / 1000);
        recorder.add(item.id, userId);
      },
      passivate: (_, { userId }) => {
        // Stopping from inside the actor's own transition is deferred to the next turn.
        setTimeout(() => {
          const actor = registry.peek("user", userId);
          if (actor?.getSnapshot().matches({ presence: "offline" })) {
            registry.stop("user", userId);
          }
        }, 0);
      },
      reportError: (_, { userId, error }) =>
        deps.onError(`Redelivery failed for user "${userId}"`, error),
    },
    actors: {
      redeliver: fromPromise<RedeliverOutput, RedeliverInput>(({ input }) => redeliver(input)),
    },
  });

  registry.define("user", async (userId) => {
    const pending = await store.listPending(userId);
    const actor = createActor(machine, {
      id: `user:${userId}`,
      input: { userId, pending, ackBaseMs: deps.ackBaseMs, idleMs: deps.idleMs },
    });
    actor.start();
    return actor;
  });
}
