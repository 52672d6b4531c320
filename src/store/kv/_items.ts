/** What the KV adapter stores beside stream items, and how it classifies them. */

import type { StreamItem } from "../store.ts";

/** The unread mark of an inbox item, kept under the user's unread keys. */
export interface UnreadMark {
  exp?: number;
}

/** The latest item a user got under a collapse key. */
export interface CollapseMark {
  seq: number;
  id: string;
}

/** Whether an item shows in the inbox. */
export const isInboxItem = (item: StreamItem): boolean =>
  (item.type === "NOTIFICATION" || (item.type === "SYSTEM" && item.durable)) && !item.quiet &&
  item.replacedBy === undefined;

/** Items kept in the stream for order only: never replayed nor listed. */
export const isHidden = (item: StreamItem): boolean =>
  item.quiet === true || item.replacedBy !== undefined;
