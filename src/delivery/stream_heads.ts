/**
 * Stream heads: the in-memory front of each active user's stream.
 *
 * While a user's actor is live, their head hands out every new seq of their stream from a
 * range reserved in the store (`reserveSeqs`), so a delivery costs no read, check or write
 * of the stored last seq, and an ephemeral item (REALTIME or SYSTEM without ack) costs no
 * write at all. The head then passes items on to the user's actor in seq order: an item
 * whose durable write is still in flight holds back the ones taken after it, so a client
 * never sees a seq before a smaller one. The items passed on stay in the head's recent
 * window for a resume: ephemeral ones are nowhere else, and while the window holds every
 * item after a client's position a resume needs no read of the store.
 *
 * A head's life is an epoch: a client that resumes within it may count on the window; a
 * head built anew (after a restart, or once the actor passivated) starts a new epoch.
 *
 * In cluster mode (`follow`), several nodes hold heads of one user, so none reserves: the
 * store allocates every seq, checked, and keeps every item (ephemeral ones for the recent
 * window), and the heads only put in order the items the bus brings from every node. The
 * epoch is the cluster's, since a resume on any node reads everything from the store; an
 * item that never arrives (its node died between commit and announcement) is read from the
 * store once it stalls.
 */

import type { LiveItem } from "../../actors/user.machine.ts";
import { newEpoch, type StreamEpochs } from "../realtime/epochs.ts";
import { encodeEventFrame } from "../schemas/frames.ts";
import type { SeqSource, StreamItem, StreamStore } from "../store/store.ts";

/** Seqs reserved per range: a head asks for the next one when half of it is left. */
export const LEASE_SIZE = 1000;
/** Ephemeral items a head keeps for a resume, at most. */
export const RECENT_ITEMS = 100;
/**
 * How long an item waits for a seq before it that is not settled. A write normally lands
 * within milliseconds; one whose answer was lost (its writer failed after committing)
 * must not hold the user's later items for long: past this, they go on, and the late one
 * goes out whenever it settles, out of order. A client away then resumes past it: its
 * resume says `recovered: false` (see `recent`), and it finds the item stored.
 */
export const STALL_MS = 2_000;
/** Late items a head remembers for its resumes, at most (the oldest go first). */
export const LATE_MARKS = 32;
/** Audiences smaller than this are visited as given (see `order`). */
export const ORDER_MIN = 256;

/** An item of the recent window. */
export interface RecentItem {
  item: StreamItem;
  /**
   * Its frame, encoded again from the event's shared envelope JSON when it has one; none
   * for a conversation message, which is rendered for its reader as it is now.
   */
  frame?: () => string;
}

/** What a resume can take from a head's recent window. */
export interface RecentRead {
  /** Ephemeral items after the position, in seq order. */
  items: RecentItem[];
  /** False when the window no longer holds every ephemeral item after the position. */
  complete: boolean;
  /**
   * True when `items` are every item passed on after the position, durable ones too (not
   * replaced since): a resume then reads nothing from the store.
   */
  covered: boolean;
}

/** A head's position, as a `welcome` tells it. */
export interface HeadPosition {
  epoch: string;
  /** The first seq of this head's life: a position below it belongs to another epoch. */
  start: number;
  /** The last seq passed on: every seq up to it is stored, in the window, or unused. */
  released: number;
}

/** How the heads of a cluster node follow streams whose seqs the store allocates. */
export interface FollowMode {
  /** The cluster's epoch of every stream (read once the store is reachable). */
  epoch(): string;
  /**
   * The stored items after `after` up to `upTo`, ready to pass on: what fills a gap the
   * bus left.
   */
  fill(user: string, after: number, upTo: number): Promise<LiveItem[]>;
}

/** Dependencies of {@linkcode createStreamHeads}. */
export interface StreamHeadsDeps {
  store: Pick<StreamStore, "reserveSeqs" | "lastSeq">;
  /** Cluster mode: no head reserves seqs; they follow what the store allocated. */
  follow?: FollowMode;
  /** Passes an item on to the user (their actor), in seq order. */
  release(user: string, live: LiveItem): void;
  /** How long ephemeral items stay replayable. */
  recentWindowMs: number;
  onError(message: string, error: unknown): void;
  leaseSize?: number;
  recentItems?: number;
  stallMs?: number;
  now?: () => number;
}

