/**
 * The fan-out janitor: finishes the fan-out jobs that a node left unfinished when it
 * died, without waiting for that node to come back.
 *
 * One node runs it (a cluster singleton). Every `intervalMs` it lists the unfinished
 * jobs and hands on to `resume` those it already saw unfinished on its previous pass: a
 * job a node has just created is left to it, since the publishing node takes the job's
 * lease right after creating it. `resume` runs each job only under the job's lease (see
 * `hold` in `singletons.ts`), so a job another node is running is left alone, and one
 * whose runner died is taken over once its lease lapses.
 *
 * @module
 */

/** Dependencies of {@linkcode createFanoutJanitor}. */
export interface FanoutJanitorDeps {
  /** The ids of the unfinished fan-out jobs (the store's `unfinishedFanouts`). */
  unfinished(): Promise<string[]>;
  /**
   * Runs the jobs of `ids` that nobody runs, in the background (the publisher's
   * `resumeUnfinished`, which holds each job's lease while it runs).
   */
  resume(ids: string[]): Promise<unknown>;
  /** How often the jobs are listed. */
  intervalMs: number;
  onError(message: string, error: unknown): void;
}

/** The janitor: started and stopped by whoever holds its singleton. */
export interface FanoutJanitor {
  /** Starts listing the jobs every `intervalMs` (the first pass at once). */
  start(): Promise<void>;
  /** Stops listing; jobs already resumed run on, under their leases. */
  stop(): void;
}

/** Creates the fan-out janitor. */
export function createFanoutJanitor(deps: FanoutJanitorDeps): FanoutJanitor {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running = false;
  // Bumped by each start: a pass still under way from before a stop schedules nothing.
  let generation = 0;
  // The jobs seen unfinished on the previous pass.
  let seen = new Set<string>();

  async function pass() {
    const ids = await deps.unfinished();
    const stale = ids.filter((id) => seen.has(id));
    seen = new Set(ids);
    if (stale.length > 0) await deps.resume(stale);
  }

  function next(of: number) {
    if (!running || of !== generation) return;
    timer = setTimeout(async () => {
      timer = undefined;
      try {
        await pass();
      } catch (error) {
        deps.onError("Looking for unfinished fan-outs failed", error);
      }
      next(of);
    }, deps.intervalMs);
  }

  return {
    start() {
      if (running) return Promise.resolve();
      running = true;
      seen = new Set();
      const of = ++generation;
      return pass().catch((error) => deps.onError("Looking for unfinished fan-outs failed", error))
        .finally(() => next(of));
    },
    stop() {
      running = false;
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
