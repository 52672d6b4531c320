/**
 * Presence between people who talk: a user's online / away / offline status is pushed
 * only to the users who share a conversation with them, and never across a block.
 *
 * A user's announcements are paced, as typing is: online and away go out at most once per
 * {@linkcode PRESENCE_INTERVAL_MS}, a change within it waiting for its end, when the last
 * status of the user is announced (if it differs from what the contacts were last told).
 * Offline goes out at once and ends any wait: a user who leaves is never shown online.
 * Toggling online and away as fast as frames or requests go thus costs each contact at
 * most one of them per interval, and the contacts always end with the user's last status.
 */

import type { Registry } from "../../actors/registry.ts";
import type { Hub } from "../realtime/hub.ts";
import { encodeFrame, type PresenceStatus } from "../schemas/frames.ts";
import type { ConversationStore } from "./conversation_store.ts";

/** Presence announcements and lookups. */
export interface Presence {
  /** The user's status now (a user without a live actor is offline). */
  statusOf(user: string): PresenceStatus;
  /** Pushes a status change to the user's online contacts. */
  announce(user: string, status: PresenceStatus): void;
  /**
   * Resolves when every announcement started so far is sent (tests, shutdown); one waiting
   * for the end of its user's interval has not started.
   */
  idle(): Promise<void>;
}

/** Dependencies of {@linkcode createPresence}. */
export interface PresenceDeps {
  store: ConversationStore;
  registry: Registry;
  hub: Hub;
  onError(message: string, error: unknown): void;
  /**
   * Sends a frame to every connection of `users` (default: this process's connections).
   * Given, every contact is sent to, wherever they are connected.
   */
  toUsers?(users: string[], frame: string): void;
  /**
   * Whether a user is connected anywhere (cluster mode: to any node; default: this
   * process's connections). A user connected to another node counts as `online`.
   */
  isOnline?(user: string): boolean;
}

/** Online and away announcements of one user are at least this far apart. */
export const PRESENCE_INTERVAL_MS = 1000;

/** Creates the presence service. */
export function createPresence(deps: PresenceDeps): Presence {
  const { store, registry, hub } = deps;
  /** Last status announced per user; absent means offline. */
  const announced = new Map<string, PresenceStatus>();
  /** Announcements of one user run one after the other, so the last one wins. */
  const chains = new Map<string, Promise<void>>();
  /** When each user's last announcement went out (kept a while after they go offline). */
  const lastAt = new Map<string, number>();
  /** Users whose next status waits for the end of their interval, with that status. */
  const waiting = new Map<
    string,
    { status: PresenceStatus; timer: ReturnType<typeof setTimeout> }
  >();

  async function push(user: string, status: PresenceStatus) {
    const contacts = (await store.contactsOf(user)).filter((c) =>
      deps.isOnline ? deps.isOnline(c) : hub.ofUser(c).length > 0
    );
    if (contacts.length === 0) return;
    const [blocked, blockers] = await Promise.all([
      store.blocksOf(user),
      store.blockersOf(user),
    ]);
    const hidden = new Set([...blocked, ...blockers]);
    const frame = encodeFrame({ type: "presence", user, status });
    if (deps.toUsers) return deps.toUsers(contacts.filter((c) => !hidden.has(c)), frame);
    for (const contact of contacts) {
      if (hidden.has(contact)) continue;
      for (const conn of hub.ofUser(contact)) hub.send(conn.id, frame);
    }
  }

  /** Pushes `status` now, after the user's earlier announcements, unless it is no news. */
  function send(user: string, status: PresenceStatus) {
    if ((announced.get(user) ?? "offline") === status) return;
    if (status === "offline") announced.delete(user);
    else announced.set(user, status);
    remember(user, Date.now());
    const previous = chains.get(user) ?? Promise.resolve();
    const next = previous.then(() => push(user, status)).catch((error) =>
      deps.onError(`Presence of "${user}" was not announced`, error)
    );
    chains.set(user, next);
    next.finally(() => {
      if (chains.get(user) === next) chains.delete(user);
    });
  }

  /** When `lastAt` was last swept. */
  let swept = 0;

  /**
   * Records when a user's announcement went out. Times older than an interval pace
   * nothing: they are swept now and then (at most once per interval: when many users
   * leave at once, their times are all recent, and a sweep on every announcement would
   * walk them all each time), so the map stays bounded by the users announced within
   * the last two intervals.
   */
  function remember(user: string, now: number) {
    if (lastAt.size > 2 * announced.size + 1000 && now - swept >= PRESENCE_INTERVAL_MS) {
      swept = now;
      for (const [u, at] of lastAt) if (now - at >= PRESENCE_INTERVAL_MS) lastAt.delete(u);
    }
    lastAt.set(user, now);
  }

  return {
    statusOf(user) {
      const snapshot = registry.peek("user", user)?.getSnapshot();
      // The user machine's state is the user's presence (or `stopped`, once it ended).
      const value = snapshot?.value;
      if (value === "online" || value === "away") return value;
      return deps.isOnline?.(user) ? "online" : "offline";
    },
    announce(user, status) {
      const wait = waiting.get(user);
      if (status === "offline") {
        if (wait) {
          clearTimeout(wait.timer);
          waiting.delete(user);
        }
        return send(user, status);
      }
      // The last status wins: the one waiting is replaced.
      if (wait) return void (wait.status = status);
      const since = Date.now() - (lastAt.get(user) ?? -Infinity);
      if (since >= PRESENCE_INTERVAL_MS) return send(user, status);
      if ((announced.get(user) ?? "offline") === status) return;
      const timer = setTimeout(() => {
        const last = waiting.get(user);
        waiting.delete(user);
        if (last) send(user, last.status);
      }, PRESENCE_INTERVAL_MS - since);
      waiting.set(user, { status, timer });
    },
    async idle() {
      while (chains.size > 0) await Promise.allSettled([...chains.values()]);
    },
  };
}
