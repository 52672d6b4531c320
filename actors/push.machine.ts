/**
 * The push actor: one per process, it runs the durable Web Push queue in the store.
 *
 * A queue runner (see `queue_runner.machine.ts`) without a circuit breaker: push services
 * are many and fail one by one, so each task backs off on its own.
 */

import {
  type QueuePeekOutput,
  type QueueRunnerContext,
  type QueueRunnerEvent,
  type QueueRunnerInput,
  queueRunnerMachine,
  type QueueRunnerSettings,
} from "./queue_runner.machine.ts";

/** Version of the context shape, stored with inspected snapshots. */
export const PUSH_MACHINE_VERSION = 1;

/** What a run of due tasks reports (see `src/push/pusher.ts`). */
export interface PushRunOutput {
  sent: number;
  /** Tasks finished without a push (connected, read, replaced, switched off, muted…). */
  skipped: number;
  /** Tasks moved past quiet hours. */
  deferred: number;
  /** Sends that failed and will be retried. */
  failed: number;
  /** Sends given up: refused for good, or out of attempts. */
  gaveUp: number;
  /** Subscriptions found expired (404, 410) and removed. */
  gone: number;
  lastError?: string;
  nextDueAt?: number;
  depth: number;
}

/** What a look at the queue reports. */
export type PushPeekOutput = QueuePeekOutput;

/** Settings of the push actor (no breaker). */
export type PushSettings = Omit<QueueRunnerSettings, "breakerThreshold" | "breakerCooldownMs">;

/** The run counters the push actor sums into its totals. */
export type PushCounter = "sent" | "skipped" | "deferred" | "failed" | "gaveUp" | "gone";

/** What the push actor remembers. */
export type PushContext = QueueRunnerContext<PushCounter, PushSettings>;

/** What the push actor is started with. */
export type PushInput = Omit<QueueRunnerInput<PushSettings>, "transport">;

/** Events the push actor understands. */
export type PushEvent = QueueRunnerEvent<"push">;

/** The push machine; its effects (`peek`, `runDue`) are provided at wiring time. */
export const pushMachine = queueRunnerMachine<PushCounter, "push", PushRunOutput, PushSettings>({
  id: "push",
  events: "push",
  version: PUSH_MACHINE_VERSION,
  counters: ["sent", "skipped", "deferred", "failed", "gaveUp", "gone"],
});
