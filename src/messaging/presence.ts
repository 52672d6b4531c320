/**
 * Presence between people who talk: a user's online / away / offline status is pushed
 * only to the users who share a conversation with them, and never across a block.
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
  /** Resolves when every announcement started so far is sent (tests, shutdown). */
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

/** Creates the presence service. */
export function createPresence(deps: PresenceDeps): Presence {
  const { store, registry, hub } = deps;
  /** Last status announced per user; absent means offline. */
  const announced = new Map<string, PresenceStatus>();
  /** Announcements of one user run one after the other, so the last one wins. */
  const chains = new Map<string, Promise<void>>();

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

  return {
    statusOf(user) {
      const snapshot = registry.peek("user", user)?.getSnapshot();
      // The user machine's state is the user's presence (or `stopped`, once it ended).
      const value = snapshot?.value;
      if (value === "online" || value === "away") return value;
      return deps.isOnline?.(user) ? "online" : "offline";
    },
    announce(user, status) {
      if ((announced.get(user) ?? "offline") === status) return;
      if (status === "offline") announced.delete(user);
      else announced.set(user, status);
      const previous = chains.get(user) ?? Promise.resolve();
      const next = previous.then(() => push(user, status)).catch((error) =>
        deps.onError(`Presence of "${user}" was not announced`, error)
      );
      chains.set(user, next);
      next.finally(() => {
        if (chains.get(user) === next) chains.delete(user);
      });
    },
    async idle() {
      while (chains.size > 0) await Promise.allSettled([...chains.values()]);
    },
  };
}
