/**
 * The fan-out of an event: one stream item per target, written with everything that goes
 * with it, either in the publish's own commit or by a job in batches that survives a
 * crash. A large audience's job runs in lanes side by side, each over its own target
 * chunks, ended together by one commit.
 */

import * as keys from "../keys.ts";
import { getManyEntries } from "../kv_reads.ts";
import type {
  EventRecord,
  EventStore,
  FanoutBatch,
  FanoutRunOptions,
  MailTask,
  StreamItem,
  TargetPlan,
  TargetRecord,
} from "../store.ts";
import { deleteAll, MAX_RETRIES, retryPause } from "./_commit.ts";
import { keyBytesOf, keyPartBytes, kvBudgetsOf, overOneCommit } from "./limits.ts";
import {
  claimDeliveries,
  collapses,
  dropSeqs,
  isInboxItem,
  releaseClaims,
  takeSeqs,
  targetItem,
} from "../items.ts";
import type { CollapseMark, UnreadMark } from "./_items.ts";

/**
 * Users a one-commit publish writes at most: one check per user, under KV's 100 checks
 * (sized for users without a head). A job's batches are sized by what each target
 * writes, and end where the checks of the users without a head reach the bound.
 */
export const FANOUT_BATCH = 90;
/**
 * Users per commit when items may replace older ones or queue mail: each user then
 * writes up to ten keys (and checks its collapse mark besides its seq), and a commit
 * holds at most 80 KiB of keys.
 */
export const FANOUT_BATCH_WIDE = 40;
/**
 * Users per job commit at most, on a database that allows more than Deno KV (a Redis KV
 * runs each commit alone: a commit this large takes a few milliseconds there).
 */
export const FANOUT_BATCH_MAX = 500;

/**
 * Most lanes of one fan-out job: parts of the audience written side by side, so that one
 * lane's commit is under way while another builds its next batch or hands its last one on.
 */
export const FANOUT_LANES = 2;
/** Targets a lane takes at least: a smaller audience runs in one lane. */
export const LANE_TARGETS_MIN = 1000;

/**
 * A pending fan-out job, or one lane of it: where its runner is in the target chunks.
 *
 * A job of several lanes has one key per lane ({@linkcode laneKey}); lane `k` writes the
 * chunks `k`, `k + lanes`, … and, past its last one, stays with `chunk >= chunks` until
 * every lane is there: one commit then ends them all and the event's fan-out.
 */
export interface Job {
  id: string;
  chunks: number;
  chunk: number;
  offset: number;
  /** The token its target chunks are stored under; absent on jobs written before tokens. */
  targets?: string;
  /** How many lanes the job runs in; absent: one (jobs written before lanes, small ones). */
  lanes?: number;
  /** True when seqs were assigned at creation: each target chunk has its seqs beside it. */
  seqs?: true;
}

/** The keys of a job's target chunks, and of their assigned seqs when it has them. */
export function jobListKeys(id: string, chunks: number, token?: string, seqs = false) {
  const out: Deno.KvKey[] = [];
  for (let i = 0; i < chunks; i++) {
    out.push(keys.jobTargetsKey(id, i, token));
    if (seqs && token !== undefined) out.push(keys.jobSeqsKey(id, i, token));
  }
  return out;
}

/** A target chunk as a runner reads it: its users, and the seqs assigned to some of them. */
interface TargetChunk {
  ids: string[];
  /** Seqs given to users at creation, written as they are (see `EventStore.createEvent`). */
  assigned: Map<string, number> | undefined;
}

/** Reads target chunk `i` of `job`, with its assigned seqs when it has them. */
async function readChunk(kv: Deno.Kv, job: Job, i: number): Promise<TargetChunk | null> {
  if (!job.seqs || job.targets === undefined) {
    const ids = (await kv.get<string[]>(keys.jobTargetsKey(job.id, i, job.targets))).value;
    return ids && { ids, assigned: undefined };
  }
  const [ids, seqs] = await kv.getMany<[string[], number[]]>([
    keys.jobTargetsKey(job.id, i, job.targets),
    keys.jobSeqsKey(job.id, i, job.targets),
  ]);
  if (!ids.value) return null;
  const assigned = new Map<string, number>();
  ids.value.forEach((user, k) => {
    const seq = seqs.value?.[k];
    if (seq) assigned.set(user, seq);
  });
  return { ids: ids.value, assigned: assigned.size > 0 ? assigned : undefined };
}

