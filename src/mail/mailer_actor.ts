/**
 * Wires the mailer actor to its effects and registers it, so that it shows in the
 * registry and the debug endpoint as kind `mailer`, id `main`.
 */

import { createActor, fromPromise } from "xstate";
import {
  type MailerEvent,
  mailerMachine,
  type MailerSettings,
  type MailPeekOutput,
  type MailRunOutput,
} from "../../actors/mailer.machine.ts";
import type { Registry } from "../../actors/registry.ts";
import type { Metrics } from "../metrics.ts";
import type { Mailer } from "./mailer.ts";

/** The id of the one mailer actor of a process. */
export const MAILER_ID = "main";

/** Dependencies of {@linkcode defineMailerActor}. */
export interface MailerActorDeps {
  registry: Registry;
  mailer: Mailer;
  settings: MailerSettings;
  /** Where the queue depth and the breaker's state are exported. */
  metrics?: Pick<Metrics, "mailQueueDepth" | "mailBreakerOpen">;
  onError(message: string, error: unknown): void;
}

/** Registers how the mailer actor is spawned, with its effects provided. */
export function defineMailerActor(deps: MailerActorDeps): void {
  const machine = mailerMachine.provide({
    actors: {
      peek: fromPromise<MailPeekOutput>(() => deps.mailer.peek()),
      runDue: fromPromise<MailRunOutput, { limit: number }>(({ input }) =>
        deps.mailer.runDue(input.limit)
      ),
    },
    actions: {
      reportError: (_, { error }) => deps.onError("Mail queue failed", error),
    },
  });
  deps.registry.define("mailer", (id) => {
    const actor = createActor(machine, {
      id: `mailer:${id}`,
      input: { transport: deps.mailer.transportKind, settings: deps.settings },
    });
    const { metrics } = deps;
    if (metrics) {
      actor.subscribe({
        next: ({ context }) => {
          metrics.mailQueueDepth.set(context.queueDepth);
          metrics.mailBreakerOpen.set(context.breaker.state === "closed" ? 0 : 1);
        },
        // Failures are the registry's to supervise.
        error: () => {},
      });
    }
    // The registry starts it once it listens for its failures.
    return Promise.resolve(actor);
  }, {
    // The one mailer of the process: without it no mail leaves, so it comes back at once.
    restart: () => true,
  });
}

/**
 * Tells the mailer a task was queued for `dueAt` (it may sleep until then). A mailer that
 * failed and was not restarted is rebuilt by this message rather than missing it.
 */
export function notifyMailer(registry: Registry, dueAt: number): void {
  const event = { type: "mail.queued", dueAt } satisfies MailerEvent;
  const mailer = registry.peek("mailer", MAILER_ID);
  if (mailer) return mailer.send(event);
  // No mailer defined (mail is off) rejects: nothing to tell then.
  registry.get("mailer", MAILER_ID).then((actor) => actor.send(event), () => {});
}

/** The mailer's settings for a breaker of `threshold` runs and `cooldownMs`. */
export function mailerSettings(threshold: number, cooldownMs: number): MailerSettings {
  // 50 tasks a run; the queue is looked at again every 30 s at least.
  return {
    batchSize: 50,
    breakerThreshold: threshold,
    breakerCooldownMs: cooldownMs,
    pollMs: 30_000,
  };
}
