/**
 * Wires the push actor to its effects and registers it, so that it shows in the registry
 * and the debug endpoint as kind `push`, id `main`.
 */

import { createActor, fromPromise } from "xstate";
import {
  type PushEvent,
  pushMachine,
  type PushPeekOutput,
  type PushRunOutput,
  type PushSettings,
} from "../../actors/push.machine.ts";
import type { Registry } from "../../actors/registry.ts";
import type { Pusher } from "./pusher.ts";

/** The id of the one push actor of a process. */
export const PUSH_ID = "main";

/** Dependencies of {@linkcode definePushActor}. */
export interface PushActorDeps {
  registry: Registry;
  pusher: Pusher;
  settings: PushSettings;
  onError(message: string, error: unknown): void;
}

/** Registers how the push actor is spawned, with its effects provided. */
export function definePushActor(deps: PushActorDeps): void {
  const machine = pushMachine.provide({
    actors: {
      peek: fromPromise<PushPeekOutput>(() => deps.pusher.peek()),
      runDue: fromPromise<PushRunOutput, { limit: number }>(({ input }) =>
        deps.pusher.runDue(input.limit)
      ),
    },
    actions: {
      reportError: (_, { error }) => deps.onError("Push queue failed", error),
    },
  });
  deps.registry.define("push", (id) => {
    const actor = createActor(machine, {
      id: `push:${id}`,
      input: { settings: deps.settings },
    });
    // The registry starts it once it listens for its failures.
    return Promise.resolve(actor);
  }, {
    // The one push actor of the process: without it no push leaves, so it comes back at once.
    restart: () => true,
  });
}

/**
 * Tells the push actor a task was queued for `dueAt`. An actor that failed and was not
 * restarted is rebuilt by this message rather than missing it.
 */
export function notifyPusher(registry: Registry, dueAt: number): void {
  const event = { type: "push.queued", dueAt } satisfies PushEvent;
  const actor = registry.peek("push", PUSH_ID);
  if (actor) return actor.send(event);
  // No push actor defined (push is off) rejects: nothing to tell then.
  registry.get("push", PUSH_ID).then((a) => a.send(event), () => {});
}