/** The key of lane `lane` of event `id`'s job: the first lane's is the job's own key. */
export const laneKey = (id: string, lane: number): Deno.KvKey =>
  lane === 0 ? keys.jobKey(id) : [...keys.jobKey(id), lane];

/** How many lanes a job of `targets` users runs in. */
export const lanesFor = (targets: number): number =>
  Math.max(1, Math.min(FANOUT_LANES, Math.floor(targets / LANE_TARGETS_MIN)));

/** One target of a fan-out commit: its seq, its plan and the item it replaces. */
export interface TargetWrite {
  user: string;
  /**
   * The user's stored last seq as read: the item goes right above it, checked, and moves
   * it. Or a seq taken from the user's stream head: the item goes there, and the stored
   * last seq is neither checked nor moved.
   */
  seq: Deno.KvEntryMaybe<number> | number;
  plan?: TargetPlan;
  /** The user's collapse mark as read, when the event collapses: checked. */
  mark?: Deno.KvEntryMaybe<CollapseMark>;
  /** The older unread item with the same collapse key, when the event collapses. */
  previous?: StreamItem;
  /** Its delivery was claimed: the record is written as delivered (a shown item only). */
  delivered?: true;
}

/**
 * Adds one target's stream item and everything written with it (seq check, delivery
 * record, pending ack, unread mark, collapse replacement with the replaced item's pending
 * ack, mail task) to `op`.
 *
 * Shared by the job fan-out and the one-commit publish, so both write the same keys.
 * The collapse mark is checked: a write at a head's seq checks no stored seq, and two
 * items of one key racing must not both replace the same older one. Seqs from heads are
 * not committed in order: an item never replaces a newer one nor moves the mark back.
 */
export function addTargetItem(
  op: Deno.AtomicOperation,
  event: EventRecord,
  target: TargetWrite,
  context: { now: number; collapsing: boolean; recentWindowMs: number },
): FanoutBatch["items"][number] {
  const { user, plan } = target;
  const { id } = event;
  const { now, collapsing } = context;
  const seq = typeof target.seq === "number" ? target.seq : (target.seq.value ?? 0) + 1;
  const { item, quiet, pending } = targetItem(event, { seq, now, ...(plan ? { plan } : {}) });
  const delivered = target.delivered && !quiet;
  if (typeof target.seq !== "number") op.check(target.seq).set(keys.seqKey(user), seq);
  op.set(
    keys.streamKey(user, seq),
    item,
    event.durable ? undefined : { expireIn: context.recentWindowMs + 60_000 },
  );
  // Ephemeral items are not waited on: their deliveries are counted, not recorded per user.
  if (event.durable) {
    op.set(
      keys.targetKey(id, user),
      {
        seq,
        state: quiet ? "muted" : delivered ? "delivered" : "pending",
        at: now,
      } satisfies TargetRecord,
    );
  }
  if (pending) op.set(keys.pendingKey(user, seq), pending);
  if (isInboxItem(item)) {
    op.set(
      keys.unreadKey(user, seq),
      (event.expiresAt ? { exp: event.expiresAt } : {}) satisfies UnreadMark,
    );
  }
  let replaces: { id: string; seq: number } | undefined;
  if (collapsing && !quiet) {
    if (target.mark) op.check(target.mark);
    const old = target.previous;
    if (old && old.seq < seq) {
      op.delete(keys.unreadKey(user, old.seq));
      // A replaced item is no longer shown: an ack of it will not come, and redelivering
      // it would bring back what the newer one replaced.
      if (old.ack) op.delete(keys.pendingKey(user, old.seq));
      op.set(keys.streamKey(user, old.seq), { ...old, replacedBy: id });
      replaces = { id: old.id, seq: old.seq };
    }
    if ((target.mark?.value?.seq ?? 0) < seq) {
      op.set(keys.collapseKey(user, event.collapseKey!), { seq, id } satisfies CollapseMark);
    }
  }
  if (plan?.mailAt !== undefined) {
    const taskId = `${id}:${user}`;
    op.set(
      keys.mailTaskKey(plan.mailAt, taskId),
      { kind: "item", id: taskId, user, event: id, seq, attempts: 0 } satisfies MailTask,
    );
  }
  return {
    user,
    item,
    ...(pending ? { pending } : {}),
    ...(replaces ? { replaces } : {}),
    ...(delivered && event.durable ? { delivered: true as const } : {}),
  };
}

