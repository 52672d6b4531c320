/** Store-level test helpers: envelopes, publish results and a store on in-memory KV. */

import { createKvStore } from "../../src/store/kv_store.ts";
import type { Envelope } from "../../src/schemas/envelope.ts";
import type { PublishResult, Store } from "../../src/store/store.ts";

/** A validated envelope of `type` with a fresh id and an empty USER audience. */
export function makeEnvelope(
  type: Envelope["metadata"]["type"] = "NOTIFICATION",
  options: { ack?: boolean; payload?: Record<string, unknown> } = {},
): Envelope {
  return {
    metadata: {
      id: crypto.randomUUID(),
      priority: "NORMAL",
      type,
      emitter: "test",
      source: "feedback",
      topic: "t",
    },
    payload: options.payload ?? { n: 1 },
    routing: {
      audience: { type: "USER", targets: [] },
      channels: ["inapp"],
      retry: { ack_required: options.ack ?? false, enabled: true, limit: 3, backoff: "FIXED" },
    },
  };
}

/** The publish result a route would store for `e`. */
export const result = (e: Envelope, targeted: number): PublishResult => ({
  id: e.metadata.id,
  accepted_at: new Date().toISOString(),
  targeted,
  unknown_targets: [],
});

/** Runs `fn` on a store over a fresh in-memory KV, closed afterwards. */
export async function withStore(fn: (store: Store, kv: Deno.Kv) => Promise<void>) {
  const kv = await Deno.openKv(":memory:");
  try {
    await fn(createKvStore(kv, { recentWindowMs: 60_000 }), kv);
  } finally {
    kv.close();
  }
}
