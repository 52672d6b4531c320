/**
 * Records deliveries in batches: a push to many sockets becomes a few KV commits
 * instead of one per recipient, off the delivery path.
 */

import type { DeliveredEntry, DeliveryStore } from "../store/store.ts";

/** Collects `(event, user)` deliveries and writes them in the background. */
export interface DeliveryRecorder {
  /**
   * Records that `user` got event `id`'s item; `ephemeral` ones are only counted.
   * `written` tells where the fan-out wrote the delivery record, when known.
   */
  add(id: string, user: string, ephemeral?: boolean, written?: DeliveredEntry["written"]): void;
  /** Writes everything collected so far. */
  flush(): Promise<void>;
  /** Flushes and stops the timer. */
  close(): Promise<void>;
}

/** Creates a recorder that flushes every `intervalMs`. */
export function createDeliveryRecorder(
  store: Pick<DeliveryStore, "markDelivered">,
  options: {
    intervalMs: number;
    onError(error: unknown): void;
    /**
     * Settles once the user's items that went out before they were stored are stored
     * (none when none is held): their delivery records are written with them.
     */
    stored?(user: string): Promise<void> | undefined;
  },
): DeliveryRecorder {
  let queue: DeliveredEntry[] = [];
  let writing = Promise.resolve();
  let timer: ReturnType<typeof setTimeout> | undefined;

  function flush(): Promise<void> {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const batch = queue;
    queue = [];
    if (batch.length > 0) {
      writing = writing
        .then(() => storedFor(batch))
        .then(() => store.markDelivered(batch, Date.now()))
        .catch(options.onError);
    }
    return writing;
  }

  /** Waits for the records of the batch's durable items that are not written yet. */
  function storedFor(batch: DeliveredEntry[]): Promise<unknown> | undefined {
    if (!options.stored) return undefined;
    const waits = new Set<Promise<void>>();
    for (const e of batch) {
      if (e.ephemeral || e.written) continue;
      const held = options.stored(e.user);
      if (held) waits.add(held);
    }
    return waits.size > 0 ? Promise.all(waits) : undefined;
  }

  return {
    add(id, user, ephemeral = false, written) {
      queue.push(
        ephemeral ? { id, user, ephemeral } : written ? { id, user, written } : { id, user },
      );
      timer ??= setTimeout(flush, options.intervalMs);
    },
    flush,
    close: flush,
  };
}
