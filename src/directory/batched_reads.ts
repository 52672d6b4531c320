/**
 * Reads by id that concurrent callers share.
 *
 * Every publish to a `USER` audience and every connection reads a few directory entries:
 * hundreds of them arriving at once would each pay a round trip to the store, where one
 * `getMany` of ten keys costs little more than one `get`. Ids asked for in the same turn
 * of the event loop are read together instead: a batch goes to the store as soon as it
 * holds `maxBatch` ids, or on the next turn of the event loop with what it has (once the
 * I/O already done has been handled, so that the requests it carried join in).
 *
 * A batch can only be joined before it is sent, so a read never answers from a store read
 * that started before it was asked: a write that finished before the read was asked is
 * always seen.
 */

/** Reads entries by id, answering them in the order asked (`undefined` for unknown ids). */
export type ReadMany<T> = (ids: string[]) => Promise<(T | undefined)[]>;

/** Options of {@linkcode createBatchedReads}. */
export interface BatchedReadsOptions {
  /** Ids sent to the store in one read at most (default 10, one Deno KV `getMany`). */
  maxBatch?: number;
}

/**
 * Runs `task` on the next turn of the event loop. `setImmediate` (Deno and Node alike)
 * waits for nothing more than the I/O already done; a zero-delay timer, the fallback,
 * waits a millisecond or two, which a lone read at a quiet time would pay.
 */
const nextTurn: (task: () => void) => void = typeof globalThis.setImmediate === "function"
  ? (task) => void globalThis.setImmediate(task)
  : (task) => void setTimeout(task, 0);

interface Batch<T> {
  ids: string[];
  /** Where each id sits in `ids`: an id asked twice is read once. */
  at: Map<string, number>;
  result: Promise<(T | undefined)[]>;
  resolve(values: (T | undefined)[]): void;
  reject(error: unknown): void;
  sent: boolean;
}

/**
 * Wraps `load` so that concurrent reads of a few ids share its calls. A request for
 * `maxBatch` ids or more is already a batch: it goes to `load` as it is. When a shared
 * read fails, every caller waiting on it gets the error.
 */
export function createBatchedReads<T>(
  load: ReadMany<T>,
  options: BatchedReadsOptions = {},
): ReadMany<T> {
  const maxBatch = Math.max(1, options.maxBatch ?? 10);
  let pending: Batch<T> | undefined;

  function send(batch: Batch<T>) {
    if (batch.sent) return;
    batch.sent = true;
    if (pending === batch) pending = undefined;
    let reading: Promise<(T | undefined)[]>;
    try {
      reading = load(batch.ids);
    } catch (error) {
      reading = Promise.reject(error);
    }
    reading.then(batch.resolve, batch.reject);
  }

  function open(): Batch<T> {
    // Built by hand: `Promise.withResolvers` is missing on Node 20.
    let resolve!: Batch<T>["resolve"];
    let reject!: Batch<T>["reject"];
    const result = new Promise<(T | undefined)[]>((yes, no) => {
      resolve = yes;
      reject = no;
    });
    const batch: Batch<T> = {
      ids: [],
      at: new Map(),
      result,
      resolve,
      reject,
      sent: false,
    };
    nextTurn(() => send(batch));
    return batch;
  }

  return async (ids) => {
    if (ids.length >= maxBatch) return await load(ids);
    const slots: { batch: Batch<T>; index: number }[] = [];
    for (const id of ids) {
      const batch = pending ??= open();
      let index = batch.at.get(id);
      if (index === undefined) {
        index = batch.ids.push(id) - 1;
        batch.at.set(id, index);
        if (batch.ids.length >= maxBatch) send(batch);
      }
      slots.push({ batch, index });
    }
    return await Promise.all(slots.map(async ({ batch, index }) => (await batch.result)[index]));
  };
}