/** The heads of the users active in this process. */
export interface StreamHeads extends SeqSource, StreamEpochs {
  /** The user's head, built (reserving a first range) when they have none. */
  open(user: string): Promise<HeadPosition>;
  /** Ends the user's head (their actor ended): items settled later go straight on. */
  close(user: string): void;
  /** Whether the user has a head. */
  has(user: string): boolean;
  /**
   * A taken seq is done: `live` is its item to pass on, absent when nothing is to be
   * shown (a quiet item, or a seq given back). Items pass on in seq order.
   */
  settle(user: string, seq: number, live?: LiveItem): void;
  /** The head's position, if the user has a head. */
  position(user: string): HeadPosition | undefined;
  /** The window's ephemeral items after `after`, if the user has a head. */
  recent(user: string, after: number): RecentRead | undefined;
  /** How many heads are open. */
  size(): number;
  /**
   * Marks `user`'s `item` as passed on before it is stored (a durable item that goes out
   * ahead of its fan-out's write), `json` its event's client envelope: a resume in the
   * head's epoch replays it from here (see `recent`), acks and reads of the user wait for
   * it ({@linkcode StreamHeads.whenStored}).
   */
  hold(user: string, item: StreamItem, json: string): void;
  /** A held item is stored now: answers whether it was held. */
  stored(user: string, seq: number): boolean;
  /**
   * A held item will not be stored by this process (its fan-out failed; the next start
   * writes it): a resume from below it is not provably complete.
   */
  lost(user: string, seq: number): void;
  /**
   * Settles once every item of `user` held now is stored or lost; none when none is held,
   * or (with `below`) when none held is below that seq.
   */
  whenStored(user: string, below?: number): Promise<void> | undefined;
  /**
   * `users` in the order to visit them in: those with a head in the order their heads
   * opened, the others after them as given, each once. A user's head, actor, session and
   * socket are built together when they connect, so the heads' order is about the order of
   * their state in memory; a large fan-out that visits its targets in it touches memory in
   * order rather than at random (an audience comes in the directory's order, or the
   * publisher's). A small audience is answered as given.
   */
  order(users: string[]): string[];
}

interface Head extends HeadPosition {
  user: string;
  /** The next seq to take. */
  next: number;
  /** The last seq of the reserved ranges. */
  ceiling: number;
  /**
   * Seqs settled out of order, waiting for the ones before them (null: nothing to show);
   * made when the first one waits (most heads never need one).
   */
  settled: Map<number, LiveItem | null> | undefined;
  /** Fires when an out-of-order item waited too long. */
  stall: ReturnType<typeof setTimeout> | undefined;
  renewing: Promise<void> | undefined;
  /**
   * Ephemeral items passed on, oldest first. Each keeps the event's envelope JSON, which
   * every target shares, rather than its own frame: a window costs its items, not their
   * bodies.
   */
  window: { item: StreamItem; json?: string; frame?: string; replaced?: true }[];
  /** Every ephemeral item passed on from this seq on is still in the window. */
  floor: number;
  /** Every item passed on from this seq on, durable ones too, is still in the window. */
  coverFloor: number;
  /**
   * Items passed on below the released seq (a stalled write that landed after the items
   * behind it went on), each with the released seq then: a client whose position lies
   * between them may have been away when it went out (made when first needed, the last
   * {@linkcode LATE_MARKS} kept).
   */
  late: { seq: number; upTo: number }[] | undefined;
  /** The highest seq passed on that will not be stored by this process, if any. */
  lostUpTo: number | undefined;
  /**
   * The highest seq whose item may be stored without being in the window (passed on late
   * or skipped, or written before this head): a resume from below it reads the store.
   */
  uncoveredUpTo: number;
  closed: boolean;
}

/** The items of one user passed on before they were stored. */
interface Held {
  /** Each held item by seq, with its event's client envelope JSON. */
  items: Map<number, { item: StreamItem; json: string }>;
  done: Promise<void>;
  resolve(): void;
}

