/**
 * The fan-out janitor: finishes the fan-outs that a node left unfinished when it died,
 * without waiting for that node to come back or for another request: the jobs of events,
 * and the fan-out jobs of conversations whose owner died between two commits.
 *
 * One node runs it (a cluster singleton). Every `intervalMs` it lists each kind of
 * unfinished work and hands on to its `resume` the ids it already saw unfinished on its
 * previous pass: a job a node has just created is left to it, since that node holds the
 * job's lease (an event's `fanout/<id>`, a conversation's owner lease) right after
 * creating it. Each `resume` runs a job only under that lease (see `hold` in
 * `singletons.ts`, and the conversations' ownership), so a job another node is running is
 * left alone, and one whose runner died is taken over once its lease lapses.
 *
 * @module
 */

/** One kind of work the janitor looks after. */
export interface UnfinishedWork {
  /** What the work is, for the log ("event fan-outs", "conversation fan-outs"). */
  name: string;
  /** The ids of the unfinished jobs. */
  unfinished(): Promise<string[]>;
  /** Runs the jobs of `ids` that nobody runs, in the background, each under its lease. */
  resume(ids: string[]): Promise<unknown>;
}

/** Dependencies of {@linkcode createFanoutJanitor}. */
export interface FanoutJanitorDeps {
  work: UnfinishedWork[];
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
  // By kind of work, the jobs seen unfinished on the previous pass.
  let seen = deps.work.map(() => new Set<string>());

  /** One pass over every kind of work: one that fails does not hold up the others. */
  async function pass() {
    await Promise.all(deps.work.map(async (work, k) => {
      try {
        const ids = await work.unfinished();
        const stale = ids.filter((id) => seen[k].has(id));
        seen[k] = new Set(ids);
        if (stale.length > 0) await work.resume(stale);
      } catch (error) {
        deps.onError(`Looking for unfinished ${work.name} failed`, error);
      }
    }));
  }

  function next(of: number) {
    if (!running || of !== generation) return;
    timer = setTimeout(async () => {
      timer = undefined;
      await pass();
      next(of);
    }, deps.intervalMs);
  }

  return {
    start() {
      if (running) return Promise.resolve();
      running = true;
      seen = deps.work.map(() => new Set());
      const of = ++generation;
      return pass().finally(() => next(of));
    },
    stop() {
      running = false;
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
