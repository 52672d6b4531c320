/**
 * Records deliveries in batches: a push to many sockets becomes a few KV commits
 * instead of one per recipient, off the delivery path.
 */

import type { DeliveredEntry, DeliveryClaims, DeliveryStore } from "../store/store.ts";

/**
 * Collects `(event, user)` deliveries and writes them in the background. A delivery of
 * an item that went out before its fan-out batch wrote it can be claimed by that batch
 * ({@linkcode DeliveryClaims}): the batch writes its record as delivered, and it is not
 * written a second time here.
 */
export interface DeliveryRecorder extends DeliveryClaims {
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

/** A delivery collected; `claimed` when a fan-out batch took it (not written here). */
type Recorded = DeliveredEntry & { claimed?: true };

/** How long a record's place told by `written` is kept for a delivery to use it. */
const WRITTEN_KEPT_MS = 60_000;

/**
 * Values by event and user, in a map per event: the ids given are looked up as they are
 * (each string hashes once), not joined into a new key string per delivery.
 */
class ByDelivery<V> {
  readonly #byEvent = new Map<string, Map<string, V>>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(id: string, user: string): V | undefined {
    return this.#byEvent.get(id)?.get(user);
  }

  has(id: string, user: string): boolean {
    return this.#byEvent.get(id)?.has(user) ?? false;
  }

  set(id: string, user: string, value: V): void {
    let users = this.#byEvent.get(id);
    if (!users) this.#byEvent.set(id, users = new Map());
    const before = users.size;
    users.set(user, value);
    this.#size += users.size - before;
  }

  delete(id: string, user: string): boolean {
    const users = this.#byEvent.get(id);
    if (!users?.delete(user)) return false;
    this.#size--;
    if (users.size === 0) this.#byEvent.delete(id);
    return true;
  }

  /** Drops the values `stale` says to. */
  sweep(stale: (value: V) => boolean): void {
    for (const [id, users] of this.#byEvent) {
      for (const [user, value] of users) if (stale(value)) this.delete(id, user);
    }
  }
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
  let queue: Recorded[] = [];
  // The durable deliveries collected and not being written yet, whose records' places are
  // unknown: those a fan-out batch may still claim, by event and user.
  const open = new ByDelivery<Recorded>();
  let writing = Promise.resolve();
  let timer: ReturnType<typeof setTimeout> | undefined;
  // Where records of items sent before they were written landed, by event and user, with
  // when each was told (those no delivery asks for go after `WRITTEN_KEPT_MS`).
  const places = new ByDelivery<{ written: NonNullable<DeliveredEntry["written"]>; at: number }>();
  let swept = Date.now();

  /**
   * The batch's deliveries to write, given the places told since they were recorded;
   * from now on none of them can be claimed.
   */
  function placed(batch: Recorded[]): DeliveredEntry[] {
    const out: DeliveredEntry[] = [];
    for (const e of batch) {
      if (e.claimed) continue;
      if (!e.ephemeral && !e.written) open.delete(e.id, e.user);
      out.push(e);
    }
    if (places.size === 0) return out;
    for (const e of out) {
      if (e.ephemeral || e.written) continue;
      const place = places.get(e.id, e.user);
      if (!place) continue;
      e.written = place.written;
      places.delete(e.id, e.user);
    }
    const now = Date.now();
    if (now - swept < WRITTEN_KEPT_MS) return out;
    swept = now;
    places.sweep(({ at }) => now - at > WRITTEN_KEPT_MS);
    return out;
  }

  function flush(): Promise<void> {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const batch = queue;
    queue = [];
    if (batch.length > 0) {
      writing = writing
        .then(() => storedFor(batch))
        .then(() => {
          const entries = placed(batch);
          if (entries.length > 0) return store.markDelivered(entries, Date.now());
        })
        .catch(options.onError);
    }
    return writing;
  }

  /** Waits for the records of the batch's durable items that are not written yet. */
  function storedFor(batch: Recorded[]): Promise<unknown> | undefined {
    if (!options.stored) return undefined;
    const waits = new Set<Promise<void>>();
    for (const e of batch) {
      if (e.ephemeral || e.written || e.claimed) continue;
      const held = options.stored(e.user);
      if (held) waits.add(held);
    }
    return waits.size > 0 ? Promise.all(waits) : undefined;
  }

  function add(id: string, user: string, ephemeral = false, written?: Recorded["written"]) {
    if (ephemeral) queue.push({ id, user, ephemeral });
    else if (written) queue.push({ id, user, written });
    else {
      // One record per delivery: another connection's copy adds nothing to write.
      if (open.has(id, user)) return;
      const entry = { id, user };
      open.set(id, user, entry);
      queue.push(entry);
    }
    timer ??= setTimeout(flush, options.intervalMs);
  }

  return {
    add,
    claim(id, user) {
      const entry = open.get(id, user);
      if (!entry) return false;
      open.delete(id, user);
      entry.claimed = true;
      return true;
    },
    // The batch that claimed it was not written: recorded as any other delivery.
    release: (id, user) => add(id, user),
    written(id, user, written) {
      places.set(id, user, { written, at: Date.now() });
    },
    flush,
    close: flush,
  };
}
