/**
 * The change-data ingest: reads the platform's Debezium stream as one consumer of a
 * group, turns each change into envelopes by the rules, publishes them the way
 * `POST /v1/events` does, and acks an entry only once what it gave is durable.
 *
 * - Several nodes share the stream: the group hands each entry to one of them, and
 *   entries left pending by a dead consumer for longer than `claimIdleMs` are claimed
 *   (`XAUTOCLAIM`) by a live one. A node that restarts under the same name first takes
 *   back what it was handed and never acked.
 * - A re-read entry gives the same event ids (see `change.ts`): the publisher replays a
 *   known id instead of delivering it again.
 * - An entry that cannot become events (bad JSON, no rule, no key…) goes to the dead-letter
 *   stream with its reason and is acked: it never blocks the stream.
 * - Redis unreachable: the loop backs off and resumes from the group's position.
 */

import { type Backoff, backoffDelay } from "../backoff.ts";
import { AppError } from "../errors.ts";
import type { Metrics } from "../metrics.ts";
import type { Envelope } from "../schemas/envelope.ts";
import {
  changeToEvents,
  DEAD_REASONS,
  type DeadReason,
  type Outcome,
  type RuleEvent,
} from "./change.ts";
import type { ChangeStream, DeadLetterEntry, StreamEntry } from "./change_stream.ts";
import { type IngestRule, rulesByTable } from "./rules.ts";

/** How often a paused ingest looks whether its switch was cleared. */
const PAUSE_CHECK_MS = 500;

/** Who the ingest's events are recorded as published by. */
export const INGEST_PUBLISHER = "relais:ingest";

/** What an entry came to, as counted. */
export type IngestOutcome = "published" | "replayed" | "skipped" | "switched_off" | "dead";

/** The ingest's state, as `GET /v1/admin/ingest` shows it. */
export interface IngestState {
  enabled: true;
  stream: string;
  group: string;
  consumer: string;
  status: "starting" | "running" | "paused" | "backing_off" | "stopped";
  /** The last entry this node handled. */
  last_id: string | null;
  /** From Redis (null when it cannot be reached). */
  lag: number | null;
  pending: number | null;
  last_delivered_id: string | null;
  length: number | null;
  /** Since this process started. */
  counts: {
    entries: Record<IngestOutcome, number>;
    events: number;
    claimed: number;
    errors: number;
    dead_letters: Record<string, number>;
  };
  last_error?: string;
  /** The newest dead letters of the stream, newest first. */
  dead_letters: DeadLetterEntry[];
}

/** The ingest service. */
export interface Ingest {
  /** Starts reading; resolves at once (an unreachable Redis is retried in the background). */
  start(): void;
  /** Stops reading, lets the batch in hand finish, and closes the stream. */
  stop(): Promise<void>;
  state(): Promise<IngestState>;
}

/** Dependencies of {@linkcode createIngest}. */
export interface IngestDeps {
  stream: ChangeStream;
  group: string;
  rules: readonly IngestRule[];
  /** Publishes like `POST /v1/events`; resolves once the event is durable. */
  publish(envelope: Envelope): Promise<{ replayed: boolean }>;
  /** Whether events of this item type may be published now (the system-wide kill switches). */
  publishable?(itemType: Envelope["metadata"]["type"]): boolean;
  /**
   * Whether the ingest is switched off for now (the system-wide `ingest` kill switch):
   * nothing is read meanwhile, and what arrives waits in the stream.
   */
  paused?(): boolean;
  metrics?: Metrics;
  /** Entries pending on a consumer for longer than this are claimed by another. */
  claimIdleMs: number;
  /** Entries read at a time (default 100). */
  batchSize?: number;
  /** Longest wait of one blocking read (default 1000 ms, at most `claimIdleMs / 2`). */
  blockMs?: number;
  /** An entry whose publishing failed this many times in a row is a dead letter (default 5). */
  maxAttempts?: number;
  /** Retry delays while Redis is unreachable. */
  backoff?: Backoff;
  onError(message: string, error: unknown): void;
  now?: () => number;
}

