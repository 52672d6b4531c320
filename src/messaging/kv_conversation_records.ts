/**
 * The record helpers the parts of the Deno KV conversation store share: listing a prefix,
 * a message's size as stored, a conversation's head after a batch, unread counts, and the
 * deliveries a commit answers with.
 */

import * as keys from "../store/keys.ts";
import type {
  Delivery,
  FanoutEntry,
  Head,
  MemberState,
  MessageRecord,
} from "./conversation_store.ts";
import type { Written } from "./kv_conversation_fanout.ts";
import { getManyEntries } from "../store/kv_reads.ts";
import { PREVIEW_CHARS } from "./rules.ts";

/** Messages looked at, at most, to count what is unread after a read position. */
const UNREAD_SCAN = 1000;

/** Every entry under `prefix`, in key order. */
export async function listValues<T>(kv: Deno.Kv, prefix: Deno.KvKey): Promise<Deno.KvEntry<T>[]> {
  const out: Deno.KvEntry<T>[] = [];
  for await (const entry of kv.list<T>({ prefix })) out.push(entry);
  return out;
}

/** A rough size of a message as stored, for the commit byte budget. */
export function messageBytes(m: MessageRecord): number {
  let size = 300 + m.text.length * 2 + (m.client_id?.length ?? 0) * 2;
  for (const a of m.attachments ?? []) size += (a.url.length + a.name.length) * 2 + 40;
  return size;
}

/** The head after a batch whose last new message is `last`, if any. */
export function headOf(previous: Head, last: MessageRecord | undefined, now: number): Head {
  if (!last) return previous;
  return { seq: last.seq, at: now, from: last.from, preview: last.text.slice(0, PREVIEW_CHARS) };
}

/** The deliveries of a batch's fan-out `entries`: each message with the items written for it. */
export function deliveries(
  records: MessageRecord[],
  entries: FanoutEntry[],
  items: Written[],
): Delivery[] {
  const byItem = new Map<string, Delivery>();
  const out: Delivery[] = [];
  entries.forEach((entry) => {
    const message = records.find((m) => m.seq === entry.seq);
    if (!message) return;
    const delivery: Delivery = { message, op: entry.op, items: [] };
    byItem.set(entry.itemId, delivery);
    out.push(delivery);
  });
  for (const written of items) byItem.get(written.item.id)?.items.push(written);
  return out;
}

/** The stored unread counts of `users` in conversation `id`. */
export async function unreadOf(
  kv: Deno.Kv,
  id: string,
  users: string[],
): Promise<Map<string, number>> {
  const entries = await getManyEntries<Deno.KvU64>(
    kv,
    users.map((u) => keys.conversationUnreadKey(id, u)),
  );
  return new Map(users.map((u, i) => [u, Number(entries[i].value?.value ?? 0n)]));
}

/** Counts the messages after `member.read` up to `headSeq` that `user` has not read. */
export async function countUnread(
  kv: Deno.Kv,
  id: string,
  user: string,
  member: MemberState,
  headSeq: number,
  blocked: readonly string[],
): Promise<number> {
  if (member.read >= headSeq) return 0;
  let count = 0;
  const iter = kv.list<MessageRecord>({
    start: keys.messageKey(id, Math.max(member.read, member.since - 1) + 1),
    end: keys.messageKey(id, headSeq + 1),
  }, { limit: UNREAD_SCAN });
  for await (const { value: m } of iter) {
    if (!m.deleted && m.from !== user && !blocked.includes(m.from)) count++;
  }
  return count;
}
