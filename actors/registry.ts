/**
 * The actor registry: spawns actors on demand, passivates idle ones, and lists and
 * inspects them for the ops endpoints.
 *
 * Memory stays bounded by active actors: a stopped actor's state is in KV, and the next
 * message rebuilds it through its kind's `spawn`.
 */

import type { AnyActorRef } from "xstate";

/** Actor kinds, as the admin API names them. */
export type ActorKind = "user" | "conversation" | "mailer";

/** How to build an actor of one kind from its id (loading its state from KV). */
export type Spawner = (id: string) => Promise<AnyActorRef>;

/** A timer an actor has scheduled. */
export interface PendingTimer {
  id: string;
  event: string;
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

/** One actor in detail: its XState snapshot and pending timers. */
export interface ActorDetail extends ActorSummary {
  context: unknown;
  timers: PendingTimer[];
}

/** The registry's interface. */
export interface Registry {
  /** Declares how actors of a kind are built. */
  define(kind: ActorKind, spawn: Spawner): void;
  /** The live actor, spawning it if needed. */
  get(kind: ActorKind, id: string): Promise<AnyActorRef>;
  /** The live actor, if there is one; never spawns. */
  peek(kind: ActorKind, id: string): AnyActorRef | undefined;
  /** Stops and forgets an actor (its state is in KV). */
  stop(kind: ActorKind, id: string): void;
  list(kind?: ActorKind): ActorSummary[];
  inspect(kind: ActorKind, id: string): ActorDetail | undefined;
  counts(): Record<ActorKind, number>;
  stopAll(): void;
}

const KINDS: ActorKind[] = ["user", "conversation", "mailer"];

function timersOf(actor: AnyActorRef): PendingTimer[] {
  const scheduled = actor.system.getSnapshot()._scheduledEvents;
  return Object.values(scheduled)
    .filter((t) => t.source.sessionId === actor.sessionId || t.target === actor)
    .map((t) => ({
      id: t.id,
      event: t.event.type,
      delay_ms: t.delay,
      due_at: new Date(t.startedAt + t.delay).toISOString(),
    }));
}

/** Creates an empty registry. */
export function createRegistry(): Registry {
  const spawners = new Map<ActorKind, Spawner>();
  const live = new Map<ActorKind, Map<string, AnyActorRef>>(KINDS.map((k) => [k, new Map()]));
  const starting = new Map<string, Promise<AnyActorRef>>();

  function peek(kind: ActorKind, id: string) {
    return live.get(kind)!.get(id);
  }

  function get(kind: ActorKind, id: string): Promise<AnyActorRef> {
    const existing = peek(kind, id);
    if (existing) return Promise.resolve(existing);
    const key = `${kind}\u0000${id}`;
    const inFlight = starting.get(key);
    if (inFlight) return inFlight;
    const spawn = spawners.get(kind);
    if (!spawn) return Promise.reject(new Error(`No spawner for actor kind "${kind}"`));
    const promise = spawn(id).then((actor) => {
      live.get(kind)!.set(id, actor);
      return actor;
    }).finally(() => starting.delete(key));
    starting.set(key, promise);
    return promise;
  }

  function stop(kind: ActorKind, id: string) {
    const actor = peek(kind, id);
    if (!actor) return;
    live.get(kind)!.delete(id);
    actor.stop();
  }

  function summary(kind: ActorKind, id: string, actor: AnyActorRef): ActorSummary {
    const snap = actor.getSnapshot();
    return { kind, id, status: snap.status, state: snap.value };
  }

  return {
    define: (kind, spawn) => void spawners.set(kind, spawn),
    get,
    peek,
    stop,
    list(kind) {
      const out: ActorSummary[] = [];
      for (const k of kind ? [kind] : KINDS) {
        for (const [id, actor] of live.get(k)!) out.push(summary(k, id, actor));
      }
      return out;
    },
    inspect(kind, id) {
      const actor = peek(kind, id);
      if (!actor) return undefined;
      return {
        ...summary(kind, id, actor),
        context: actor.getSnapshot().context,
        timers: timersOf(actor),
      };
    },
    counts: () =>
      Object.fromEntries(KINDS.map((k) => [k, live.get(k)!.size])) as Record<ActorKind, number>,
    stopAll() {
      for (const k of KINDS) for (const id of [...live.get(k)!.keys()]) stop(k, id);
    },
  };
}
