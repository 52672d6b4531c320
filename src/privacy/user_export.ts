/**
 * The export of everything relais holds about one user, for the right of access: one
 * JSON document, written piece by piece as the reader takes it.
 *
 * The document is never built whole: the stream is read one page of
 * {@linkcode EXPORT_PAGE} items (with their envelopes) at a time, and the messages the
 * user wrote one history page of {@linkcode EXPORT_PAGE} messages at a time, each page
 * written out before the next is read. The other parts (directory entry, preferences,
 * pending acks, conversations, blocks, queued mail, push subscriptions) are read whole: they grow with what
 * the user does, not with what they receive.
 */

import type { Directory } from "../directory/directory.ts";
import type { MailQueue } from "../mail/mail_queue.ts";
import type { PushStore } from "../push/push_store.ts";
import type { ConversationListing, ConversationStore } from "../messaging/conversation_store.ts";
import { messageView } from "../messaging/message_view.ts";
import type { PreferencesStore } from "../preferences/preferences_store.ts";
import { toClientEnvelope } from "../schemas/envelope.ts";
import { isInboxItem } from "../store/items.ts";
import type {
  DeliveryStore,
  ErasureStore,
  EventStore,
  ExportedItem,
  PendingAck,
} from "../store/store.ts";

/** Stream items, or history messages, read and written per step. */
export const EXPORT_PAGE = 100;

/** What {@linkcode createUserExport} reads from. */
export interface UserExportDeps {
  directory: Pick<Directory, "get">;
  preferences: Pick<PreferencesStore, "get">;
  store:
    & Pick<ErasureStore, "exportItems">
    & Pick<EventStore, "getEnvelope">
    & Pick<DeliveryStore, "listPending">;
  conversations: Pick<ConversationStore, "listForUser" | "history" | "blocksOf" | "blockersOf">;
  mail: Pick<MailQueue, "ofUser">;
  /** Push subscriptions and queued pushes; absent when Web Push is off. */
  push?: Pick<PushStore, "ofUser">;
  /** Items or messages per page; {@linkcode EXPORT_PAGE} by default. */
  pageSize?: number;
  now?: () => number;
}

/** The export of one user. */
export interface UserExport {
  /**
   * The user's document as JSON text, in pieces. The directory entry and preferences are
   * read before this answers, so a store that fails at once fails here, not mid-document.
   */
  exportUser(user: string): Promise<AsyncGenerator<string, void, undefined>>;
}

const iso = (ms: number) => new Date(ms).toISOString();

const json = (value: unknown) => JSON.stringify(value);

/** A pending acknowledgment as the export shows it. */
function pendingView(p: PendingAck) {
  return {
    seq: p.seq,
    id: p.id,
    attempts: p.attempts,
    limit: p.limit,
    backoff: p.backoff,
    ...(p.nextAt !== undefined ? { next_at: iso(p.nextAt) } : {}),
    ...(p.exp !== undefined ? { expires_at: iso(p.exp) } : {}),
  };
}

/** A conversation as the export shows it: what it is and the user's place in it. */
function conversationView({ info, head, member, unread }: ConversationListing) {
  return {
    id: info.id,
    kind: info.kind,
    ...(info.title !== undefined ? { title: info.title } : {}),
    ...(info.context ? { context: info.context } : {}),
    created_at: iso(info.createdAt),
    created_by: info.creatorErased ? null : info.createdBy,
    members: info.members,
    role: member.role,
    read: member.read,
    unread,
    muted: member.muted,
    joined_at: iso(member.joinedAt),
    last_seq: head.seq,
  };
}

