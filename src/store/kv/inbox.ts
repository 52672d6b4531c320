/** The inbox on Deno KV: pages of inbox items with their envelopes, and read marks. */

import type { Envelope } from "../../schemas/envelope.ts";
import * as keys from "../keys.ts";
import { chunk, getManyEntries } from "../kv_reads.ts";
import { GET_MANY } from "./limits.ts";
import type { InboxPage, InboxStore, StreamItem } from "../store.ts";
import { MAX_RETRIES } from "./_commit.ts";
import { isInboxItem } from "../items.ts";
import { itemSeq, type UnreadMark } from "./_items.ts";

/** Creates the inbox port on an open Deno KV handle; `getEnvelope` fills each item. */
export function createKvInboxStore(
  kv: Deno.Kv,
  getEnvelope: (id: string) => Promise<Envelope | undefined>,
): InboxStore {
  async function withEnvelopes(items: StreamItem[]) {
    const out: InboxPage["items"] = [];
    for (const item of items) {
      const envelope = await getEnvelope(item.id);
      if (envelope) out.push({ ...item, envelope });
    }
    return out;
  }

  async function listInbox(
    user: string,
    opts: { after?: number; limit: number; unreadOnly: boolean; now: number },
  ): Promise<InboxPage> {
    const ascending = opts.after !== undefined;
    const found: StreamItem[] = [];
    let more = false;
    const live = (item: StreamItem) => item.exp === undefined || item.exp > opts.now;
    if (opts.unreadOnly) {
      const selector = ascending
        ? { prefix: keys.unreadPrefix(user), start: keys.unreadKey(user, opts.after! + 1) }
        : { prefix: keys.unreadPrefix(user) };
      const seqs: number[] = [];
      for await (const e of kv.list<UnreadMark>(selector, { reverse: !ascending })) {
        if (e.value.exp !== undefined && e.value.exp <= opts.now) continue;
        if (seqs.length >= opts.limit) {
          more = true;
          break;
        }
        seqs.push(e.key[2] as number);
      }
      const entries = await getManyEntries<StreamItem>(
        kv,
        seqs.map((s) => keys.streamKey(user, s)),
      );
      for (const e of entries) if (e.value) found.push(e.value);
    } else {
      const selector = ascending
        ? { prefix: keys.streamPrefix(user), start: keys.streamKey(user, opts.after! + 1) }
        : { prefix: keys.streamPrefix(user) };
      for await (const e of kv.list<StreamItem>(selector, { reverse: !ascending })) {
        if (!isInboxItem(e.value) || !live(e.value)) continue;
        if (found.length >= opts.limit) {
          more = true;
          break;
        }
        found.push(e.value);
      }
    }
    const items = await withEnvelopes(found);
    const next = more && found.length > 0 ? found[found.length - 1].seq : undefined;
    return { items, unread: await unreadCount(user, opts.now), ...(next ? { next } : {}) };
  }

  async function unreadCount(user: string, now: number): Promise<number> {
    let count = 0;
    for await (const e of kv.list<UnreadMark>({ prefix: keys.unreadPrefix(user) })) {
      if (e.value.exp === undefined || e.value.exp > now) count++;
    }
    return count;
  }

  async function readSeqs(user: string, seqs: number[], now: number) {
    for (const part of chunk(seqs, GET_MANY)) {
      for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
        const items = await kv.getMany<StreamItem[]>(part.map((s) => keys.streamKey(user, s)));
        const op = kv.atomic();
        items.forEach((e, i) => {
          op.delete(keys.unreadKey(user, part[i]));
          if (e.value && e.value.readAt === undefined) {
            op.check(e).set(e.key, { ...e.value, readAt: now });
          }
        });
        if ((await op.commit()).ok) break;
      }
    }
  }

  async function markRead(user: string, id: string, now: number): Promise<boolean> {
    const seq = await itemSeq(kv, user, id);
    if (seq === null) return false;
    const item = (await kv.get<StreamItem>(keys.streamKey(user, seq))).value;
    if (!item || !isInboxItem(item)) return false;
    await readSeqs(user, [seq], now);
    return true;
  }

  async function markAllRead(user: string, now: number): Promise<number> {
    const seqs: number[] = [];
    for await (const e of kv.list({ prefix: keys.unreadPrefix(user) })) {
      seqs.push(e.key[2] as number);
    }
    await readSeqs(user, seqs, now);
    return seqs.length;
  }

  return { listInbox, unreadCount, markRead, markAllRead };
}
