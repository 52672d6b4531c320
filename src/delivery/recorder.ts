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
  /**
   * Tells where the fan-out wrote the delivery record of an item sent before it was
   * written (see `stored`): its delivery, recorded then without it, is marked without
   * reading the record back.
   */
  written(id: string, user: string, written: NonNullable<DeliveredEntry["written"]>): void;
  /** Writes everything collected so far. */
  flush(): Promise<void>;
  /** Flushes and stops the timer. */
  close(): Promise<void>;
}

/** How long a record's place told by `written` is kept for a delivery to use it. */
const WRITTEN_KEPT_MS = 60_000;

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
  // Where records of items sent before they were written landed, by event and user, with
  // when each was told (those no delivery asks for go after `WRITTEN_KEPT_MS`).
  const places = new Map<string, { written: NonNullable<DeliveredEntry["written"]>; at: number }>();
  let swept = Date.now();
  const placeKey = (id: string, user: string) => `${id}\u0000${user}`;

  /** Gives the batch's deliveries the places told since they were recorded. */
  function placed(batch: DeliveredEntry[]) {
    if (places.size === 0) return;
    for (const e of batch) {
      if (e.ephemeral || e.written) continue;
      const key = placeKey(e.id, e.user);
      const place = places.get(key);
      if (!place) continue;
      e.written = place.written;
      places.delete(key);
    }
    const now = Date.now();
    if (now - swept < WRITTEN_KEPT_MS) return;
    swept = now;
    for (const [key, { at }] of places) if (now - at > WRITTEN_KEPT_MS) places.delete(key);
  }

  function flush(): Promise<void> {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const batch = queue;
    queue = [];
    if (batch.length > 0) {
      writing = writing
        .then(() => storedFor(batch))
        .then(() => placed(batch))
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
    written(id, user, written) {
      places.set(placeKey(id, user), { written, at: Date.now() });
    },
    flush,
    close: flush,
  };
}
