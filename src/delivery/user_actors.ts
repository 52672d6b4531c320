/**
 * Wires user actors to their effects: sockets through the hub, state through the store,
 * counts through the metrics. This is where the user machine meets the adapters.
 */

import { createActor, fromPromise } from "xstate";
import type { Registry } from "../../actors/registry.ts";
import {
  backoffDelay,
  type Pacing,
  type RedeliverInput,
  type RedeliverOutput,
  userMachine,
} from "../../actors/user.machine.ts";
import type { Metrics } from "../metrics.ts";
import type { Hub } from "../realtime/hub.ts";
import { encodeBatchFrame, encodeEventFrame, encodeFrame } from "../schemas/frames.ts";
import { toClientEnvelope } from "../schemas/envelope.ts";
import type { PresenceStatus } from "../schemas/frames.ts";
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
  /** LOW grouping and the per-user push budget; none when absent. */
  pacing?: Pacing;
  onError(message: string, error: unknown): void;
  /** Told when a user's presence changes (messaging pushes it to their contacts). */
  onPresence?(userId: string, status: PresenceStatus): void;
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
        // Conversation items have no per-event delivery record to update.
        if (!item.msg) recorder.add(item.id, userId);
      },
      sendBatch: (_, { userId, connections, items }) => {
        const now = Date.now();
        const live = items.filter(({ item }) => item.exp === undefined || item.exp > now);
        if (live.length === 0 || connections.length === 0) return;
        const frame = encodeBatchFrame(live.map((l) => l.frame));
        const last = Math.max(...live.map((l) => l.item.seq));
        let sent = 0;
        for (const conn of connections) if (hub.sendItem(conn, last, frame)) sent++;
        if (sent === 0) return;
        metrics.deliveries.inc(sent * live.length);
        for (const l of live) {
          metrics.latency.observe((now - l.acceptedAt) / 1000);
          recorder.add(l.item.id, userId);
        }
      },
      sendSummary: (_, { connections, count, firstSeq, lastSeq }) => {
        if (count === 0) return;
        const frame = encodeFrame({
          type: "summary",
          count,
          first_seq: firstSeq,
          last_seq: lastSeq,
        });
        for (const conn of connections) hub.send(conn, frame);
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
      announcePresence: (_, { userId, status }) => deps.onPresence?.(userId, status),
    },
    actors: {
      redeliver: fromPromise<RedeliverOutput, RedeliverInput>(({ input }) => redeliver(input)),
    },
  });

  registry.define("user", async (userId) => {
    const pending = await store.listPending(userId);
    const actor = createActor(machine, {
      id: `user:${userId}`,
      input: {
        userId,
        pending,
        ackBaseMs: deps.ackBaseMs,
        idleMs: deps.idleMs,
        ...(deps.pacing ? { pacing: deps.pacing } : {}),
      },
    });
    actor.start();
    return actor;
  });
}
