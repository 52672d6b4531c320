/**
 * Wires user actors to their effects: sockets through the hub, state through the store,
 * counts through the metrics. This is where the user machine meets the adapters.
 */

import {
  type AnyActorRef,
  type AnyEventObject,
  createActor,
  fromCallback,
  fromPromise,
} from "xstate";
import type { Registry } from "../../actors/registry.ts";
import {
  backoffDelay,
  type LiveItem,
  type Pacing,
  plainPushAllowed,
  type RedeliverInput,
  type RedeliverOutput,
  type UserContext,
  type UserEvent,
  userMachine,
} from "../../actors/user.machine.ts";
import type { Metrics } from "../metrics.ts";
import type { Hub } from "../realtime/hub.ts";
import { encodeBatchFrame, encodeEventFrame, encodeFrame } from "../schemas/frames.ts";
import { toClientEnvelope } from "../schemas/envelope.ts";
import type { PresenceStatus } from "../schemas/frames.ts";
import type { PendingAck, Store } from "../store/store.ts";
import type { DeliveryRecorder } from "./recorder.ts";

/** User actors sharing one XState system (see `defineUserActors`). */
export const USER_ACTORS_PER_SYSTEM = 32;

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

/** What {@linkcode defineUserActors} gives back: the way in for new items. */
export interface UserActors {
  /**
   * Hands a new item to the user's live actor, if any, or to the one being built once it
   * is up (items arriving while a failed actor is rebuilt still go out live). A plain
   * item (see `plainPushAllowed`) goes straight to the user's connections, counted against
   * the push budget, without a step of the machine; every other item is an `item.deliver`.
   */
  deliver(userId: string, live: LiveItem): void;
}

/** Registers how user actors are spawned, with their effects provided. */
export function defineUserActors(deps: UserActorDeps): UserActors {
  const { registry, store, hub, metrics, recorder } = deps;
  // Pushes made without a step of the machine in the user's current budget window. The
  // machine's `overBudget` guard adds them to its own count and its `budgetReset` action
  // clears them when the window ends.
  const outsidePushes = new Map<string, number>();

  /** Sends an item's frame to the user's connections and records the delivery. */
  function pushItem(userId: string, connections: string[], live: LiveItem) {
    const { item } = live;
    if (item.exp !== undefined && item.exp <= Date.now()) return;
    let sent = 0;
    for (const conn of connections) if (hub.sendItem(conn, item.seq, live.frame)) sent++;
    if (sent === 0) return;
    metrics.deliveries.inc(sent);
    metrics.latency.observe((Date.now() - live.acceptedAt) / 1000);
    // Conversation items have no per-event delivery record to update.
    if (!item.msg) recorder.add(item.id, userId);
  }

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
      sendFrame: (_, { userId, connections, live }) => pushItem(userId, connections, live),
      budgetReset: (_, { userId }) => void outsidePushes.delete(userId),
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
    guards: {
      overBudget: ({ context, event }) =>
        event.type === "item.deliver" && event.live.pace !== "critical" &&
        Object.keys(context.connections).length > 0 &&
        context.pushed + (outsidePushes.get(context.userId) ?? 0) >= context.pacing.pushBudget,
    },
  });

  // User actors share XState systems, a few at a time, as children of a host actor. A
  // system of its own (scheduler, maps, a dozen closures) costs each user ~1.7 KB; one for
  // every actor would make stopping one cost O(all timers), as XState's scheduler cancels an
  // actor's timers by walking its system's. A failing child stops alone (its own timers
  // cancelled, its siblings untouched); the registry, which supervises it, hears the error
  // through its observer, and the host ignores the copy XState relays to it.
  let host: AnyActorRef | undefined;
  let hosted = 0;
  function nextHost(): AnyActorRef {
    if (!host || hosted >= USER_ACTORS_PER_SYSTEM) {
      host = createActor(fromCallback<AnyEventObject>(() => {})).start();
      hosted = 0;
    }
    hosted++;
    return host;
  }

  registry.define("user", async (userId) => {
    const pending = await store.listPending(userId);
    const actor = createActor(machine, {
      id: `user:${userId}`,
      parent: nextHost(),
      input: {
        userId,
        pending,
        ackBaseMs: deps.ackBaseMs,
        idleMs: deps.idleMs,
        ...(deps.pacing ? { pacing: deps.pacing } : {}),
      },
    });
    // XState refuses `stop()` on a child; the registry owns this actor's life cycle, so it
    // stops as a root actor would (its timers and invoked redelivery with it).
    const internal = actor as unknown as { _stop(): unknown };
    actor.stop = () => (internal._stop(), actor);
    // A new actor starts with a fresh budget window.
    outsidePushes.delete(userId);
    // The hub knows the user's connections: an actor rebuilt while they stay open (after a
    // failure, or while one closed during the build) starts with the right ones. Events
    // sent before `start` wait in its mailbox; a `conn.open` repeated by the caller that
    // attaches a connection changes nothing.
    for (const conn of hub.ofUser(userId)) {
      actor.send({ type: "conn.open", connId: conn.id } satisfies UserEvent);
    }
    // The registry starts it once it listens for its failures.
    return actor;
  }, {
    // A connected user gets their actor back at once, rebuilt from the store; an offline
    // one on their next connection.
    restart: (userId) => hub.ofUser(userId).length > 0,
  });

  /** Hands a new item to a running actor: around the machine when plain, else as an event. */
  function deliverTo(actor: AnyActorRef, userId: string, live: LiveItem) {
    const state = actor.getSnapshot() as { status: string; value: unknown; context: UserContext };
    const outside = outsidePushes.get(userId) ?? 0;
    if (state.status === "active" && plainPushAllowed(state, live, outside)) {
      outsidePushes.set(userId, outside + 1);
      pushItem(userId, Object.keys(state.context.connections), live);
      return;
    }
    actor.send({ type: "item.deliver", live } satisfies UserEvent);
  }

  return {
    deliver(userId, live) {
      const actor = registry.peek("user", userId);
      if (actor) return deliverTo(actor, userId, live);
      // The actor is being built (a connection arriving, or a restart after a failure):
      // the item waits for it, in order with the others, instead of being lost.
      if (!registry.has("user", userId)) return;
      registry.get("user", userId).then(
        (ready) => deliverTo(ready, userId, live),
        (error) => deps.onError(`User actor "${userId}" could not take an item`, error),
      );
    },
  };
}
