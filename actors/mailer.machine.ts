/**
 * The mailer actor: one per process, it runs the durable mail queue in KV.
 *
 * It sleeps until the earliest task is due (or a new one is queued), runs the due tasks,
 * and keeps a circuit breaker: after `breakerThreshold` runs in a row that found the
 * transport down, it stops sending for `breakerCooldownMs`, then probes with one mail
 * (half-open) before resuming. The queue itself (tasks, attempts, backoff, dead letters)
 * lives in KV, so the actor is only timers plus what the debug endpoint shows.
 */

import { assign, fromPromise, setup } from "xstate";

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
export interface MailPeekOutput {
  nextDueAt?: number;
  depth: number;
}

/** Settings of the mailer actor. */
export interface MailerSettings {
  /** Tasks per run. */
  batchSize: number;
  /** Runs in a row with the transport down that open the breaker. */
  breakerThreshold: number;
  breakerCooldownMs: number;
  /** The longest sleep: the queue is looked at again at least this often. */
  pollMs: number;
}

/** What the mailer actor remembers. */
export interface MailerContext {
  version: number;
  transport: string;
  queueDepth: number;
  /** When the earliest task is due, epoch ms. */
  nextDueAt?: number;
  /** The earliest due time queued since the current run started (it may have missed it). */
  queuedSinceRun?: number;
  breaker: { state: "closed" | "open" | "half-open"; failures: number; openedAt?: number };
  lastError?: string;
  totals: { sent: number; skipped: number; deferred: number; failed: number; deadLettered: number };
  settings: MailerSettings;
}

/** What the mailer actor is started with. */
export interface MailerInput {
  transport: string;
  settings: MailerSettings;
}

/** Events the mailer actor understands. */
export type MailerEvent =
  | { type: "mail.queued"; dueAt: number }
  | { type: "mail.wake" };

const addTotals = (t: MailerContext["totals"], o: MailRunOutput) => ({
  sent: t.sent + o.sent,
  skipped: t.skipped + o.skipped,
  deferred: t.deferred + o.deferred,
  failed: t.failed + o.failed,
  deadLettered: t.deadLettered + o.deadLettered,
});

const earliest = (a: number | undefined, b: number) => (a === undefined ? b : Math.min(a, b));

/** The next due time after a run: the queue's answer, or a task queued during the run. */
const nextAfterRun = (context: MailerContext, output: MailRunOutput) =>
  context.queuedSinceRun === undefined
    ? output.nextDueAt
    : earliest(output.nextDueAt, context.queuedSinceRun);

/** The context after a run that opens the breaker. */
const tripped = (context: MailerContext, output: MailRunOutput) => ({
  totals: addTotals(context.totals, output),
  queueDepth: output.depth,
  nextDueAt: nextAfterRun(context, output),
  lastError: output.lastError,
  breaker: {
    state: "open" as const,
    failures: context.breaker.failures + 1,
    openedAt: Date.now(),
  },
});

