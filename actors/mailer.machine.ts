/**
 * The mailer actor: one per process, it runs the durable mail queue in KV.
 *
 * A queue runner (see `queue_runner.machine.ts`) with a circuit breaker: after
 * `breakerThreshold` runs in a row that found the transport down, it stops sending for
 * `breakerCooldownMs`, then probes with one mail (half-open) before resuming.
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
export const MAILER_MACHINE_VERSION = 1;

/** What a run of due tasks reports (see `src/mail/mailer.ts`). */
export interface MailRunOutput {
  sent: number;
  /** Tasks finished without a mail (read in-app, email off, no address, expired…). */
  skipped: number;
  /** Tasks moved: into a digest, past quiet hours. */
  deferred: number;
  /** Sends that failed and will be retried. */
  failed: number;
  deadLettered: number;
  /** The transport failed: the run stopped early. */
  transportDown: boolean;
  lastError?: string;
  nextDueAt?: number;
  depth: number;
}

/** What a look at the queue reports. */
export type MailPeekOutput = QueuePeekOutput;

/** Settings of the mailer actor: a queue runner with a breaker. */
export interface MailerSettings extends QueueRunnerSettings {
  /** Runs in a row with the transport down that open the breaker. */
  breakerThreshold: number;
  breakerCooldownMs: number;
}

/** The run counters the mailer sums into its totals. */
export type MailCounter = "sent" | "skipped" | "deferred" | "failed" | "deadLettered";

/** What the mailer actor remembers. */
export type MailerContext = QueueRunnerContext<MailCounter, MailerSettings>;

/** What the mailer actor is started with. */
export type MailerInput = Required<QueueRunnerInput<MailerSettings>>;

/** Events the mailer actor understands. */
export type MailerEvent = QueueRunnerEvent<"mail">;

/** The mailer machine; its effects (`peek`, `runDue`) are provided at wiring time. */
export const mailerMachine = queueRunnerMachine<
  MailCounter,
  "mail",
  MailRunOutput,
  MailerSettings
>({
  id: "mailer",
  events: "mail",
  version: MAILER_MACHINE_VERSION,
  counters: ["sent", "skipped", "deferred", "failed", "deadLettered"],
});