/** Creates the ingest (not started). */
export function createIngest(deps: IngestDeps): Ingest {
  const { stream, metrics } = deps;
  const now = deps.now ?? Date.now;
  const rules = rulesByTable(deps.rules);
  const batchSize = deps.batchSize ?? 100;
  const claimEveryMs = Math.max(50, Math.floor(deps.claimIdleMs / 2));
  const blockMs = Math.max(10, Math.min(deps.blockMs ?? 1000, claimEveryMs));
  const maxAttempts = deps.maxAttempts ?? 5;
  const backoff: Backoff = deps.backoff ?? { baseMs: 100, maxMs: 10_000, jitter: "equal" };

  let running = false;
  let loop: Promise<void> | undefined;
  let status: IngestState["status"] = "stopped";
  let lastId: string | null = null;
  let lastError: string | undefined;
  let wake: (() => void) | undefined;
  const entries: Record<IngestOutcome, number> = {
    published: 0,
    replayed: 0,
    skipped: 0,
    switched_off: 0,
    dead: 0,
  };
  const deadCounts = new Map<string, number>();
  let events = 0;
  let claimed = 0;
  let errors = 0;
  /** Failed attempts of entries whose publishing failed, by entry id. */
  const attempts = new Map<string, number>();

  for (const reason of DEAD_REASONS) metrics?.ingestDeadLetters.inc({ reason }, 0);

  function count(outcome: IngestOutcome) {
    entries[outcome]++;
    metrics?.ingestEntries.inc({ outcome });
  }

  async function bury(entry: StreamEntry, reason: DeadReason, detail: string) {
    await stream.deadLetter(entry, reason, detail);
    deadCounts.set(reason, (deadCounts.get(reason) ?? 0) + 1);
    metrics?.ingestDeadLetters.inc({ reason });
    count("dead");
  }

  /** Publishes the events of one entry in order: `replayed` when every id was known. */
  async function publishAll(list: RuleEvent[]): Promise<"replayed" | "published"> {
    let fresh = false;
    for (const { envelope } of list) {
      const { replayed } = await deps.publish(envelope);
      events++;
      if (!replayed) fresh = true;
    }
    return fresh ? "published" : "replayed";
  }

  /**
   * Handles one entry to the point where it may be acked; throws when it must stay
   * pending (publishing failed for now).
   */
  async function handleEntry(entry: StreamEntry, outcome: Outcome | undefined): Promise<void> {
    if (!outcome) {
      // Left the stream while pending: nothing to read.
      count("skipped");
      return;
    }
    if (outcome.kind === "skip") return count("skipped");
    if (outcome.kind === "dead") return await bury(entry, outcome.reason, outcome.detail);
    // A system-wide kill switch of the item type drops the event, as `POST /v1/events`
    // refuses it; narrower switches apply at delivery.
    const allowed = outcome.events.filter(({ envelope }) =>
      deps.publishable?.(envelope.metadata.type) ?? true
    );
    try {
      const result = allowed.length > 0 ? await publishAll(allowed) : "switched_off";
      attempts.delete(entry.id);
      if (outcome.failed) return await bury(entry, outcome.failed.reason, outcome.failed.detail);
      count(result);
    } catch (error) {
      // A refused envelope (audience too large…) will be refused again: a dead letter.
      if (error instanceof AppError && error.status < 500) {
        return await bury(entry, "publish_refused", error.message);
      }
      const n = (attempts.get(entry.id) ?? 0) + 1;
      if (n >= maxAttempts) {
        attempts.delete(entry.id);
        return await bury(entry, "publish_failed", String(error).slice(0, 500));
      }
      attempts.set(entry.id, n);
      throw error;
    }
  }

  /**
   * Handles a batch: entries of one row keep their order, other rows go at once; the
   * entries that are done are acked together, even when another one failed.
   */
  async function handle(batch: StreamEntry[]): Promise<void> {
    if (batch.length === 0) return;
    const outcomes = await Promise.all(
      batch.map((e) => e.deleted ? undefined : changeToEvents(e.fields, e.id, rules)),
    );
    const chains = new Map<string, Promise<void>>();
    const done: string[] = [];
    let failure: unknown;
    const work = batch.map((entry, i) => {
      const outcome = outcomes[i];
      const row = outcome?.kind === "events" && outcome.events[0]
        ? outcome.events[0].row
        : entry.id;
      // A later entry of a row whose earlier one failed is not handled: both stay pending.
      const next = (chains.get(row) ?? Promise.resolve()).then(() => handleEntry(entry, outcome));
      chains.set(row, next);
      return next.then(() => void done.push(entry.id), (error) => void (failure ??= error));
    });
    await Promise.allSettled(work);
    await stream.ack(done);
    lastId = batch[batch.length - 1].id;
    if (failure !== undefined) throw failure;
  }

  async function drainOwnPending() {
    let after = "0";
    while (running) {
      const batch = await stream.readOwnPending(after, batchSize);
      if (batch.length === 0) return;
      await handle(batch);
      after = batch[batch.length - 1].id;
    }
  }

  let lastInfo = 0;
  async function refreshGauges() {
    if (!metrics || now() - lastInfo < 1000) return;
    lastInfo = now();
    const info = await stream.info();
    if (info.lag !== null) metrics.ingestLag.set(info.lag);
    metrics.ingestPending.set(info.pending);
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });
  }

  async function run() {
    let attempt = 0;
    let grouped = false;
    let recovered = false;
    let lastClaim = -Infinity;
    while (running) {
      if (deps.paused?.()) {
        status = "paused";
        await sleep(PAUSE_CHECK_MS);
        continue;
      }
      try {
        if (!grouped) {
          await stream.ensureGroup();
          grouped = true;
        }
        if (!recovered) {
          await drainOwnPending();
          recovered = true;
          status = "running";
        }
        if (now() - lastClaim >= claimEveryMs) {
          lastClaim = now();
          const taken = await stream.claim(deps.claimIdleMs, batchSize);
          claimed += taken.length;
          await handle(taken);
        }
        await handle(await stream.readNew(batchSize, blockMs));
        await refreshGauges();
        attempt = 0;
        status = "running";
        lastError = undefined;
      } catch (error) {
        if (!running) break;
        errors++;
        if (String(error).includes("NOGROUP")) grouped = false;
        // Whatever was in hand stays pending: take it back first once Redis answers.
        recovered = false;
        status = "backing_off";
        lastError = String(error).slice(0, 500);
        if (attempt === 0) deps.onError(`Ingest of stream "${stream.name}" failed`, error);
        await sleep(backoffDelay(attempt++, backoff));
      }
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      status = "starting";
      loop = run();
    },
    async stop() {
      running = false;
      wake?.();
      stream.interrupt();
      await loop;
      loop = undefined;
      status = "stopped";
      await stream.close();
    },
    async state() {
      const counts: IngestState["counts"] = {
        entries: { ...entries },
        events,
        claimed,
        errors,
        dead_letters: Object.fromEntries(deadCounts),
      };
      const base = {
        enabled: true as const,
        stream: stream.name,
        group: deps.group,
        consumer: stream.consumer,
        status,
        last_id: lastId,
        counts,
      };
      try {
        const [info, dead] = await Promise.all([stream.info(), stream.recentDeadLetters(20)]);
        return {
          ...base,
          lag: info.lag,
          pending: info.pending,
          last_delivered_id: info.lastDeliveredId,
          length: info.length,
          ...(lastError ? { last_error: lastError } : {}),
          dead_letters: dead,
        };
      } catch (error) {
        return {
          ...base,
          lag: null,
          pending: null,
          last_delivered_id: null,
          length: null,
          last_error: lastError ?? String(error).slice(0, 500),
          dead_letters: [],
        };
      }
    },
  };
}
