/**
 * The erasure of one user, for the right to erasure: what `DELETE /v1/users/:id` does.
 *
 * The user is cut off first (connections closed, actor stopped), then leaves every
 * conversation they are in: a group through its actor, as a member who leaves, and a 1:1
 * conversation (whose members are otherwise fixed) through the store, whose commit moves
 * the conversation's head so that a live actor reloads before it writes again. The other
 * member of a 1:1 conversation stays. Messages the user wrote stay for the others,
 * marked as a deleted user's (`from` keeps the id; views add `from_deleted`). Then go
 * their blocks both ways, their queued mail, their deliveries, preferences and directory
 * entry. A fan-out under way resolved its audience before the entry went and may still
 * write the user's item: the erasure waits for the fan-outs under way, then erases their
 * deliveries too. Every step can run again: erasing twice is harmless, and an erasure that
 * failed half way is finished by the next one.
 */

import type { Registry } from "../../actors/registry.ts";
import type { Directory } from "../directory/directory.ts";
import { AppError } from "../errors.ts";
import type { MailQueue } from "../mail/mail_queue.ts";
import type { ConversationStore } from "../messaging/conversation_store.ts";
import type { Messaging } from "../messaging/messaging.ts";
import type { PreferencesStore } from "../preferences/preferences_store.ts";
import type { PushStore } from "../push/push_store.ts";
import type { ErasureStore, EventStore } from "../store/store.ts";

/** What {@linkcode createUserErasure} erases through. */
export interface UserErasureDeps {
  directory: Pick<Directory, "delete">;
  preferences: Pick<PreferencesStore, "delete">;
  store: Pick<ErasureStore, "eraseUser"> & Pick<EventStore, "unfinishedFanouts">;
  conversations: Pick<
    ConversationStore,
    | "conversationsOf"
    | "info"
    | "eraseMember"
    | "markAuthorErased"
    | "forgetUser"
    | "blocksOf"
    | "blockersOf"
  >;
  messaging: Pick<Messaging, "removeMember" | "unblock">;
  mail: Pick<MailQueue, "eraseUser">;
  /** Push subscriptions and queued pushes; absent when Web Push is off. */
  push?: Pick<PushStore, "eraseUser">;
  /** Where live conversation actors are found, to stop an idle one the erasure outdated. */
  registry: Pick<Registry, "peek" | "stop">;
  /** Ends the user's live connections and stops their actor (presence). */
  disconnect(user: string): void;
  /**
   * How long an erasure waits for the fan-outs under way ({@linkcode FANOUT_WAIT_MS} by
   * default) before it answers `unavailable`, to be finished by the next erasure.
   */
  fanoutWaitMs?: number;
}

/** How long an erasure waits for the fan-outs under way by default. */
export const FANOUT_WAIT_MS = 30_000;
/** How often an erasure looks whether the fan-outs it waits for ended. */
const FANOUT_POLL_MS = 50;

/** What an erasure removed. */
export interface UserErased {
  directory: boolean;
  preferences: boolean;
  streamItems: number;
  pendingAcks: number;
  /** Conversations the user left. */
  conversations: number;
  /** Messages they wrote, now attributed to a deleted user. */
  messages: number;
  /** Blocks removed, both ways. */
  blocks: number;
  mailTasks: number;
  digestItems: number;
  /** Web Push subscriptions, and pushes queued for them. */
  pushSubscriptions: number;
  pushTasks: number;
}

/** The erasure of one user. */
export interface UserErasure {
  /** Erases `user`; `by` names the service key that asked (the groups they leave see it). */
  eraseUser(user: string, by: string): Promise<UserErased>;
}

/** Errors of a group's actor that mean the user is not (or no longer) in it. */
const GONE = new Set(["not_member", "not_found"]);

