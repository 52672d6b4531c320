/**
 * The push actor: one per process, it runs the durable Web Push queue in the store.
 *
 * It sleeps until the earliest task is due (or a new one is queued), runs the due tasks,
 * and sleeps again. The queue itself (tasks, attempts, backoff) lives in the store, so
 * the actor is only timers plus what the debug endpoint shows. Push services are many
 * and fail one by one, so there is no circuit breaker: each task backs off on its own.
 */

import { assign, fromPromise, setup } from "xstate";

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
export interface PushPeekOutput {
  nextDueAt?: number;
  depth: number;
}

/** Settings of the push actor. */
export interface PushSettings {
  /** Tasks per run. */
  batchSize: number;
  /** The longest sleep: the queue is looked at again at least this often. */
  pollMs: number;
}

/** What the push actor remembers. */
export interface PushContext {
  version: number;
  queueDepth: number;
  /** When the earliest task is due, epoch ms. */
  nextDueAt?: number;
  /** The earliest due time queued since the current run started (it may have missed it). */
  queuedSinceRun?: number;
  lastError?: string;
  totals: Omit<PushRunOutput, "lastError" | "nextDueAt" | "depth">;
  settings: PushSettings;
}

/** What the push actor is started with. */
export interface PushInput {
  settings: PushSettings;
}

/** Events the push actor understands. */
export type PushEvent =
  | { type: "push.queued"; dueAt: number }
  | { type: "push.wake" };

const addTotals = (t: PushContext["totals"], o: PushRunOutput): PushContext["totals"] => ({
  sent: t.sent + o.sent,
  skipped: t.skipped + o.skipped,
  deferred: t.deferred + o.deferred,
  failed: t.failed + o.failed,
  gaveUp: t.gaveUp + o.gaveUp,
  gone: t.gone + o.gone,
});

const earliest = (a: number | undefined, b: number) => (a === undefined ? b : Math.min(a, b));

/** The push machine; its effects (`peek`, `runDue`) are provided at wiring time. */
export const pushMachine = setup({
  types: {
    context: {} as PushContext,
    events: {} as PushEvent,
    input: {} as PushInput,
  },
  actors: {
    peek: fromPromise<PushPeekOutput>(() => {
      throw new Error("The peek effect is not provided");
    }),
    runDue: fromPromise<PushRunOutput, { limit: number }>(() => {
      throw new Error("The runDue effect is not provided");
    }),
  },
  actions: {
    /** Reports a failed run (a store failure). */
    reportError: (_, _params: { error: unknown }) => {},
    noteQueued: assign({
      nextDueAt: ({ context, event }) =>
        event.type === "push.queued" ? earliest(context.nextDueAt, event.dueAt) : context.nextDueAt,
      queuedSinceRun: ({ context, event }) =>
        event.type === "push.queued"
          ? earliest(context.queuedSinceRun, event.dueAt)
          : context.queuedSinceRun,
      queueDepth: ({ context, event }) =>
        context.queueDepth + (event.type === "push.queued" ? 1 : 0),
    }),
    startRun: assign({ queuedSinceRun: undefined }),
  },
  guards: {
    sooner: ({ context, event }) =>
      event.type === "push.queued" &&
      (context.nextDueAt === undefined || event.dueAt < context.nextDueAt),
  },
  delays: {
    untilDue: ({ context }) =>
      context.nextDueAt === undefined
        ? context.settings.pollMs
        : Math.max(0, Math.min(context.nextDueAt - Date.now(), context.settings.pollMs)),
    pollAfterError: ({ context }) => Math.min(5000, context.settings.pollMs),
  },
}).createMachine({
  id: "push",
  initial: "loading",
  context: ({ input }) => ({
    version: PUSH_MACHINE_VERSION,
    queueDepth: 0,
    totals: { sent: 0, skipped: 0, deferred: 0, failed: 0, gaveUp: 0, gone: 0 },
    settings: input.settings,
  }),
  states: {
    loading: {
      on: { "push.queued": { actions: "noteQueued" } },
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
        "push.queued": [
          { guard: "sooner", target: "waiting", reenter: true, actions: "noteQueued" },
          { actions: "noteQueued" },
        ],
        "push.wake": { target: "running" },
      },
      after: { untilDue: "running" },
    },
    running: {
      entry: "startRun",
      on: { "push.queued": { actions: "noteQueued" } },
      invoke: {
        src: "runDue",
        input: ({ context }) => ({ limit: context.settings.batchSize }),
        onDone: {
          target: "waiting",
          actions: assign(({ context, event }) => ({
            totals: addTotals(context.totals, event.output),
            queueDepth: event.output.depth,
            // A task queued during the run may be due before the queue's answer.
            nextDueAt: context.queuedSinceRun === undefined
              ? event.output.nextDueAt
              : event.output.nextDueAt === undefined
              ? context.queuedSinceRun
              : Math.min(event.output.nextDueAt, context.queuedSinceRun),
            lastError: event.output.lastError ?? context.lastError,
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
    /** The store failed: look again a little later. */
    backoff: {
      on: { "push.queued": { actions: "noteQueued" } },
      after: { pollAfterError: "loading" },
    },
  },
});
