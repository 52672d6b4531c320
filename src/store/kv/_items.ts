/** What the KV adapter stores beside stream items. */

/** The unread mark of an inbox item, kept under the user's unread keys. */
export interface UnreadMark {
  exp?: number;
}

/** The latest item a user got under a collapse key. */
export interface CollapseMark {
  seq: number;
  id: string;
}
