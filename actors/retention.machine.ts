/**
 * The retention actor: one per process, it keeps the store bounded by removing what is
 * older than its kind's retention.
 *
 * A round takes the kinds one after another (those whose retention is not off), each in
 * bounded steps (`batchSize` records per step, a pause between steps so the hot path is
 * never held up), then the actor sleeps `sweepMs` until the next round. The first round
 * starts `firstRoundMs` after the actor. A failing step is reported and the round is
 * tried again `retryMs` later. What it removes, and how, is the store's (`sweep`); the
 * actor is only the pace plus what the debug endpoint shows.
 */

import { assign, fromPromise, setup } from "xstate";
import type { RetentionKind } from "../src/store/store.ts";

/** Version of the context shape, stored with inspected snapshots. */
export const RETENTION_MACHINE_VERSION = 1;

/** What one sweep step is asked. */
export interface SweepStepInput {
  kind: RetentionKind;
  /** Records older than this go (ms). */
  retentionMs: number;
  /** Most records the step removes. */
  limit: number;
  /** Where the previous step of this kind stopped. */
  cursor?: string;
}

/** What one sweep step did (see `RetentionStore.sweep`). */
export interface SweepStepOutput {
  removed: number;
  more: boolean;
  cursor?: string;
}

/** Settings of the retention actor. */
export interface RetentionSettings {
  /** How long each kind is kept, ms; a kind left out is kept for ever. */
  periods: Partial<Record<RetentionKind, number>>;
  /** The order kinds are swept in within a round. */
  order: readonly RetentionKind[];
  /** Sleep between the end of a round and the start of the next. */
  sweepMs: number;
  /** Delay before the first round. */
  firstRoundMs: number;
  /** Records removed per step at most. */
  batchSize: number;
  /** Pause between two steps. */
  pauseMs: number;
  /** Wait before trying a failed round again. */
  retryMs: number;
}

/** Records removed, by kind. */
export type SweptCounts = Partial<Record<RetentionKind, number>>;

/** A round of sweeps. */
export interface RetentionRound {
  startedAt: number;
  /** Steps run so far. */
  steps: number;
  /** Records removed so far, by kind. */
  swept: SweptCounts;
}

/** What the retention actor remembers. */
export interface RetentionContext {
  version: number;
  settings: RetentionSettings;
  /** The kinds swept, in order: those whose retention is on. */
  kinds: RetentionKind[];
  /** The round under way, with the kind it is at and where its last step stopped. */
  round?: RetentionRound & { index: number; cursor?: string };
  /** The last round that ended. */
  lastRound?: RetentionRound & { endedAt: number };
  /** When the next round starts, epoch ms. */
  nextRoundAt?: number;
  /** Rounds ended since the actor started. */
  rounds: number;
  /** Records removed since the actor started, by kind. */
  totals: SweptCounts;
  lastError?: string;
}

/** What the retention actor is started with. */
export interface RetentionInput {
  settings: RetentionSettings;
}

/** Events the retention actor understands. */
export type RetentionEvent = { type: "retention.run" };

const add = (counts: SweptCounts, kind: RetentionKind, n: number): SweptCounts => ({
  ...counts,
  [kind]: (counts[kind] ?? 0) + n,
});

/** The retention machine; its effect (`sweep`) is provided at wiring time. */
export const retentionMachine = setup({
  types: {
    context: {} as RetentionContext,
    events: {} as RetentionEvent,
    input: {} as RetentionInput,
  },
  actors: {
    sweep: fromPromise<SweepStepOutput, SweepStepInput>(() => {
      throw new Error("The sweep effect is not provided");
    }),
  },
  actions: {
    /** Reports a failed step. */
    reportError: (_, _params: { error: unknown }) => {},
    startRound: assign({
      round: () => ({ startedAt: Date.now(), steps: 0, swept: {}, index: 0 }),
      nextRoundAt: undefined,
    }),
    /** Counts a step's removals and keeps where it stopped. */
    noteStep: assign(({ context }, params: { output: SweepStepOutput }) => {
      const round = context.round!;
      const kind = context.kinds[round.index];
      const { removed, cursor } = params.output;
      return {
        round: { ...round, steps: round.steps + 1, swept: add(round.swept, kind, removed), cursor },
        totals: add(context.totals, kind, removed),
      };
    }),
    nextKind: assign({
      round: ({ context }) => ({
        ...context.round!,
        index: context.round!.index + 1,
        cursor: undefined,
      }),
    }),
    endRound: assign(({ context }) => {
      const { index: _index, cursor: _cursor, ...round } = context.round!;
      const now = Date.now();
      return {
        round: undefined,
        lastRound: { ...round, endedAt: now },
        rounds: context.rounds + 1,
        nextRoundAt: now + context.settings.sweepMs,
      };
    }),
    scheduleRetry: assign(({ context }) => ({
      round: undefined,
      nextRoundAt: Date.now() + context.settings.retryMs,
    })),
  },
  guards: {
    hasKinds: ({ context }) => context.kinds.length > 0,
    lastKind: ({ context }) => context.round!.index + 1 >= context.kinds.length,
  },
  delays: {
    untilNextRound: ({ context }) => Math.max(0, (context.nextRoundAt ?? 0) - Date.now()),
    pause: ({ context }) => context.settings.pauseMs,
  },
}).createMachine({
  id: "retention",
  initial: "starting",
  context: ({ input }) => ({
    version: RETENTION_MACHINE_VERSION,
    settings: input.settings,
    kinds: input.settings.order.filter((kind) => input.settings.periods[kind] !== undefined),
    nextRoundAt: Date.now() + input.settings.firstRoundMs,
    rounds: 0,
    totals: {},
  }),
  states: {
    starting: {
      always: [{ guard: "hasKinds", target: "waiting" }, { target: "off" }],
    },
    /** Every retention is off: nothing to do, no timer. */
    off: {},
    waiting: {
      on: { "retention.run": { target: "sweeping" } },
      after: { untilNextRound: "sweeping" },
    },
    sweeping: {
      entry: "startRound",
      initial: "step",
      states: {
        step: {
          invoke: {
            src: "sweep",
            input: ({ context }) => {
              const round = context.round!;
              const kind = context.kinds[round.index];
              return {
                kind,
                retentionMs: context.settings.periods[kind]!,
                limit: context.settings.batchSize,
                ...(round.cursor === undefined ? {} : { cursor: round.cursor }),
              };
            },
            onDone: [
              {
                guard: ({ event }) => event.output.more,
                target: "pausing",
                actions: { type: "noteStep", params: ({ event }) => ({ output: event.output }) },
              },
              {
                guard: "lastKind",
                target: "#retention.waiting",
                actions: [
                  { type: "noteStep", params: ({ event }) => ({ output: event.output }) },
                  "endRound",
                ],
              },
              {
                target: "pausing",
                actions: [
                  { type: "noteStep", params: ({ event }) => ({ output: event.output }) },
                  "nextKind",
                ],
              },
            ],
            onError: {
              target: "#retention.waiting",
              actions: [
                { type: "reportError", params: ({ event }) => ({ error: event.error }) },
                assign({ lastError: ({ event }) => String(event.error).slice(0, 300) }),
                "scheduleRetry",
              ],
            },
          },
        },
        /** Between two steps: the hot path gets the store. */
        pausing: {
          after: { pause: "step" },
        },
      },
    },
  },
});
