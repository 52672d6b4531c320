/**
 * The Deno KV adapter of the store ports, assembled from one module per port under
 * `kv/`, which share one commit helper (`kv/_commit.ts`: budgets, retry, group commit).
 *
 * Every multi-key write is one `kv.atomic()` with `check()`s; a commit that loses a race
 * is retried from a fresh read, never ignored.
 */

import { createKvDeliveryStore } from "./kv/deliveries.ts";
import { createKvErasureStore } from "./kv/erasure.ts";
import { createKvEventStore } from "./kv/events.ts";
import { createKvInboxStore } from "./kv/inbox.ts";
import { createKvRetentionStore } from "./kv/retention.ts";
import { createKvStreamStore } from "./kv/streams.ts";
import { createKvTicketStore } from "./kv/tickets.ts";
import type { Store } from "./store.ts";

/** Options of {@linkcode createKvStore}. */
export interface KvStoreOptions {
  /** How long items that are not durable stay available for resume. */
  recentWindowMs: number;
}

/** Creates the store on an open Deno KV handle. */
export function createKvStore(kv: Deno.Kv, options: KvStoreOptions): Store {
  const events = createKvEventStore(kv, { recentWindowMs: options.recentWindowMs });
  return {
    ...events,
    ...createKvStreamStore(kv),
    ...createKvDeliveryStore(kv),
    ...createKvInboxStore(kv, events.getEnvelope),
    ...createKvErasureStore(kv),
    ...createKvRetentionStore(kv),
    ...createKvTicketStore(kv),
    ping: async () => {
      await kv.get(["ping"]);
      return true;
    },
    close: () => kv.close(),
  };
}
