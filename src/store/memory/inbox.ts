/** The inbox in memory: pages of inbox items with their envelopes, and read marks. */

import { isInboxItem } from "../items.ts";
import type { InboxPage, InboxStore, StreamItem } from "../store.ts";
import { copy, expired, type MemoryState, type MemoryUser } from "./_state.ts";

/** Seqs of a map in ascending order, from `after + 1` up, or all of them newest first. */
function inOrder<T>(map: Map<number, T>, after: number | undefined): [number, T][] {
  const entries = [...map];
  return after === undefined ? entries.reverse() : entries.filter(([seq]) => seq > after);
}

/** Creates the inbox port over `state`. */
export function createMemoryInboxStore(state: MemoryState): InboxStore {
  const unread = (user: string, now: number) => {
    let count = 0;
    for (const mark of state.users.get(user)?.unread.values() ?? []) {
      if (!expired(mark, now)) count++;
    }
    return count;
  };

  function listInbox(
    user: string,
    options: { after?: number; limit: number; unreadOnly: boolean; now: number },
  ): Promise<InboxPage> {
    const found = state.users.get(user);
    const page: InboxPage = { items: [], unread: unread(user, options.now) };
    if (!found) return Promise.resolve(page);
    const listed: StreamItem[] = [];
    const candidates = options.unreadOnly
      ? inOrder(found.unread, options.after).map(([seq, mark]) =>
        expired(mark, options.now) ? undefined : found.items.get(seq)
      )
      : inOrder(found.items, options.after).map(([, item]) =>
        isInboxItem(item) && !expired(item, options.now) ? item : undefined
      );
    let more = false;
    for (const item of candidates) {
      if (!item) continue;
      if (listed.length >= options.limit) {
        more = true;
        break;
      }
      listed.push(item);
    }
    for (const item of listed) {
      const envelope = state.events.get(item.id)?.envelope;
      if (envelope) page.items.push({ ...copy(item), envelope });
    }
    const next = more && listed.length > 0 ? listed[listed.length - 1].seq : undefined;
    return Promise.resolve(next ? { ...page, next } : page);
  }

  function read(found: MemoryUser, seqs: number[], now: number) {
    for (const seq of seqs) {
      found.unread.delete(seq);
      const item = found.items.get(seq);
      if (item && item.readAt === undefined) found.items.set(seq, { ...item, readAt: now });
    }
  }

  function markRead(user: string, id: string, now: number): Promise<boolean> {
    const found = state.users.get(user);
    const seq = found?.byId.get(id);
    const item = seq === undefined ? undefined : found!.items.get(seq);
    if (!item || !isInboxItem(item)) return Promise.resolve(false);
    read(found!, [item.seq], now);
    return Promise.resolve(true);
  }

  function markAllRead(user: string, now: number): Promise<number> {
    const found = state.users.get(user);
    const seqs = [...found?.unread.keys() ?? []];
    if (found) read(found, seqs, now);
    return Promise.resolve(seqs.length);
  }

  return {
    listInbox,
    unreadCount: (user, now) => Promise.resolve(unread(user, now)),
    markRead,
    markAllRead,
  };
}
