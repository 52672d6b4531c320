/**
 * Wires user actors to their effects: sockets through the hub, state through the store,
 * counts through the metrics. This is where the user machine meets the adapters.
 *
 * The actor is the only way to a user's connections: every new item reaches them through
 * an `items.deliver` event of their actor. Items for one user that arrive in the same turn
 * (a fan-out, several events committed together) travel in one event, so a user costs one
 * step of the machine per turn, not one per item (a turn that reaches many users hands
 * them over in slices of `FLUSH_USERS`).
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
  type LiveItem,
  type Pacing,
  type RedeliverInput,
  type RedeliverOutput,
  type UserContext,
  type UserEvent,
  userMachine,
} from "../../actors/user.machine.ts";
import { redeliveryDelay } from "../../actors/user.redelivery.ts";
import { userTimers } from "../../actors/user.timers.ts";
import type { Metrics } from "../metrics.ts";
import type { Hub } from "../realtime/hub.ts";
import { encodeBatchFrame, encodeEventFrame, encodeFrame } from "../schemas/frames.ts";
import { toClientEnvelope } from "../schemas/envelope.ts";
import type { PresenceStatus } from "../schemas/frames.ts";
import type { DeliveryStore, EventStore, PendingAck } from "../store/store.ts";
import type { Span, Tracing } from "../tracing.ts";
import type { DeliveryRecorder } from "./recorder.ts";
import type { StreamHeads } from "./stream_heads.ts";

/** Where the fan-out wrote a live item's delivery record, when it says. */
const writtenOf = ({ item, version }: LiveItem) =>
  version === undefined ? undefined : { seq: item.seq, version };

/** User actors sharing one XState system (see `defineUserActors`). */
export const USER_ACTORS_PER_SYSTEM = 32;

/**
 * Users with items waiting for the end of the turn at most: past this, they are handed to
 * their actors at once. Items of one user still reach their actor in order; a user whose
 * items straddle a slice gets two steps instead of one.
 */
export const FLUSH_USERS = 256;

/** The timer functions XState schedules with (its `clock` option); tests give a simulated one. */
export interface ActorClock {
  setTimeout(fn: (...args: unknown[]) => void, timeout: number): unknown;
  clearTimeout(id: unknown): void;
}

/**
 * The part of the store user actors use: pending acks to load, redeliver and dead-letter,
 * and the envelopes they resend.
 */
export type UserActorStore =
  & Pick<DeliveryStore, "listPending" | "savePending" | "deadLetter">
  & Pick<EventStore, "getEnvelope">;

/** Dependencies of {@linkcode defineUserActors}. */
export interface UserActorDeps {
  registry: Registry;
  store: UserActorStore;
  /**
   * The users' stream heads: one lives as long as the user's actor; a dead letter waits
   * for the items sent before they were written.
   */
  heads?: Pick<StreamHeads, "open" | "close" | "whenStored">;
  hub: Hub;
  metrics: Metrics;
  /** Where deliveries are recorded. */
  recorder: Pick<DeliveryRecorder, "add">;
  ackBaseMs: number;
  idleMs: number;
  /** LOW grouping and the per-user push budget; none when absent. */
  pacing?: Pacing;
  onError(message: string, error: unknown): void;
  /** Told when a user's presence changes (messaging pushes it to their contacts). */
  onPresence?(userId: string, status: PresenceStatus): void;
  /** The clock of the actors' timers (default: the real one). */
  clock?: ActorClock;
  /** A `deliver` span per traced item and user, each socket send an event of it. */
  tracing?: Tracing;
}

/** What {@linkcode defineUserActors} gives back: the way in for new items. */
export interface UserActors {
  /**
   * Hands a new item to the user's live actor, if any, or to the one being built once it
   * is up (items arriving while a failed actor is rebuilt still go out live). Items are
   * queued per user and sent at the end of the current turn (a microtask), in order, as
   * one `items.deliver` per user; a user with no actor, live or being built, is offline
   * and gets them from their stream when they come back.
   */
  deliver(userId: string, live: LiveItem): void;
}

