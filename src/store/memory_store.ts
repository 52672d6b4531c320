/**
 * The in-memory adapter of the store ports, assembled from one module per port under
 * `memory/`: the same observable behaviour as the Deno KV adapter, for tests and for a
 * single process that needs nothing to survive it. Web APIs only.
 *
 * Each write runs in one step with no `await` in the middle, which makes it atomic; a
 * publish to a larger audience goes through a fan-out job in batches, so that no step
 * holds the event loop long, and the job is resumable as the KV adapter's is.
 */

import { createMemoryState, type MailTaskSink } from "./memory/_state.ts";
import { createMemoryDeliveryStore } from "./memory/deliveries.ts";
import { createMemoryErasureStore } from "./memory/erasure.ts";
import { createMemoryEventStore } from "./memory/events.ts";
import { createMemoryInboxStore } from "./memory/inbox.ts";
import { createMemoryRetentionStore } from "./memory/retention.ts";
import { createMemoryStreamStore } from "./memory/streams.ts";
import { createMemoryTicketStore } from "./memory/tickets.ts";
import type { Store } from "./store.ts";

export type { MailTaskSink };

/** Options of {@linkcode createMemoryStore}. */
export interface MemoryStoreOptions {
  /** How long items that are not durable stay available for resume. */
  recentWindowMs: number;
  /**
   * Where mail tasks go, queued in the same step as the stream items they are about;
   * without it the store plans no mail.
   */
  mail?: MailTaskSink;
  /** Most targets a one-step publish writes (1,000 by default); larger take the job path. */
  atomicTargets?: number;
  /** Targets a fan-out job writes per batch (500 by default). */
  fanoutBatch?: number;
  /** The clock that stamps items and drops them past the window (`Date.now` by default). */
  now?: () => number;
}

/** Creates the store in memory. */
export function createMemoryStore(options: MemoryStoreOptions): Store {
  const state = createMemoryState(options);
  let open = true;
  return {
    ...createMemoryEventStore(state, {
      atomicTargets: options.atomicTargets ?? 1_000,
      fanoutBatch: options.fanoutBatch ?? 500,
    }),
    ...createMemoryStreamStore(state),
    ...createMemoryDeliveryStore(state),
    ...createMemoryInboxStore(state),
    ...createMemoryErasureStore(state),
    ...createMemoryRetentionStore(state),
    ...createMemoryTicketStore(state),
    ping: () =>
      open ? Promise.resolve(true) : Promise.reject(new Error("Cannot reach the store: closed")),
    close: () => {
      open = false;
    },
  };
}