/** The mailer machine; its effects (`peek`, `runDue`) are provided at wiring time. */
export const mailerMachine = setup({
  types: {
    context: {} as MailerContext,
    events: {} as MailerEvent,
    input: {} as MailerInput,
  },
  actors: {
    peek: fromPromise<MailPeekOutput>(() => {
      throw new Error("The peek effect is not provided");
    }),
    runDue: fromPromise<MailRunOutput, { limit: number }>(() => {
      throw new Error("The runDue effect is not provided");
    }),
  },
  actions: {
    /** Reports a failed run (a store failure, not a transport one). */
    reportError: (_, _params: { error: unknown }) => {},
    noteQueued: assign({
      nextDueAt: ({ context, event }) =>
        event.type === "mail.queued" ? earliest(context.nextDueAt, event.dueAt) : context.nextDueAt,
      queuedSinceRun: ({ context, event }) =>
        event.type === "mail.queued"
          ? earliest(context.queuedSinceRun, event.dueAt)
          : context.queuedSinceRun,
      queueDepth: ({ context, event }) =>
        context.queueDepth + (event.type === "mail.queued" ? 1 : 0),
    }),
    startRun: assign({ queuedSinceRun: undefined }),
  },
  guards: {
    sooner: ({ context, event }) =>
      event.type === "mail.queued" &&
      (context.nextDueAt === undefined || event.dueAt < context.nextDueAt),
  },
  delays: {
    untilDue: ({ context }) =>
      context.nextDueAt === undefined
        ? context.settings.pollMs
        : Math.max(0, Math.min(context.nextDueAt - Date.now(), context.settings.pollMs)),
    cooldown: ({ context }) => context.settings.breakerCooldownMs,
    pollAfterError: ({ context }) => Math.min(5000, context.settings.pollMs),
  },
}).createMachine({
  id: "mailer",
  initial: "loading",
  context: ({ input }) => ({
    version: MAILER_MACHINE_VERSION,
    transport: input.transport,
    queueDepth: 0,
    breaker: { state: "closed", failures: 0 },
    totals: { sent: 0, skipped: 0, deferred: 0, failed: 0, deadLettered: 0 },
    settings: input.settings,
  }),
  states: {
    loading: {
      on: { "mail.queued": { actions: "noteQueued" } },
      invoke: {
        src: "peek",
        onDone: {
          target: "waiting",
          actions: assign(({ context, event }) => ({
            queueDepth: event.output.depth,
            nextDueAt: event.output.nextDueAt === undefined
              ? context.nextDueAt
              : earliest(context.nextDueAt, event.output.nextDueAt),
          })),
        },
        onError: {
          target: "backoff",
          actions: [
            { type: "reportError", params: ({ event }) => ({ error: event.error }) },
            assign({ lastError: ({ event }) => String(event.error).slice(0, 300) }),
          ],
        },
      },
    },
    waiting: {
      on: {
        "mail.queued": [
          { guard: "sooner", target: "waiting", reenter: true, actions: "noteQueued" },
          { actions: "noteQueued" },
        ],
        "mail.wake": { target: "running" },
      },
      after: { untilDue: "running" },
    },
    running: {
      entry: "startRun",
      on: { "mail.queued": { actions: "noteQueued" } },
      invoke: {
        src: "runDue",
        input: ({ context }) => ({ limit: context.settings.batchSize }),
        onDone: [
          {
            guard: ({ context, event }) =>
              event.output.transportDown &&
              context.breaker.failures + 1 >= context.settings.breakerThreshold,
            target: "open",
            actions: assign(({ context, event }) => tripped(context, event.output)),
          },
          {
            target: "waiting",
            actions: assign(({ context, event }) => ({
              totals: addTotals(context.totals, event.output),
              queueDepth: event.output.depth,
              // A task queued during the run may be due before the queue's answer.
              nextDueAt: nextAfterRun(context, event.output),
              lastError: event.output.lastError ?? context.lastError,
              breaker: {
                state: "closed" as const,
                failures: event.output.transportDown ? context.breaker.failures + 1 : 0,
              },
            })),
          },
        ],
        onError: {
          target: "backoff",
          actions: [
            { type: "reportError", params: ({ event }) => ({ error: event.error }) },
            assign({ lastError: ({ event }) => String(event.error).slice(0, 300) }),
          ],
        },
      },
    },
    /** The breaker is open: nothing is sent until the cooldown ends. */
    open: {
      on: { "mail.queued": { actions: "noteQueued" } },
      after: { cooldown: "probing" },
    },
    /** Half-open: one task decides whether the transport is back. */
    probing: {
      entry: [
        "startRun",
        assign({
          breaker: ({ context }) => ({ ...context.breaker, state: "half-open" as const }),
        }),
      ],
      on: { "mail.queued": { actions: "noteQueued" } },
      invoke: {
        src: "runDue",
        input: () => ({ limit: 1 }),
        onDone: [
          {
            guard: ({ event }) => event.output.transportDown,
            target: "open",
            actions: assign(({ context, event }) => tripped(context, event.output)),
          },
          {
            target: "waiting",
            actions: assign(({ context, event }) => ({
              totals: addTotals(context.totals, event.output),
              queueDepth: event.output.depth,
              nextDueAt: nextAfterRun(context, event.output),
              breaker: { state: "closed" as const, failures: 0 },
            })),
          },
        ],
        onError: {
          target: "open",
          actions: [
            { type: "reportError", params: ({ event }) => ({ error: event.error }) },
            assign({ lastError: ({ event }) => String(event.error).slice(0, 300) }),
          ],
        },
      },
    },
    /** The store failed: look again a little later. */
    backoff: {
      on: { "mail.queued": { actions: "noteQueued" } },
      after: { pollAfterError: "loading" },
    },
  },
});