/**
 * Per user, the collapse mark of `collapseKey` as read, and the unread, unexpired item it
 * names, if any.
 */
export async function olderUnread(
  kv: Deno.Kv,
  users: string[],
  collapseKey: string,
  plans: TargetPlan[] | undefined,
): Promise<{ mark: Deno.KvEntryMaybe<CollapseMark>; previous?: StreamItem }[]> {
  const marks = await getManyEntries<CollapseMark>(
    kv,
    users.map((u) => keys.collapseKey(u, collapseKey)),
  );
  const now = Date.now();
  const candidates = users.map((user, i) =>
    marks[i].value && !plans?.[i]?.quiet ? { user, seq: marks[i].value!.seq } : undefined
  );
  const present = candidates.filter((c) => c !== undefined);
  const [unread, items] = await Promise.all([
    getManyEntries<UnreadMark>(kv, present.map((c) => keys.unreadKey(c.user, c.seq))),
    getManyEntries<StreamItem>(kv, present.map((c) => keys.streamKey(c.user, c.seq))),
  ]);
  let j = 0;
  return candidates.map((c, i) => {
    const mark = marks[i];
    if (!c) return { mark };
    const k = j++;
    const item = items[k].value;
    if (!unread[k].value || !item || item.readAt !== undefined) return { mark };
    if (item.exp !== undefined && item.exp <= now) return { mark };
    return { mark, previous: item };
  });
}

/** Which lane of how many a run writes. */
interface Lane {
  lane: number;
  lanes: number;
}

/** The next batch of a fan-out job, prepared while the current one commits. */
interface Ahead {
  users: string[];
  /** The stored last seq of each user who had no head then, as read. */
  seqs: Map<string, Deno.KvEntryMaybe<number>>;
  plans: TargetPlan[] | undefined;
}

