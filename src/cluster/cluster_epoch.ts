/**
 * The epoch of a cluster's streams. In cluster mode the store keeps every item, ephemeral
 * ones included, so a resume on any node reads everything it missed from the store: one
 * epoch serves every user and every node, for as long as the store keeps its data. It is
 * written once, by the first node to start; a store that lost its data gets a new one, so
 * a client's position from before is not taken for a position of the new streams.
 */

import { AppError } from "../errors.ts";
import { newEpoch } from "../realtime/epochs.ts";
import { clusterEpochKey } from "../store/keys.ts";

/**
 * How long a node starting waits for its store to answer. The epoch is the first thing a
 * node reads, at start: a store that is still starting or slow to take the first
 * connection (the client waits one second for it, then answers `store_unavailable`) is
 * waited for, rather than ending the start at its first refusal.
 */
export const STORE_WAIT_MS = 30_000;

/** The cluster's epoch: loaded at start, then read without a round trip. */
export interface ClusterEpoch {
  /**
   * Reads the stored epoch, writing a new one when there is none; waits for a store that
   * does not answer yet (see {@linkcode STORE_WAIT_MS}).
   */
  load(): Promise<string>;
  /** The epoch `load` found; throws before it did. */
  current(): string;
}

/** The cluster epoch kept in `kv`; `onWait` hears each refusal waited out. */
export function createClusterEpoch(
  kv: Deno.Kv,
  options: { waitMs?: number; pauseMs?: number; onWait?(error: AppError): void } = {},
): ClusterEpoch {
  const { waitMs = STORE_WAIT_MS, pauseMs = 250 } = options;
  let epoch: string | undefined;

  async function settle(): Promise<string> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const entry = await kv.get<string>(clusterEpochKey());
      if (typeof entry.value === "string") return entry.value;
      const fresh = newEpoch();
      const res = await kv.atomic().check(entry).set(clusterEpochKey(), fresh).commit();
      if (res.ok) return fresh;
    }
    throw new Error("Cannot settle the cluster epoch: it keeps changing");
  }

  return {
    async load() {
      const deadline = Date.now() + waitMs;
      for (;;) {
        try {
          return epoch = await settle();
        } catch (error) {
          const waiting = error instanceof AppError && error.code === "store_unavailable";
          if (!waiting || Date.now() + pauseMs > deadline) throw error;
          options.onWait?.(error);
          await new Promise((resolve) => setTimeout(resolve, pauseMs));
        }
      }
    },
    current() {
      if (epoch === undefined) throw new Error("The cluster epoch is not loaded yet");
      return epoch;
    },
  };
}
