/** What a test client received and has not taken yet, awaited with timeouts. */

/** A queue of received items that tests take from, in order, by predicate. */
export interface InboxQueue<T> {
  /** Every item received so far, in order. */
  received: T[];
  /** Adds a received item and wakes a waiting `next`. */
  push(item: T): void;
  /** Wakes a waiting `next` (the source ended). */
  wake(): void;
  /** The next item (matching `where`) not yet taken; fails after `timeoutMs` or once `ended()`. */
  next(where?: (item: T) => boolean, timeoutMs?: number): Promise<T>;
  /**
   * Waits for the next item matching `barrier` and takes it, then takes and returns every
   * unread item matching `where` received before it: to prove that something did not
   * arrive, wait for a later item that must come after it.
   */
  before(
    barrier: (item: T) => boolean,
    where?: (item: T) => boolean,
    timeoutMs?: number,
  ): Promise<T[]>;
}

/** Creates a queue; `ended` tells `next` that nothing more will come. */
export function createInboxQueue<T>(what: string, ended: () => boolean): InboxQueue<T> {
  const received: T[] = [];
  const unread: T[] = [];
  let waiting: (() => void) | undefined;

  async function next(where: (item: T) => boolean = () => true, timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const index = unread.findIndex(where);
      if (index >= 0) return unread.splice(index, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0 || ended()) {
        throw new Error(
          `No matching ${what} within ${timeoutMs} ms; unread: ${
            JSON.stringify(unread).slice(0, 500)
          }`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        waiting = resolve;
        timer = setTimeout(resolve, left); // deadline, not synchronisation
      });
      clearTimeout(timer);
      waiting = undefined;
    }
  }

  return {
    received,
    push(item) {
      received.push(item);
      unread.push(item);
      waiting?.();
    },
    wake: () => waiting?.(),
    next,
    async before(barrier, where = () => true, timeoutMs) {
      const mark = received.indexOf(await next(barrier, timeoutMs));
      const out: T[] = [];
      for (let i = 0; i < unread.length;) {
        if (received.indexOf(unread[i]) < mark && where(unread[i])) {
          out.push(...unread.splice(i, 1));
        } else i++;
      }
      return out;
    },
  };
}