/** Creates the stream heads of this process. */
export function createStreamHeads(deps: StreamHeadsDeps): StreamHeads {
  const heads = new Map<string, Head>();
  const opening = new Map<string, Promise<Head>>();
  const leaseSize = deps.leaseSize ?? LEASE_SIZE;
  const recentItems = deps.recentItems ?? RECENT_ITEMS;
  const stallMs = deps.stallMs ?? STALL_MS;
  const now = deps.now ?? Date.now;
  const follow = deps.follow;
  // Epoch of users without a head (nothing of theirs is in memory).
  const idleEpoch = newEpoch();
  // Items passed on before they were stored, by user (kept apart from heads: a head may
  // end and another open while its items are written).
  const held = new Map<string, Held>();

  function unhold(user: string, seq: number): boolean {
    const entry = held.get(user);
    if (!entry?.items.delete(seq)) return false;
    if (entry.items.size === 0) {
      held.delete(user);
      entry.resolve();
    }
    return true;
  }

  async function build(user: string): Promise<Head> {
    if (follow) {
      // Everything up to the stored last seq is the replay's; the bus brings the rest.
      const last = await deps.store.lastSeq(user);
      return install(user, follow.epoch(), 1, last, last);
    }
    const range = await deps.store.reserveSeqs(user, leaseSize);
    if (!range) throw new Error(`Cannot reserve seqs for user "${user.slice(0, 100)}"`);
    return install(user, newEpoch(), range.from, range.from - 1, range.to);
  }

  function install(
    user: string,
    epoch: string,
    start: number,
    released: number,
    ceiling: number,
  ): Head {
    const head: Head = {
      user,
      epoch,
      start,
      released,
      next: released + 1,
      ceiling,
      settled: undefined,
      stall: undefined,
      renewing: undefined,
      window: [],
      floor: start,
      coverFloor: start,
      late: undefined,
      lostUpTo: undefined,
      uncoveredUpTo: start - 1,
      closed: false,
    };
    heads.set(user, head);
    return head;
  }

  /** Reserves the range after the head's, once at a time. */
  function renew(head: Head): Promise<void> {
    head.renewing ??= deps.store.reserveSeqs(head.user, leaseSize, head.ceiling).then(
      (range) => {
        head.renewing = undefined;
        if (range) {
          head.ceiling = range.to;
          return;
        }
        // Another writer allocated above the range: this head's seqs cannot continue.
        deps.onError(
          `Stream head of user "${head.user.slice(0, 100)}" lost its range`,
          new Error("A seq above the reserved range was allocated"),
        );
        end(head);
        throw new Error("The stream head was closed");
      },
      (error) => {
        head.renewing = undefined;
        throw error;
      },
    );
    return head.renewing;
  }

  async function covered(head: Head, seq: number): Promise<number> {
    while (head.ceiling < seq) {
      if (head.closed) throw new Error("The stream head was closed");
      await renew(head);
    }
    return seq;
  }

  function end(head: Head) {
    head.closed = true;
    if (head.stall !== undefined) clearTimeout(head.stall);
    if (heads.get(head.user) === head) heads.delete(head.user);
    // What waited for a seq that will never settle goes on, in order.
    const waiting = [...head.settled?.entries() ?? []].sort((a, b) => a[0] - b[0]);
    head.settled = undefined;
    for (const [, live] of waiting) if (live) deps.release(head.user, live);
  }

  function prune(head: Head, at: number) {
    const cutoff = at - deps.recentWindowMs;
    while (
      head.window.length > 0 &&
      (head.window.length > recentItems || head.window[0].item.at < cutoff)
    ) {
      const { item } = head.window.shift()!;
      head.coverFloor = item.seq + 1;
      if (!item.durable) head.floor = item.seq + 1;
    }
  }

  /** Keeps an item passed on in the window, sharing its event's envelope JSON. */
  function remember(head: Head, live: LiveItem) {
    const { item } = live;
    if (live.replaces) {
      for (let i = head.window.length - 1; i >= 0; i--) {
        if (head.window[i].item.seq !== live.replaces.seq) continue;
        head.window[i].replaced = true;
        break;
      }
    }
    if (item.msg) head.window.push({ item });
    else if (live.json !== undefined) head.window.push({ item, json: live.json });
    else if (!item.durable) head.window.push({ item, frame: live.frame });
    // A durable item without its envelope's JSON would cost its own frame: the store has it.
    else head.uncoveredUpTo = Math.max(head.uncoveredUpTo, item.seq);
    if (head.window.length > recentItems) prune(head, now());
  }

  function passOn(head: Head, seq: number, live: LiveItem | null) {
    head.released = seq;
    if (!live) return;
    if (!follow) remember(head, live);
    deps.release(head.user, live);
  }

  /** Passes on the settled items that follow the released seq. */
  function drain(head: Head) {
    const settled = head.settled;
    if (!settled) return;
    while (settled.size > 0) {
      const next = head.released + 1;
      if (!settled.has(next)) break;
      const live = settled.get(next)!;
      settled.delete(next);
      passOn(head, next, live);
    }
    if (settled.size === 0 && head.stall !== undefined) {
      clearTimeout(head.stall);
      head.stall = undefined;
    }
  }

  /** An item waited too long for a seq before it: skip the missing seqs. */
  function unstall(head: Head) {
    head.stall = undefined;
    if (head.closed || !head.settled || head.settled.size === 0) return;
    const first = Math.min(...head.settled.keys());
    if (follow) {
      return void fillGap(head, first).catch((error) =>
        deps.onError(`Stream head of user "${head.user.slice(0, 100)}" could not go on`, error)
      );
    }
    deps.onError(
      `Stream head of user "${head.user.slice(0, 100)}" skipped stalled seqs`,
      new Error(`Seqs ${head.released + 1} to ${first - 1} were not settled in time`),
    );
    head.released = first - 1;
    head.uncoveredUpTo = Math.max(head.uncoveredUpTo, first - 1);
    drain(head);
    if (head.settled.size > 0) head.stall = setTimeout(() => unstall(head), stallMs);
  }

  /**
   * Cluster mode: what the bus did not bring before `first` is read from the store and
   * passed on in order (what is not there was never written); then the head goes on.
   */
  async function fillGap(head: Head, first: number) {
    const after = head.released;
    let found: LiveItem[] = [];
    try {
      found = await follow!.fill(head.user, after, first - 1);
    } catch (error) {
      deps.onError(`Stream head of user "${head.user.slice(0, 100)}" could not fill a gap`, error);
    }
    if (head.closed) return;
    // What the bus brought meanwhile is in `settled`: each seq passes on once.
    const settled = head.settled ??= new Map();
    for (const live of found) {
      const seq = live.item.seq;
      if (seq > head.released && seq < first && !settled.has(seq)) settled.set(seq, live);
    }
    for (let seq = head.released + 1; seq < first; seq++) {
      if (!settled.has(seq)) settled.set(seq, null);
    }
    drain(head);
    if (head.settled && head.settled.size > 0) {
      head.stall ??= setTimeout(() => unstall(head), stallMs);
    }
  }

  /** The head's next seq, once it is covered by a reserved range. */
  function takeFrom(head: Head): number | Promise<number> {
    if (head.closed) throw new Error("The stream head was closed");
    const seq = head.next++;
    if (head.ceiling - seq < leaseSize / 2 && !head.renewing) {
      renew(head).catch((error) =>
        deps.onError(`Stream head of user "${head.user.slice(0, 100)}" could not renew`, error)
      );
    }
    return seq <= head.ceiling ? seq : covered(head, seq);
  }

  function settle(user: string, seq: number, live?: LiveItem) {
    const head = heads.get(user);
    // Not (or no longer) the head's: stored before it, or settled after it ended.
    if (!head || seq < head.start || seq <= head.released) {
      // A following head read everything up to `released` into the replay: no repeat.
      if (live && !(head && follow)) {
        // Out of order, below what clients have seen: a client away now will resume past it.
        if (head) {
          head.uncoveredUpTo = Math.max(head.uncoveredUpTo, seq);
          const late = head.late ??= [];
          late.push({ seq, upTo: head.released });
          if (late.length > LATE_MARKS) late.shift();
        }
        deps.release(user, live);
      }
      return;
    }
    if (seq === head.released + 1) {
      passOn(head, seq, live ?? null);
      if (head.settled?.size) drain(head);
      return;
    }
    (head.settled ??= new Map()).set(seq, live ?? null);
    head.stall ??= setTimeout(() => unstall(head), stallMs);
  }

  return {
    async open(user) {
      const existing = heads.get(user);
      if (existing) return existing;
      let pending = opening.get(user);
      if (!pending) {
        pending = build(user).finally(() => opening.delete(user));
        opening.set(user, pending);
      }
      return await pending;
    },
    close(user) {
      const head = heads.get(user);
      if (head) end(head);
    },
    has: (user) => heads.has(user),
    take(user) {
      // Following: the store allocates every seq.
      if (follow) return undefined;
      const head = heads.get(user);
      if (head) return takeFrom(head);
      // Opening: its range is being reserved, above anything stored now.
      return opening.get(user)?.then(takeFrom);
    },

    drop: (user, seq) => settle(user, seq),
    settle,
    position(user) {
      const head = heads.get(user);
      return head && { epoch: head.epoch, start: head.start, released: head.released };
    },
    recent(user, after) {
      const head = heads.get(user);
      if (!head) return undefined;
      // Following: ephemeral items are stored, and read with the rest.
      if (follow) return { items: [], complete: true, covered: false };
      prune(head, now());
      const items: RecentItem[] = [];
      for (const { item, json, frame, replaced } of head.window) {
        if (item.seq <= after || replaced) continue;
        if (json !== undefined) items.push({ item, frame: () => encodeEventFrame(item.seq, json) });
        else if (frame !== undefined) items.push({ item, frame: () => frame });
        else items.push({ item });
      }
      // Durable items passed on before they were stored, in this head's epoch (the window
      // may have let them go already).
      const unstored = held.get(user)?.items;
      if (unstored) {
        const seen = new Set(items.map((r) => r.item.seq));
        for (const [seq, { item, json }] of unstored) {
          if (seq > after && seq >= head.start && !seen.has(seq)) {
            items.push({ item, frame: () => encodeEventFrame(seq, json) });
          }
        }
        items.sort((a, b) => a.item.seq - b.item.seq);
      }
      // Complete while no ephemeral item after `after` left the window (the window holds
      // all of this head's from `floor` on, and there were none before `start`), and no
      // item went out late, below a position the client may have reached before it did.
      const missedLate = head.late?.some((m) => m.seq <= after && after <= m.upTo) ?? false;
      const missedLost = head.lostUpTo !== undefined && after < head.lostUpTo;
      const complete = head.floor <= Math.max(after + 1, head.start) && !missedLate &&
        !missedLost;
      // Every item after the position went through the window, and is still there.
      const covered = complete && head.coverFloor <= Math.max(after + 1, head.start) &&
        after >= head.uncoveredUpTo;
      return { items, complete, covered };
    },
    hold(user, item, json) {
      let entry = held.get(user);
      if (!entry) {
        let resolve!: () => void;
        const done = new Promise<void>((r) => resolve = r);
        entry = { items: new Map(), done, resolve };
        held.set(user, entry);
      }
      entry.items.set(item.seq, { item, json });
    },
    stored: unhold,
    lost(user, seq) {
      if (!unhold(user, seq)) return;
      const head = heads.get(user);
      if (head && seq >= head.start) head.lostUpTo = Math.max(head.lostUpTo ?? 0, seq);
    },
    whenStored(user, below) {
      const entry = held.get(user);
      if (!entry) return undefined;
      if (below === undefined) return entry.done;
      for (const seq of entry.items.keys()) if (seq < below) return entry.done;
      return undefined;
    },
    epochOf: (user) => follow?.epoch() ?? heads.get(user)?.epoch ?? idleEpoch,
    size: () => heads.size,
    order(users) {
      // A pass over every head pays for itself when the audience is a good part of them.
      if (users.length < ORDER_MIN || users.length * 4 < heads.size) return users;
      const wanted = new Set(users);
      const ordered: string[] = [];
      for (const user of heads.keys()) if (wanted.delete(user)) ordered.push(user);
      if (wanted.size === 0) return ordered;
      for (const user of users) if (wanted.delete(user)) ordered.push(user);
      return ordered;
    },
  };
}
