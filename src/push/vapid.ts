/**
 * The VAPID keys relais signs pushes with: the configured pair, or in development a pair
 * generated once and kept in the store, so that browsers subscribed before a restart
 * still receive pushes after it.
 */

import type { PushStore, VapidKeys } from "./push_store.ts";
import { generateVapidKeys } from "./sender.ts";

/** Options of {@linkcode createVapidSource}. */
export interface VapidSourceOptions {
  /** The configured pair; absent: generated and kept in `store`. */
  configured?: VapidKeys;
  store: Pick<PushStore, "getVapidKeys" | "saveVapidKeys">;
  onGenerated?(keys: VapidKeys): void;
}

/** Answers the keys, resolved on first use and then remembered (a failure is retried). */
export function createVapidSource(options: VapidSourceOptions): () => Promise<VapidKeys> {
  let resolved: Promise<VapidKeys> | undefined;
  async function resolve(): Promise<VapidKeys> {
    if (options.configured) return options.configured;
    const kept = await options.store.getVapidKeys();
    if (kept) return kept;
    const saved = await options.store.saveVapidKeys(await generateVapidKeys());
    options.onGenerated?.(saved);
    return saved;
  }
  return () => {
    resolved ??= resolve().catch((error) => {
      resolved = undefined;
      throw error;
    });
    return resolved;
  };
}
