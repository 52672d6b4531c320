/**
 * The actor registry: spawns actors on demand, forgets those that end, lists and inspects
 * them for the ops endpoints, and supervises them.
 *
 * Memory stays bounded by active actors: an actor that passivates reaches a final state,
 * the registry hears it through its subscription (`complete`) and forgets it; its state is
 * in KV, and the next message rebuilds it through its kind's `spawn`. The registry only
 * uses XState's public API: `subscribe`, `getSnapshot`, `send`, `start` and `stop`.
 *
 * Supervision (Erlang/OTP style, one for one): an actor that fails unexpectedly (an
 * action that throws, an invoked promise that rejects with no `onError`) is stopped by
 * XState; the registry hears it through its error observer, logs it with its kind and id,
 * counts it in `relais_actor_failures_total{kind}`, forgets it, tells the kind's
 * `onFailure`, and rebuilds it at once when the kind's `restart` says so (at most
 * `maxRestarts` times per `restartWindowMs` for one actor, so a poisoned state cannot
 * spin). Whatever the policy, the next `get` rebuilds a forgotten actor from the store.
 * Expected errors belong in the machines' `onError` transitions; this is for the others.
 */

import type { AnyActorRef } from "xstate";
import { getLog } from "../src/log.ts";
import type { Metrics } from "../src/metrics.ts";
import { ACTOR_KINDS, type ActorKind } from "./kinds.ts";

export { ACTOR_KINDS, type ActorKind } from "./kinds.ts";

/**
 * How to build an actor of one kind from its id (loading its state from KV). The actor
 * should be returned unstarted: the registry subscribes to its errors, then starts it, so
 * that even a failure in its first step is supervised.
 */
export type Spawner = (id: string) => Promise<AnyActorRef>;

/** What the registry does when an actor of a kind fails. */
export interface Supervision {
  /** Whether to rebuild the failed actor at once rather than on its next `get`. */
  restart?(id: string): boolean;
  /** Told once the failed actor is forgotten (for example to answer its waiting callers). */
  onFailure?(id: string, error: unknown): void;
}

/** A timer an actor's machine says it is waiting on. */
export interface ActorTimer {
  /** The machine's name for the delay. */
  id: string;
  /** What happens when it fires. */
  event: string;
  /** When it fires, in epoch milliseconds. */
  dueAt: number;
}

/** How the registry handles the actors of one kind: supervision, stopping, inspection. */
export interface ActorKindOptions extends Supervision {
  /**
   * Asks an actor to end (default: `actor.stop()`, for root actors). An actor that is a
   * child of another one cannot be stopped from outside; it ends on an event of its own
   * that takes it to its final state.
   */
  stop?(actor: AnyActorRef): void;
  /** The timers a snapshot of this kind is waiting on, derived from its state and context. */
  timers?(snapshot: { value: unknown; context: unknown }): ActorTimer[];
  /**
   * Told when an actor of this kind ends: `failed` when it failed (whether or not it is
   * rebuilt), otherwise when it reached its final state or was stopped. The registry's own
   * subscription tells it: a second one would cost every actor another observer.
   */
  ended?(id: string, failed: boolean): void;
}

/** Options of {@linkcode createRegistry}. */
export interface RegistryOptions {
  /** Where failures are counted (`relais_actor_failures_total{kind}`). */
  metrics?: Pick<Metrics, "actorFailures">;
  /** Immediate restarts allowed to one actor within `restartWindowMs` (default 3). */
  maxRestarts?: number;
  /** The window of `maxRestarts` (default 10 s). */
  restartWindowMs?: number;
}

/** A timer an actor is waiting on, as the admin API shows it. */
export interface PendingTimer {
  /** The machine's name for the delay. */
  id: string;
  /** What happens when it fires. */
  event: string;
  /** Milliseconds left before it fires (0 when due). */
  delay_ms: number;
  due_at: string;
}

/** One actor as the admin API shows it. */
export interface ActorSummary {
  kind: ActorKind;
  id: string;
  status: string;
  state: unknown;
}

/**
 * One actor in detail: its XState snapshot and, for kinds whose machine tells them, the
 * timers it is waiting on (absent for the others).
 */
export interface ActorDetail extends ActorSummary {
  context: unknown;
  timers?: PendingTimer[];
}

