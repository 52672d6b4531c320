/** What the KV adapter stores beside stream items, and how it finds an event's item. */

import * as keys from "../keys.ts";
import type { TargetRecord } from "../store.ts";

/** The unread mark of an inbox item, kept under the user's unread keys. */
export interface UnreadMark {
  exp?: number;
}

/** The latest item a user got under a collapse key. */
export interface CollapseMark {
  seq: number;
  id: string;
}

/**
 * The seq of event `id`'s item in `user`'s stream, from the user's delivery record of the
 * event (every durable item has one), if any.
 */
export async function itemSeq(kv: Deno.Kv, user: string, id: string): Promise<number | null> {
  return (await kv.get<TargetRecord>(keys.targetKey(id, user))).value?.seq ?? null;
}
