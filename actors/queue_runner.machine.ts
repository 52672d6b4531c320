/**
 * A queue runner: one actor per process that drains a durable queue kept in the store.
 *
 * It sleeps until the earliest task is due (or a new one is queued), runs the due tasks in
 * batches, and sleeps again. With a breaker (`breakerThreshold`), after that many runs in
 * a row that found the transport down, it stops running for `breakerCooldownMs`, then
 * probes with one task (half-open) before resuming; without one, it never stops. The
 * queue itself (tasks, attempts, backoff, dead letters) lives in the store, so the actor
 * is only timers plus what the debug endpoint shows.
 */

import { assign, fromPromise, setup } from "xstate";

/** What every run of due tasks reports, besides its counters. */
export interface QueueRunReport {
  /** The transport failed: the run stopped early (read by the breaker). */
  transportDown?: boolean;
  lastError?: string;
  nextDueAt?: number;
  depth: number;
}

/** What a look at the queue reports. */
export interface QueuePeekOutput {
  nextDueAt?: number;
  depth: number;
}

/** Settings of a queue runner. */
export interface QueueRunnerSettings {
  /** Tasks per run. */
  batchSize: number;
  /** The longest sleep: the queue is looked at again at least this often. */
  pollMs: number;
  /** Runs in a row with the transport down that open the breaker; none, it never opens. */
  breakerThreshold?: number;
  breakerCooldownMs?: number;
}

/** The breaker of a queue runner. */
export interface QueueBreaker {
  state: "closed" | "open" | "half-open";
  /** Runs in a row that found the transport down. */
  failures: number;
  openedAt?: number;
}

/** What a queue runner remembers; `totals` sums the run counters named `C`. */
export interface QueueRunnerContext<C extends string, S extends QueueRunnerSettings> {
  version: number;
  /** The kind of transport, when the runner has one to show. */
  transport?: string;
  queueDepth: number;
  /** When the earliest task is due, epoch ms. */
  nextDueAt?: number;
  /** The earliest due time queued since the current run started (it may have missed it). */
  queuedSinceRun?: number;
  breaker: QueueBreaker;
  lastError?: string;
  totals: Record<C, number>;
  settings: S;
}

/** What a queue runner is started with. */
export interface QueueRunnerInput<S extends QueueRunnerSettings> {
  transport?: string;
  settings: S;
}

/** Events a queue runner named `P` understands: `P.queued` and `P.wake`. */
export type QueueRunnerEvent<P extends string> =
  | { type: `${P}.queued`; dueAt: number }
  | { type: `${P}.wake` };

/** What tells one queue runner from another. */
export interface QueueRunnerDefinition<C extends string, P extends string> {
  /** The machine's id. */
  id: string;
  /** The prefix of its events. */
  events: P;
  /** Version of the context shape, stored with inspected snapshots. */
  version: number;
  /** The run counters summed into `totals`, in the order they are shown. */
  counters: readonly C[];
}

const earliest = (a: number | undefined, b: number) => (a === undefined ? b : Math.min(a, b));

const errorText = (error: unknown) => String(error).slice(0, 300);

/** The params of the error actions: the failed effect's error. */
const errorOf = ({ event }: { event: { error: unknown } }) => ({ error: event.error });

/** What a failed effect does: report its error and keep it to show. */
const failure = () => [
  { type: "reportError" as const, params: errorOf },
  { type: "noteError" as const, params: errorOf },
];

/**
 * Builds a queue runner machine whose runs report the counters `C` (summed into `totals`);
 * its effects (`peek`, `runDue`) and `reportError` are provided at wiring time.
 */
export function queueRunnerMachine<
  const C extends string,
  const P extends string,
  O extends QueueRunReport & Record<C, number>,
  S extends QueueRunnerSettings,