/** Registers how user actors are spawned, with their effects provided. */
export function defineUserActors(deps: UserActorDeps): UserActors {
  const { registry, store, hub, metrics, recorder, tracing } = deps;

  /** The span of a traced item's delivery to one user (none when the item is not traced). */
  function deliverSpan(userId: string, live: LiveItem): Span | undefined {
    if (!live.trace || !tracing) return undefined;
    return tracing.start("deliver", live.trace, {
      "relais.user": userId,
      "relais.item.id": live.item.id,
      "relais.seq": live.item.seq,
    });
  }

  /** Records one socket send as an event of the delivery span. */
  function traceSend(span: Span, conn: string) {
    const transport = hub.get(conn)?.outlet.transport;
    span.addEvent("send", {
      "relais.connection": conn,
      ...(transport ? { "relais.transport": transport } : {}),
    });
  }

  /** Ends a delivery span with how many sockets were sent the item. */
  function endDeliver(span: Span, sends: number) {
    span.setAttribute("relais.sends", sends);
    span.end();
  }

  /** Sends an item's frame to the user's connections and records the delivery. */
  function pushItem(userId: string, connections: string[], live: LiveItem) {
    const { item } = live;
    if (item.exp !== undefined && item.exp <= Date.now()) return;
    const span = deliverSpan(userId, live);
    let sent = 0;
    for (const conn of connections) {
      if (!hub.sendItem(conn, item.seq, live.frame)) continue;
      sent++;
      if (span) traceSend(span, conn);
    }
    if (span) endDeliver(span, sent);
    if (sent === 0) return;
    metrics.deliveries.inc(sent);
    metrics.latency.observe((Date.now() - live.acceptedAt) / 1000);
    // Conversation items have no per-event delivery record to update.
    if (!item.msg) recorder.add(item.id, userId, !item.durable, writtenOf(live));
  }

  async function redeliver({ userId, connections, due }: RedeliverInput) {
    const now = Date.now();
    const expired = due.filter((p) => p.exp !== undefined && p.exp <= now);
    const exhausted = due.filter((p) => !expired.includes(p) && p.attempts >= p.limit);
    const resend = due.filter((p) => !expired.includes(p) && !exhausted.includes(p));
    const resent: PendingAck[] = [];
    for (const p of resend) {
      const envelope = await store.getEnvelope(p.id);
      if (!envelope) continue;
      const frame = encodeEventFrame(p.seq, JSON.stringify(toClientEnvelope(envelope)));
      for (const conn of connections) hub.send(conn, frame);
      const attempts = p.attempts + 1;
      resent.push({ ...p, attempts, nextAt: now + redeliveryDelay(p, attempts, deps.ackBaseMs) });
    }
    if (resent.length > 0) {
      await store.savePending(userId, resent);
      metrics.redeliveries.inc(resent.length);
    }
    const ending = [...expired, ...exhausted];
    if (ending.length > 0) {
      // An item sent before its fan-out wrote it has no record to end yet: its dead letter
      // waits for the write, which would otherwise bring its pending ack back.
      await deps.heads?.whenStored(userId, Math.max(...ending.map((p) => p.seq)) + 1);
      const at = Date.now();
      if (expired.length > 0) await store.deadLetter(userId, expired, "expired", at);
      if (exhausted.length > 0) {
        await store.deadLetter(userId, exhausted, "ack limit reached", at);
        metrics.deadLetters.inc(exhausted.length);
      }
    }
    return { resent, dropped: ending.map((p) => p.seq) } satisfies RedeliverOutput;
  }

  const machine = userMachine.provide({
    actions: {
      sendItems: (_, { userId, connections, items }) => {
        for (const live of items) pushItem(userId, connections, live);
      },
      sendBatch: (_, { userId, connections, items }) => {
        const now = Date.now();
        const live = items.filter(({ item }) => item.exp === undefined || item.exp > now);
        if (live.length === 0 || connections.length === 0) return;
        const frame = encodeBatchFrame(live.map((l) => l.frame));
        const last = Math.max(...live.map((l) => l.item.seq));
        const spans = tracing && live.flatMap((l) => deliverSpan(userId, l) ?? []);
        let sent = 0;
        for (const conn of connections) {
          if (!hub.sendItem(conn, last, frame)) continue;
          sent++;
          if (spans) { for (const span of spans) traceSend(span, conn); }
        }
        if (spans) { for (const span of spans) endDeliver(span, sent); }
        if (sent === 0) return;
        metrics.deliveries.inc(sent * live.length);
        for (const l of live) {
          metrics.latency.observe((now - l.acceptedAt) / 1000);
          recorder.add(l.item.id, userId, !l.item.durable, writtenOf(l));
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
      reportError: (_, { userId, error }) =>
        deps.onError(`Redelivery failed for user "${userId}"`, error),
      announcePresence: (_, { userId, status }) => deps.onPresence?.(userId, status),
    },
    actors: {
      redeliver: fromPromise<RedeliverOutput, RedeliverInput>(({ input }) => redeliver(input)),
    },
  });

  // User actors share XState systems, a few at a time, as children (the `parent` option)
  // of a host actor. A system of its own (scheduler, maps, a dozen closures) costs each
  // user ~1.7 KB; one for every actor would make ending one cost O(all timers), as XState's
  // scheduler cancels an actor's timers by walking its system's. A child cannot be stopped
  // from outside: it ends by reaching its final state (passivation, or `user.stop`), which
  // cancels its own timers and leaves its siblings untouched, as does a failure. The
  // registry hears either through its subscription; the host ignores the copies XState
  // relays to it.
  let host: AnyActorRef | undefined;
  let hosted = 0;
  function nextHost(): AnyActorRef {
    if (!host || hosted >= USER_ACTORS_PER_SYSTEM) {
      host = createActor(
        fromCallback<AnyEventObject>(() => {}),
        deps.clock ? { clock: deps.clock } : {},
      ).start();
      hosted = 0;
    }
    hosted++;
    return host;
  }

  registry.define("user", async (userId) => {
    // The head first: items taken from it from now on reach this actor in order.
    const [pending] = await Promise.all([store.listPending(userId), deps.heads?.open(userId)]);
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
    // A child actor ends through its own final state.
    stop: (actor) => actor.send({ type: "user.stop" } satisfies UserEvent),
    timers: (snapshot) => userTimers(snapshot as { value: unknown; context: UserContext }),
    // The head ends with the actor: passivated, stopped, or failed with nobody to rebuild
    // it for (a connected user's actor is rebuilt at once and keeps the head).
    ended: (userId, failed) => {
      if (!deps.heads) return;
      if (!failed || hub.ofUser(userId).length === 0) deps.heads.close(userId);
    },
  });

  // Items waiting for the end of the turn, by user, in arrival order.
  let queued = new Map<string, LiveItem[]>();
  let flushing = false;

  function flush() {
    flushing = false;
    const batches = queued;
    queued = new Map();
    for (const [userId, items] of batches) {
      const event = { type: "items.deliver", items } satisfies UserEvent;
      const actor = registry.peek("user", userId);
      if (actor) {
        actor.send(event);
        continue;
      }
      // The actor is being built (a connection arriving, or a restart after a failure):
      // the items wait for it, in order with the others, instead of being lost.
      if (!registry.has("user", userId)) continue;
      registry.get("user", userId).then(
        (ready) => ready.send(event),
        (error) => deps.onError(`User actor "${userId}" could not take an item`, error),
      );
    }
  }

  return {
    deliver(userId, live) {
      const items = queued.get(userId);
      if (items) {
        items.push(live);
        return;
      }
      queued.set(userId, [live]);
      // A large fan-out goes out in slices as it is handed over: what waits for the end of
      // the turn stays small, and dies young instead of outliving collections.
      if (queued.size >= FLUSH_USERS) return flush();
      if (!flushing) {
        flushing = true;
        queueMicrotask(flush);
      }
    },
  };
}
