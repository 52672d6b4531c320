/**
 * Wires the retention actor to the store and registers it, so that it shows in the
 * registry and the debug endpoint as kind `retention`, id `main`.
 */

import { createActor, fromPromise } from "xstate";
import { RETENTION_KINDS } from "../store/store.ts";
import type { ActorTimer, Registry } from "../../actors/registry.ts";
import {
  type RetentionContext,
  retentionMachine,
  type RetentionSettings,
  type SweepStepInput,
  type SweepStepOutput,
} from "../../actors/retention.machine.ts";
import type { RetentionStore } from "../store/store.ts";

/** The id of the one retention actor of a process. */
export const RETENTION_ID = "main";

/** Dependencies of {@linkcode defineRetentionActor}. */
export interface RetentionActorDeps {
  registry: Registry;
  store: RetentionStore;
  settings: RetentionSettings;
  /** The clock the cut of each step is taken from (`Date.now` by default). */
  now?: () => number;
  onError(message: string, error: unknown): void;
}

/** The timer a retention snapshot waits on: the next round, while it waits for it. */
export function retentionTimers(snapshot: { value: unknown; context: unknown }): ActorTimer[] {
  const { nextRoundAt } = snapshot.context as RetentionContext;
  if (snapshot.value !== "waiting" || nextRoundAt === undefined) return [];
  return [{ id: "untilNextRound", event: "retention.round", dueAt: nextRoundAt }];
}

/** Registers how the retention actor is spawned, with its effect provided. */
export function defineRetentionActor(deps: RetentionActorDeps): void {
  const now = deps.now ?? Date.now;
  const machine = retentionMachine.provide({
    actors: {
      sweep: fromPromise<SweepStepOutput, SweepStepInput>(({ input }) =>
        deps.store.sweep(input.kind, now() - input.retentionMs, {
          limit: input.limit,
          ...(input.cursor === undefined ? {} : { cursor: input.cursor }),
        })
      ),
    },
    actions: {
      reportError: (_, { error }) => deps.onError("Retention sweep failed", error),
    },
  });
  deps.registry.define("retention", (id) => {
    const actor = createActor(machine, {
      id: `retention:${id}`,
      input: { settings: deps.settings },
    });
    // The registry starts it once it listens for its failures.
    return Promise.resolve(actor);
  }, {
    // The one sweeper of the process: without it the store grows, so it comes back at once.
    restart: () => true,
    timers: retentionTimers,
  });
}

/**
 * The sweeper's settings for `periods` swept every `sweepMs`: every kind in the store's
 * order, 200 records a batch with a 50 ms pause, the first round within 30 s of start and a
 * failed round retried within a minute.
 */
export function retentionSettings(
  periods: RetentionSettings["periods"],
  sweepMs: number,
): RetentionSettings {
  return {
    periods,
    order: RETENTION_KINDS,
    sweepMs,
    firstRoundMs: Math.min(sweepMs, 30_000),
    batchSize: 200,
    pauseMs: 50,
    retryMs: Math.min(sweepMs, 60_000),
  };
}