>(definition: QueueRunnerDefinition<C, P>) {
  type Context = QueueRunnerContext<C, S>;
  const queued = `${definition.events}.queued` as const;
  const wake = `${definition.events}.wake` as const;

  const addTotals = (totals: Record<C, number>, output: O) => {
    const sum = { ...totals };
    for (const counter of definition.counters) sum[counter] += output[counter];
    return sum;
  };
  /** The next due time after a run: the queue's answer, or a task queued during the run. */
  const nextAfterRun = (context: Context, output: O) =>
    context.queuedSinceRun === undefined
      ? output.nextDueAt
      : earliest(output.nextDueAt, context.queuedSinceRun);
  /** What any finished run changes: the totals, the depth and the next due time. */
  const ran = (context: Context, output: O) => ({
    totals: addTotals(context.totals, output),
    queueDepth: output.depth,
    // A task queued during the run may be due before the queue's answer.
    nextDueAt: nextAfterRun(context, output),
  });
  /** The context after a run that opens the breaker. */
  const tripped = (context: Context, output: O) => ({
    ...ran(context, output),
    lastError: output.lastError,
    breaker: {
      state: "open" as const,
      failures: context.breaker.failures + 1,
      openedAt: Date.now(),
    },
  });
  const opens = (context: Context, output: O) =>
    output.transportDown === true && context.settings.breakerThreshold !== undefined &&
    context.breaker.failures + 1 >= context.settings.breakerThreshold;

  const machine = setup({
    types: {
      context: {} as Context,
      events: {} as QueueRunnerEvent<P>,
      input: {} as QueueRunnerInput<S>,
    },
    actors: {
      peek: fromPromise<QueuePeekOutput>(() => {
        throw new Error("The peek effect is not provided");
      }),
      runDue: fromPromise<O, { limit: number }>(() => {
        throw new Error("The runDue effect is not provided");
      }),
    },
    actions: {
      /** Reports a failed run (a store failure, not a transport one). */
      reportError: (_, _params: { error: unknown }) => {},
      noteQueued: assign(({ context, event }) =>
        "dueAt" in event
          ? {
            nextDueAt: earliest(context.nextDueAt, event.dueAt),
            queuedSinceRun: earliest(context.queuedSinceRun, event.dueAt),
            queueDepth: context.queueDepth + 1,
          }
          : {}
      ),
      noteError: assign((_, { error }: { error: unknown }) => ({ lastError: errorText(error) })),
      startRun: assign({ queuedSinceRun: undefined }),
    },
    guards: {
      sooner: ({ context, event }) =>
        "dueAt" in event && (context.nextDueAt === undefined || event.dueAt < context.nextDueAt),
    },
    delays: {
      untilDue: ({ context }) =>
        context.nextDueAt === undefined
          ? context.settings.pollMs
          : Math.max(0, Math.min(context.nextDueAt - Date.now(), context.settings.pollMs)),
      cooldown: ({ context }) => context.settings.breakerCooldownMs ?? 0,
      pollAfterError: ({ context }) => Math.min(5000, context.settings.pollMs),
    },
  });
  // The event names are built from the prefix, which types cannot follow into `on`: the
  // transitions below only name actions and guards declared above.
  const on = (transitions: Record<string, unknown>) => transitions as never;
  const queuedOnly = () => on({ [queued]: { actions: "noteQueued" } });

  return machine.createMachine({
    id: definition.id,
    initial: "loading",
    context: ({ input }) => ({
      version: definition.version,
      ...(input.transport === undefined ? {} : { transport: input.transport }),
      queueDepth: 0,
      breaker: { state: "closed", failures: 0 },
      totals: Object.fromEntries(definition.counters.map((c) => [c, 0])) as Record<C, number>,
      settings: input.settings,
    }),
    states: {
      loading: {
        on: queuedOnly(),
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
            actions: failure(),
          },
        },
      },
      waiting: {
        on: on({
          [queued]: [
            { guard: "sooner", target: "waiting", reenter: true, actions: "noteQueued" },
            { actions: "noteQueued" },
          ],
          [wake]: { target: "running" },
        }),
        after: { untilDue: "running" },
      },
      running: {
        entry: "startRun",
        on: queuedOnly(),
        invoke: {
          src: "runDue",
          input: ({ context }) => ({ limit: context.settings.batchSize }),
          onDone: [
            {
              guard: ({ context, event }) => opens(context, event.output),
              target: "open",
              actions: assign(({ context, event }) => tripped(context, event.output)),
            },
            {
              target: "waiting",
              actions: assign(({ context, event }) => ({
                ...ran(context, event.output),
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
            actions: failure(),
          },
        },
      },
      /** The breaker is open: nothing runs until the cooldown ends. */
      open: {
        on: queuedOnly(),
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
        on: queuedOnly(),
        invoke: {
          src: "runDue",
          input: () => ({ limit: 1 }),
          onDone: [
            {
              guard: ({ event }) => event.output.transportDown === true,
              target: "open",
              actions: assign(({ context, event }) => tripped(context, event.output)),
            },
            {
              target: "waiting",
              actions: assign(({ context, event }) => ({
                ...ran(context, event.output),
                breaker: { state: "closed" as const, failures: 0 },
              })),
            },
          ],
          onError: {
            target: "open",
            actions: failure(),
          },
        },
      },
      /** The store failed: look again a little later. */
      backoff: {
        on: queuedOnly(),
        after: { pollAfterError: "loading" },
      },
    },
  });
}