/** Creates the job side of the fan-out on `kv`. */
export function createKvFanout(
  kv: Deno.Kv,
  options: { recentWindowMs: number },
): Pick<EventStore, "runFanout" | "unfinishedFanouts"> {
  async function runFanout(
    id: string,
    onBatch: (batch: FanoutBatch) => void,
    fanoutOptions: FanoutRunOptions = {},
  ) {
    const [first, read] = await Promise.all([
      kv.get<Job>(keys.jobKey(id)),
      kv.get<EventRecord>(keys.eventKey(id)),
    ]);
    const event = read.value;
    if (!first.value || !event) return;
    const lanes = first.value.lanes ?? 1;
    const run = (lane: number) => runLane(event, { lane, lanes }, onBatch, fanoutOptions);
    if (lanes === 1) return await run(0);
    const runs = await Promise.allSettled(Array.from({ length: lanes }, (_, lane) => run(lane)));
    const failed = runs.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    await endLanes(event, first.value);
  }

  /** Runs one lane of a job to its end (a job of one lane, to the end of the fan-out). */
  async function runLane(
    event: EventRecord,
    lane: Lane,
    onBatch: (batch: FanoutBatch) => void,
    fanoutOptions: FanoutRunOptions,
  ) {
    // Seqs taken from heads and not written yet, by user: kept across conflicts, so that
    // a retry writes at the same seqs, and given back when the run ends without them.
    const taken = new Map<string, number>();
    // Deliveries claimed for batches not written yet: kept across conflicts too.
    const claimed = new Set<string>();
    try {
      await fanOut(event, lane, onBatch, { ...fanoutOptions, taken, claimed });
    } finally {
      dropSeqs(fanoutOptions.seqs, taken);
      releaseClaims(fanoutOptions.claims, event.id, claimed);
    }
  }

  /**
   * Ends a job of several lanes once each is past its last chunk. The target chunks go
   * first (no lane reads them again); then one commit deletes every lane and ends the
   * event's fan-out, checked against the lanes as read: a runner overlapping this one may
   * have ended it already.
   */
  async function endLanes(event: EventRecord, job: Job) {
    const { id } = event;
    const lanes = job.lanes ?? 1;
    await deleteAll(kv, jobListKeys(id, job.chunks, job.targets, job.seqs));
    for (let retries = 0;; retries++) {
      const entries = await kv.getMany<Job[]>(
        Array.from({ length: lanes }, (_, lane) => laneKey(id, lane)),
      );
      if (entries.every((entry) => entry.value === null)) return;
      const behind = entries.findIndex((entry) => entry.value && entry.value.chunk < job.chunks);
      if (behind >= 0) throw new Error(`Fan-out of event "${id}" left lane ${behind} unfinished`);
      const op = kv.atomic();
      for (const entry of entries) op.check(entry).delete(entry.key);
      op.set(keys.eventKey(id), { ...event, fanningOut: false });
      if ((await op.commit()).ok) return;
      if (retries >= MAX_RETRIES) throw new Error(`Fan-out of event "${id}" keeps conflicting`);
      await retryPause(retries);
    }
  }

  async function fanOut(
    event: EventRecord,
    { lane, lanes }: Lane,
    onBatch: (batch: FanoutBatch) => void,
    fanoutOptions: FanoutRunOptions & { taken: Map<string, number>; claimed: Set<string> },
  ) {
    const { seqs: source, plan, taken, claimed, claims } = fanoutOptions;
    const { id } = event;
    const key = laneKey(id, lane);
    const collapsing = collapses(event);
    // Whether the job's chunks have assigned seqs beside them (then deleted with them).
    let jobSeqs = false;
    // What one target writes at most: its item, delivery record, unread mark, stored seq
    // (without a head), pending ack, mail task, collapse replacement (the older item, its
    // unread mark and pending ack, the collapse mark); and checks: its stored seq (without
    // a head) and its collapse mark.
    const mutations = 4 + (event.ackRequired ? 1 : 0) + (plan ? 1 : 0) + (collapsing ? 4 : 0);
    // Seqs assigned at creation to users of the current chunk: written as they are.
    let assigned: Map<string, number> | undefined;
    /** Whether `user` writes at a seq of its own: taken from a head, or assigned. */
    const headed = (user: string, given = assigned) => taken.has(user) || given?.has(user) === true;
    /** The users who take a seq (from a head, or the stored one): those not assigned one. */
    const free = (users: string[], given = assigned) =>
      given ? users.filter((u) => !given.has(u)) : users;
    const checksOf = (user: string, given = assigned) =>
      (headed(user, given) ? 0 : 1) + (collapsing ? 1 : 0);
    // Long user ids make long keys: a batch stays under KV's total key size per commit,
    // counted in bytes (a 200-character id may take 600) over every key a target writes or
    // checks. Each names the user, its kind and at most a number; two of them name the
    // event id too (delivery record, mail task) and two the collapse key (its mark).
    const keysPerTarget = mutations + 1 + (collapsing ? 1 : 0);
    const shared = 2 * keyPartBytes(id) +
      (event.collapseKey === undefined ? 0 : 2 * keyPartBytes(event.collapseKey));
    const budgets = kvBudgetsOf(kv);
    // How many users a batch takes, and the most one commit holds under the budgets.
    const sizesOf = (ids: string[], chunks: number) => {
      chunks *= jobSeqs ? 2 : 1;
      const longest = ids.reduce((most, u) => Math.max(most, keyPartBytes(u)), 0);
      const perTarget = keysPerTarget * (keyBytesOf() + longest) + shared;
      const most = Math.max(
        1,
        Math.min(
          Math.floor((budgets.mutations - 4 - chunks) / mutations),
          Math.floor(budgets.keyBytes / perTarget),
        ),
      );
      return { size: Math.min(FANOUT_BATCH_MAX, most), most };
    };
    let sizes = { size: FANOUT_BATCH, most: FANOUT_BATCH };
    /**
     * The users of a chunk a batch from `offset` takes: `size` of them, or all that are
     * left when fewer than a quarter batch would remain for a commit of their own and the
     * budgets hold them (a chunk of 545 ids in batches of 500 would cost a second commit
     * for 45 users).
     */
    const windowOf = (ids: string[], offset: number, { size, most }: typeof sizes) => {
      const rest = ids.length - offset;
      const whole = rest <= size || (rest - size < size / 4 && rest <= most);
      return ids.slice(offset, offset + (whole ? rest : size));
    };
    let planned: { at: string; plans: TargetPlan[] } | undefined;
    let targets: { index: number; ids: string[] } | undefined;
    let retries = 0;
    // The job as this runner last wrote it: a commit's versionstamp is that of every key
    // it sets, so the next batch checks it without reading it back. Unknown after a
    // conflict (another runner may have moved it), then read again.
    let known: Deno.KvEntryMaybe<Job> | undefined;
    // The next batch, prepared while the current one commits (other users: nothing of
    // theirs waits for that commit): its seqs taken from heads or read, its plan made. A
    // stale read fails its commit's check, which then retries from fresh reads like any
    // conflict. At the end of a chunk, the next chunk's ids are read ahead too.
    let prefetched:
      | { at: string; ids?: Promise<TargetChunk | null>; ahead: Promise<Ahead> }
      | undefined;
    /**
     * The users of a window a batch takes, its seqs taken. Users with a head need no
     * check: the batch ends where the checks of those without one would pass KV's bound
     * (the rest keep their seqs for the next batch).
     */
    const cutOf = (window: string[], given = assigned) => {
      let checks = 1;
      let cut = 0;
      while (cut < window.length && checks + checksOf(window[cut], given) <= budgets.checks) {
        checks += checksOf(window[cut], given);
        cut++;
      }
      return cut === window.length ? window : window.slice(0, Math.max(1, cut));
    };
    const readAhead = async (window: string[], given = assigned): Promise<Ahead> => {
      // A take that fails is taken again, and fails the batch, when its turn comes.
      await takeSeqs(source, free(window, given), taken).catch(() => {});
      const users = cutOf(window, given);
      const unheaded = users.filter((user) => !headed(user, given));
      const [read, plans] = await Promise.all([
        getManyEntries<number>(kv, unheaded.map((u) => keys.seqKey(u))),
        plan?.(users, event),
      ]);
      return { users, seqs: new Map(unheaded.map((user, i) => [user, read[i]])), plans };
    };
    // A committed batch is handed on once the next batch's commit is under way: its live
    // delivery (the users' actors, on this thread) then overlaps that write.
    let landed: FanoutBatch | undefined;
    const handOn = () => {
      if (!landed) return;
      const batch = landed;
      landed = undefined;
      onBatch(batch);
    };
    try {
      while (true) {
        const jobEntry = known ?? await kv.get<Job>(key);
        known = undefined;
        const job = jobEntry.value;
        // Ended, or (a lane) past its last chunk, waiting for the others.
        if (!job || job.chunk >= job.chunks) return;
        jobSeqs = job.seqs === true;
        if (targets?.index !== job.chunk) {
          const read = prefetched?.ids && prefetched.at === `${job.chunk}:${job.offset}`
            ? await prefetched.ids
            : await readChunk(kv, job, job.chunk);
          if (!read) throw new Error(`Fan-out of event "${id}" lost target chunk ${job.chunk}`);
          targets = { index: job.chunk, ids: read.ids };
          assigned = read.assigned;
          sizes = sizesOf(read.ids, job.chunks);
        }
        const window = windowOf(targets.ids, job.offset, sizes);
        const at = `${job.chunk}:${job.offset}`;
        const ahead = prefetched?.at === at ? await prefetched.ahead : undefined;
        prefetched = undefined;
        // The job moves forward only: seqs taken for a batch another runner wrote meanwhile
        // will not be written by this one.
        dropSeqs(source, taken, new Set(window));
        // Seqs first, before anything is read for the batch: heads hand them in the order
        // writes arrive.
        await takeSeqs(source, free(window), taken);
        const users = cutOf(window);
        // Planned once per batch (a retry of the same batch with the same cut keeps it).
        const planKey = `${at}:${users.length}`;
        if (plan && planned?.at !== planKey) {
          const early = ahead?.users.length === users.length ? ahead.plans : undefined;
          planned = { at: planKey, plans: early ?? await plan(users, event) };
        }
        const plans = planned?.at === planKey ? planned.plans : undefined;
        // The stored last seq of each user without a head, as read (ahead, or now for those
        // that had a head then and lost it since).
        const stored = ahead?.seqs ?? new Map<string, Deno.KvEntryMaybe<number>>();
        const unread = users.filter((user) => !headed(user) && !stored.has(user));
        const read = await getManyEntries<number>(kv, unread.map((u) => keys.seqKey(u)));
        unread.forEach((user, i) => stored.set(user, read[i]));
        // A head that opened (or began to) since the take reserved its range above what was
        // just read: such a user takes from it instead, or this write could land inside the
        // head's range.
        await takeSeqs(source, free(users), taken);
        // The older unread item each user has under the same collapse key, if any.
        const older = collapsing
          ? await olderUnread(kv, users, event.collapseKey!, plans)
          : undefined;
        const now = Date.now();
        const op = kv.atomic().check(jobEntry);
        const items: FanoutBatch["items"] = [];
        const context = { now, collapsing, recentWindowMs: options.recentWindowMs };
        claimDeliveries(claims, event, users, assigned, claimed);
        let delivered = 0;
        users.forEach((user, i) => {
          const entry = addTargetItem(op, event, {
            user,
            seq: assigned?.get(user) ?? taken.get(user) ?? stored.get(user)!,
            ...(plans?.[i] ? { plan: plans[i] } : {}),
            ...older?.[i],
            ...(claimed.has(user) ? { delivered: true } : {}),
          }, context);
          if (entry.delivered) delivered++;
          items.push(entry);
        });
        if (delivered > 0) op.sum(keys.counterKey(id, "delivered"), BigInt(delivered));
        let next = { ...job, offset: job.offset + users.length };
        if (next.offset >= targets.ids.length) {
          next = { ...next, chunk: job.chunk + lanes, offset: 0 };
        }
        const done = next.chunk >= job.chunks;
        // The last batch of a lane of several leaves it past its last chunk: the lanes end
        // together, in `endLanes`.
        const ends = done && lanes === 1;
        if (ends) {
          op.delete(key);
          for (const listKey of jobListKeys(id, job.chunks, job.targets, job.seqs)) {
            op.delete(listKey);
          }
          op.set(keys.eventKey(id), { ...event, fanningOut: false });
        } else {
          op.set(key, next);
          // Without collapse reads to interleave, read ahead: the next batch's seqs and plan,
          // and at the end of a chunk the next chunk's ids first.
          if (!done && !collapsing) {
            const at = `${next.chunk}:${next.offset}`;
            if (next.chunk === job.chunk) {
              prefetched = { at, ahead: readAhead(windowOf(targets.ids, next.offset, sizes)) };
            } else {
              const ids = readChunk(kv, job, next.chunk);
              // The next chunk's read ahead takes no seq for the users it assigned.
              const ahead = ids.then((read) =>
                read
                  ? readAhead(windowOf(read.ids, 0, sizesOf(read.ids, job.chunks)), read.assigned)
                  : readAhead([])
              );
              prefetched = { at, ids, ahead };
            }
            // Settled even if never used (a conflict discards them).
            prefetched.ahead.catch(() => {});
            prefetched.ids?.catch(() => {});
          }
        }
        const committing = op.commit();
        // A batch that cannot be handed on stops the run, once the commit under way has
        // settled (and, if it landed, been handed on as well): nothing is left in flight.
        let stop: { error: unknown } | undefined;
        try {
          handOn();
        } catch (error) {
          stop = { error };
        }
        let res: Deno.KvCommitResult | Deno.KvCommitError;
        try {
          res = await committing;
        } catch (error) {
          // Refused as larger than one commit (a size counted short), the batch wrote
          // nothing: it goes again in halves, or every run of the job would fail on it.
          if (stop || users.length === 1 || !overOneCommit(error)) throw error;
          const half = Math.ceil(users.length / 2);
          sizes = { size: half, most: half };
          prefetched = undefined;
          continue;
        }
        if (!res.ok && stop) throw stop.error;
        if (!res.ok) {
          prefetched = undefined;
          // Another publish moved one of these users' seq, or another runner moved the job.
          if (++retries > MAX_RETRIES) {
            throw new Error(`Fan-out of event "${id}" keeps conflicting`);
          }
          await retryPause(retries - 1);
          continue;
        }
        retries = 0;
        // Written: these seqs and deliveries are the batch's now, handed back with it.
        for (const user of users) {
          taken.delete(user);
          claimed.delete(user);
        }
        if (!done) known = { key, value: next, versionstamp: res.versionstamp };
        landed = {
          event: ends ? { ...event, fanningOut: false } : event,
          items,
          version: res.versionstamp,
        };
        if (stop) throw stop.error;
        if (done) return;
      }
    } finally {
      // What committed is handed on, whatever ends the run.
      handOn();
    }
  }

  async function unfinishedFanouts(options: { assigned?: boolean } = {}): Promise<string[]> {
    // A job of several lanes has a key per lane.
    const ids = new Set<string>();
    for await (const entry of kv.list<Job>({ prefix: keys.jobPrefix() })) {
      if (!options.assigned || entry.value.seqs) ids.add(entry.value.id);
    }
    return [...ids];
  }

  return { runFanout, unfinishedFanouts };
}