/** The registry's interface. */
export interface Registry {
  /** Declares how actors of a kind are built, supervised, stopped and inspected. */
  define(kind: ActorKind, spawn: Spawner, options?: ActorKindOptions): void;
  /** The live actor, spawning it if needed (a failed or stopped one is rebuilt). */
  get(kind: ActorKind, id: string): Promise<AnyActorRef>;
  /** The live actor, if there is one; never spawns. */
  peek(kind: ActorKind, id: string): AnyActorRef | undefined;
  /** Whether the actor is live or being spawned (a `get` would not start a new build). */
  has(kind: ActorKind, id: string): boolean;
  /** Asks an actor to end and forgets it (its state is in KV). */
  stop(kind: ActorKind, id: string): void;
  list(kind?: ActorKind): ActorSummary[];
  inspect(kind: ActorKind, id: string): ActorDetail | undefined;
  counts(): Record<ActorKind, number>;
  /** Stops every actor; failures after this are no longer restarted. */
  stopAll(): void;
}

/** Timers as the admin API shows them, soonest first. */
function showTimers(timers: ActorTimer[], now: number): PendingTimer[] {
  return [...timers].sort((a, b) => a.dueAt - b.dueAt).map((t) => ({
    id: t.id,
    event: t.event,
    delay_ms: Math.max(0, t.dueAt - now),
    due_at: new Date(t.dueAt).toISOString(),
  }));
}

/** An error as one log field: its name and message, bounded (never its data). */
function describe(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}

/** An id as one log field, bounded: ids come from input. */
const clip = (id: string) => (id.length > 200 ? `${id.slice(0, 200)}…` : id);

