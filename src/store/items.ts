/** How every store adapter classifies stream items. */

import type { StreamItem } from "./store.ts";

/** Whether an item shows in the inbox. */
export const isInboxItem = (item: StreamItem): boolean =>
  (item.type === "NOTIFICATION" || (item.type === "SYSTEM" && item.durable)) && !item.quiet &&
  item.replacedBy === undefined;

/** Items kept in the stream for order only: never replayed nor listed. */
export const isHidden = (item: StreamItem): boolean =>
  item.quiet === true || item.replacedBy !== undefined;