/** Creates the export over the stores that hold a user's data. */
export function createUserExport(deps: UserExportDeps): UserExport {
  const page = deps.pageSize ?? EXPORT_PAGE;
  const now = deps.now ?? Date.now;

  /** One stream item with its envelope's client view (or the message it carries). */
  async function itemView({ item, delivery }: ExportedItem) {
    const envelope = item.msg ? undefined : await deps.store.getEnvelope(item.id);
    return {
      seq: item.seq,
      id: item.id,
      type: item.type,
      at: iso(item.at),
      durable: item.durable,
      ack_required: item.ack,
      inbox: isInboxItem(item),
      ...(item.readAt !== undefined ? { read_at: iso(item.readAt) } : {}),
      ...(item.quiet ? { quiet: true } : {}),
      ...(item.replacedBy !== undefined ? { replaced_by: item.replacedBy } : {}),
      ...(item.exp !== undefined ? { expires_at: iso(item.exp) } : {}),
      ...(delivery ? { delivery: { state: delivery.state, at: iso(delivery.at) } } : {}),
      ...(item.msg
        ? { message: { conversation: item.msg.c, seq: item.msg.s, change: item.msg.op } }
        : { envelope: envelope ? toClientEnvelope(envelope) : null }),
    };
  }

  /** The user's stream, one page at a time, as the elements of a JSON array. */
  async function* streamItems(user: string): AsyncGenerator<string> {
    let after = 0;
    let first = true;
    while (true) {
      const items = await deps.store.exportItems(user, { after, limit: page });
      if (items.length === 0) return;
      const views = await Promise.all(items.map(itemView));
      yield (first ? "" : ",") + views.map(json).join(",");
      first = false;
      after = items.at(-1)!.item.seq;
      if (items.length < page) return;
    }
  }

  /** The messages the user wrote in their conversations, newest first in each. */
  async function* messages(user: string, ids: string[]): AsyncGenerator<string> {
    let first = true;
    for (const id of ids) {
      let before: number | undefined;
      do {
        const history = await deps.conversations.history(id, {
          ...(before !== undefined ? { before } : {}),
          since: 1,
          limit: page,
          exclude: [],
        });
        const own = history.messages.filter((m) => m.from === user);
        if (own.length > 0) {
          yield (first ? "" : ",") + own.map((m) => json(messageView(id, m))).join(",");
          first = false;
        }
        before = history.next;
      } while (before !== undefined);
    }
  }

  async function* document(
    user: string,
    head: { directory: unknown; preferences: unknown },
  ): AsyncGenerator<string, void, undefined> {
    yield `{"user":${json(user)},"exported_at":${json(iso(now()))}`;
    yield `,"directory":${json(head.directory)},"preferences":${json(head.preferences)}`;
    yield `,"stream":[`;
    yield* streamItems(user);
    const pending = await deps.store.listPending(user);
    yield `],"pending_acks":${json(pending.map(pendingView))}`;
    const listings = await deps.conversations.listForUser(user);
    listings.sort((a, b) =>
      a.info.createdAt - b.info.createdAt || (a.info.id < b.info.id ? -1 : 1)
    );
    yield `,"conversations":${json(listings.map(conversationView))},"messages":[`;
    yield* messages(user, listings.map((l) => l.info.id));
    const [blocked, blockedBy, mail] = await Promise.all([
      deps.conversations.blocksOf(user),
      deps.conversations.blockersOf(user),
      deps.mail.ofUser(user),
    ]);
    yield `],"blocks":${json({ blocked, blocked_by: blockedBy })}`;
    yield `,"mail":${
      json({
        tasks: mail.tasks.map(({ dueAt, task }) => ({ due_at: iso(dueAt), ...task })),
        digest_items: mail.digestItems.map((d) => ({ ...d, at: iso(d.at) })),
        dead_letters: mail.deadLetters.map((d) => ({ ...d, at: iso(d.at) })),
      })
    }`;
    const push = await deps.push?.ofUser(user);
    yield `,"push_subscriptions":${
      json((push?.subscriptions ?? []).map((s) => ({
        id: s.id,
        endpoint: s.endpoint,
        keys: s.keys,
        created_at: iso(s.createdAt),
      })))
    }`;
    yield `,"push_tasks":${
      json((push?.tasks ?? []).map(({ dueAt, task }) => ({ due_at: iso(dueAt), ...task })))
    }}`;
  }

  return {
    async exportUser(user) {
      const [directory, preferences] = await Promise.all([
        deps.directory.get(user),
        deps.preferences.get(user),
      ]);
      return document(user, { directory: directory ?? null, preferences: preferences ?? null });
    },
  };
}
