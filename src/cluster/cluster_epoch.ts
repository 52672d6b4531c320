/**
 * The epoch of a cluster's streams. In cluster mode the store keeps every item, ephemeral
 * ones included, so a resume on any node reads everything it missed from the store: one
 * epoch serves every user and every node, for as long as the store keeps its data. It is
 * written once, by the first node to start; a store that lost its data gets a new one, so
 * a client's position from before is not taken for a position of the new streams.
 */

import { newEpoch } from "../realtime/epochs.ts";
import { clusterEpochKey } from "../store/keys.ts";

/** The cluster's epoch: loaded at start, then read without a round trip. */
export interface ClusterEpoch {
  /** Reads the stored epoch, writing a new one when there is none. */
  load(): Promise<string>;
  /** The epoch `load` found; throws before it did. */
  current(): string;
}

/** The cluster epoch kept in `kv`. */
export function createClusterEpoch(kv: Deno.Kv): ClusterEpoch {
  let epoch: string | undefined;
  return {
    async load() {
      for (let attempt = 0; attempt < 5; attempt++) {
        const entry = await kv.get<string>(clusterEpochKey());
        if (typeof entry.value === "string") return epoch = entry.value;
        const fresh = newEpoch();
        const res = await kv.atomic().check(entry).set(clusterEpochKey(), fresh).commit();
        if (res.ok) return epoch = fresh;
      }
      throw new Error("Cannot settle the cluster epoch: it keeps changing");
    },
    current() {
      if (epoch === undefined) throw new Error("The cluster epoch is not loaded yet");
      return epoch;
    },
  };
}