/** Creates the erasure over the stores and services that hold a user's data. */
export function createUserErasure(deps: UserErasureDeps): UserErasure {
  const { conversations, messaging } = deps;

  /**
   * Stops the live actor of conversation `id` if it is idle, as its passivation would, so
   * that its next request loads the conversation as the store now has it. A busy actor
   * finds out at its next commit (the head moved), answers that batch `unavailable` and
   * reloads.
   */
  function release(id: string) {
    const snapshot = deps.registry.peek("conversation", id)?.getSnapshot();
    if (snapshot?.matches("ready") && snapshot.context.queue.length === 0) {
      deps.registry.stop("conversation", id);
    }
  }

  /** The user leaves conversation `id`; answers whether they were a member. */
  async function leave(id: string, user: string, by: string): Promise<boolean> {
    const info = await conversations.info(id);
    if (info?.kind === "group" && info.members.includes(user)) {
      try {
        await messaging.removeMember({ kind: "service", name: by }, id, user);
        // Their id goes from the group they created too (the store's commit makes its
        // actor reload, as for a 1:1 conversation).
        if (info.createdBy === user) {
          await conversations.eraseMember(id, user);
          release(id);
        }
        return true;
      } catch (error) {
        // Left meanwhile: whatever records remain are strays the store removes below.
        if (!(error instanceof AppError && GONE.has(error.code))) throw error;
      }
    }
    const member = await conversations.eraseMember(id, user);
    release(id);
    return member;
  }

  /**
   * Waits until the fan-outs unfinished now have ended: they may write an item of the user
   * whatever the erasure removed (their audience was resolved at the publish). Later
   * publishes resolve without the user's directory entry.
   */
  async function awaitFanouts(user: string): Promise<boolean> {
    let waiting = await deps.store.unfinishedFanouts();
    if (waiting.length === 0) return false;
    const deadline = Date.now() + (deps.fanoutWaitMs ?? FANOUT_WAIT_MS);
    while (waiting.length > 0) {
      if (Date.now() >= deadline) {
        throw new AppError(
          "unavailable",
          `Cannot finish erasing user "${
            user.slice(0, 100)
          }": ${waiting.length} fan-outs are still under way, erase again shortly`,
          { retryAfterMs: 5_000 },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, FANOUT_POLL_MS));
      const still = new Set(await deps.store.unfinishedFanouts());
      waiting = waiting.filter((id) => still.has(id));
    }
    return true;
  }

  async function eraseBlocks(user: string): Promise<number> {
    const [blocked, blockers] = await Promise.all([
      conversations.blocksOf(user),
      conversations.blockersOf(user),
    ]);
    // Through the messaging service, so live conversations of a blocker hear of it.
    for (const other of blocked) await messaging.unblock(user, other);
    for (const other of blockers) await messaging.unblock(other, user);
    await conversations.forgetUser(user);
    return blocked.length + blockers.length;
  }

  return {
    async eraseUser(user, by) {
      deps.disconnect(user);
      let left = 0;
      let messages = 0;
      for (const id of await conversations.conversationsOf(user)) {
        if (await leave(id, user, by)) left++;
        // After leaving: the user can write no further message there.
        messages += await conversations.markAuthorErased(id, user);
      }
      const blocks = await eraseBlocks(user);
      const mail = await deps.mail.eraseUser(user);
      const push = await deps.push?.eraseUser(user);
      const [directory, preferences, erased] = await Promise.all([
        deps.directory.delete(user),
        deps.preferences.delete(user),
        deps.store.eraseUser(user),
      ]);
      // What the fan-outs under way wrote since.
      const again = await awaitFanouts(user)
        ? await deps.store.eraseUser(user)
        : { streamItems: 0, pendingAcks: 0 };
      // Again: a delivery written until the store erased the stream may have queued mail.
      const late = await deps.mail.eraseUser(user);
      const latePush = await deps.push?.eraseUser(user);
      return {
        directory,
        preferences,
        streamItems: erased.streamItems + again.streamItems,
        pendingAcks: erased.pendingAcks + again.pendingAcks,
        conversations: left,
        messages,
        blocks,
        mailTasks: mail.tasks + late.tasks,
        digestItems: mail.digestItems + late.digestItems,
        pushSubscriptions: (push?.subscriptions ?? 0) + (latePush?.subscriptions ?? 0),
        pushTasks: (push?.tasks ?? 0) + (latePush?.tasks ?? 0),
      };
    },
  };
}