/** Creates an empty registry. */
export function createRegistry(options: RegistryOptions = {}): Registry {
  const log = getLog("actors");
  const maxRestarts = options.maxRestarts ?? 3;
  const restartWindowMs = options.restartWindowMs ?? 10_000;
  const spawners = new Map<ActorKind, { spawn: Spawner; options: ActorKindOptions }>();
  const live = new Map<ActorKind, Map<string, AnyActorRef>>(ACTOR_KINDS.map((k) => [k, new Map()]));
  const starting = new Map<string, Promise<AnyActorRef>>();
  // Recent immediate restarts of each actor, oldest first, for the restart intensity.
  const restarts = new Map<string, number[]>();
  let closed = false;

  const keyOf = (kind: ActorKind, id: string) => `${kind}\u0000${id}`;

  /** The live actor; one that is no longer running is forgotten rather than returned. */
  function peek(kind: ActorKind, id: string) {
    const actor = live.get(kind)!.get(id);
    if (actor && actor.getSnapshot().status !== "active") {
      live.get(kind)!.delete(id);
      return undefined;
    }
    return actor;
  }

  /** Whether one more immediate restart of the actor fits in the restart intensity. */
  function mayRestart(kind: ActorKind, id: string): boolean {
    const now = Date.now();
    // Failures are rare: dropping every history older than the window keeps the map small.
    for (const [key, times] of restarts) {
      if (times.every((t) => now - t >= restartWindowMs)) restarts.delete(key);
    }
    const key = keyOf(kind, id);
    const recent = (restarts.get(key) ?? []).filter((t) => now - t < restartWindowMs);
    if (recent.length >= maxRestarts) return false;
    restarts.set(key, [...recent, now]);
    return true;
  }

  /** An actor stopped on an error: log, count, forget, tell its kind, maybe rebuild it. */
  function failed(
    kind: ActorKind,
    id: string,
    actor: AnyActorRef,
    error: unknown,
    started: boolean,
  ) {
    // This runs inside XState's error reporting: whatever throws here must not escape.
    try {
      const forgotten = live.get(kind)!.get(id) === actor;
      if (forgotten) live.get(kind)!.delete(id);
      options.metrics?.actorFailures.inc({ kind });
      log.error("Actor failed and was stopped", {
        kind,
        id: clip(id),
        phase: started ? "running" : "starting",
        error: describe(error),
      });
      // A failure while starting rejects the `get` that spawned it; nothing else to do.
      if (!started || !forgotten) return;
      const { options: supervision } = spawners.get(kind)!;
      try {
        supervision.onFailure?.(id, error);
      } catch (e) {
        log.error("Actor failure handler failed", { kind, id: clip(id), error: describe(e) });
      }
      if (closed || !supervision.restart?.(id)) return;
      if (!mayRestart(kind, id)) {
        log.error("Actor failed too often to be restarted at once", {
          kind,
          id: clip(id),
          max_restarts: maxRestarts,
          window_ms: restartWindowMs,
        });
        return;
      }
      get(kind, id).catch((e) =>
        log.error("Actor could not be restarted", { kind, id: clip(id), error: describe(e) })
      );
    } catch (e) {
      try {
        log.error("Actor supervision failed", { kind, error: describe(e) });
      } catch { /* nothing left to report to */ }
    }
  }

  /** Tells the kind's `ended`; this runs inside XState's reporting, so nothing escapes. */
  function tellEnded(kind: ActorKind, id: string, failed: boolean) {
    const ended = spawners.get(kind)?.options.ended;
    if (!ended) return;
    try {
      ended(id, failed);
    } catch (e) {
      try {
        log.error("Actor end handler failed", { kind, id: clip(id), error: describe(e) });
      } catch { /* nothing left to report to */ }
    }
  }

  /** Subscribes to the actor's end and failures, then starts it. */
  function supervise(kind: ActorKind, id: string, actor: AnyActorRef): AnyActorRef {
    let started = false;
    // No `next`: snapshots are read when needed. The error observer is required (an
    // observer without one makes XState rethrow the error).
    actor.subscribe({
      error: (error) => {
        tellEnded(kind, id, true);
        failed(kind, id, actor, error, started);
      },
      // A final state reached (passivation) or a stop: forget it, unless already replaced.
      complete: () => {
        tellEnded(kind, id, false);
        if (live.get(kind)!.get(id) === actor) live.get(kind)!.delete(id);
      },
    });
    actor.start();
    const snapshot = actor.getSnapshot();
    if (snapshot.status === "error") throw snapshot.error;
    started = true;
    return actor;
  }

  function get(kind: ActorKind, id: string): Promise<AnyActorRef> {
    const existing = peek(kind, id);
    if (existing) return Promise.resolve(existing);
    const key = keyOf(kind, id);
    const inFlight = starting.get(key);
    if (inFlight) return inFlight;
    const entry = spawners.get(kind);
    if (!entry) return Promise.reject(new Error(`No spawner for actor kind "${kind}"`));
    const promise = entry.spawn(id).then((actor) => {
      supervise(kind, id, actor);
      live.get(kind)!.set(id, actor);
      return actor;
    }).finally(() => starting.delete(key));
    starting.set(key, promise);
    return promise;
  }

  function stop(kind: ActorKind, id: string) {
    const actor = live.get(kind)!.get(id);
    if (!actor) return;
    live.get(kind)!.delete(id);
    const ask = spawners.get(kind)?.options.stop;
    if (ask) ask(actor);
    else actor.stop();
  }

  function summary(kind: ActorKind, id: string, actor: AnyActorRef): ActorSummary {
    const snap = actor.getSnapshot();
    return { kind, id, status: snap.status, state: snap.value };
  }

  return {
    define: (kind, spawn, options = {}) => void spawners.set(kind, { spawn, options }),
    get,
    peek,
    has: (kind, id) => peek(kind, id) !== undefined || starting.has(keyOf(kind, id)),
    stop,
    list(kind) {
      const out: ActorSummary[] = [];
      for (const k of kind ? [kind] : ACTOR_KINDS) {
        for (const [id, actor] of live.get(k)!) out.push(summary(k, id, actor));
      }
      return out;
    },
    inspect(kind, id) {
      const actor = peek(kind, id);
      if (!actor) return undefined;
      const snapshot = actor.getSnapshot();
      const timers = spawners.get(kind)?.options.timers;
      return {
        ...summary(kind, id, actor),
        context: snapshot.context,
        ...(timers ? { timers: showTimers(timers(snapshot), Date.now()) } : {}),
      };
    },
    counts: () =>
      Object.fromEntries(ACTOR_KINDS.map((k) => [k, live.get(k)!.size])) as Record<
        ActorKind,
        number
      >,
    stopAll() {
      closed = true;
      for (const k of ACTOR_KINDS) for (const id of [...live.get(k)!.keys()]) stop(k, id);
    },
  };
}
