/**
 * How a message looks outside the server: in history pages, HTTP answers and `msg` frames.
 */

import type { Attachment, MessageRecord } from "./conversation_store.ts";

/** How clients may show the author of a message whose author was erased. */
export const DELETED_USER_LABEL = { fr: "Utilisateur supprimé", en: "Deleted user" } as const;

/** A message as clients see it. */
export interface MessageView {
  conversation: string;
  /** The message's place in the conversation's one total order. */
  seq: number;
  /** Unique id of the message. */
  id: string;
  from: string;
  text: string;
  at: string;
  client_id?: string;
  attachments?: Attachment[];
  /** When the message was last edited (or deleted). */
  edited_at?: string;
  deleted?: true;
  /** The author was erased: `from` still holds their id; show {@linkcode DELETED_USER_LABEL}. */
  from_deleted?: true;
  /** The label of an erased author, in French and English. */
  from_label?: typeof DELETED_USER_LABEL;
}

/** The client view of a stored message. */
export function messageView(conversation: string, m: MessageRecord): MessageView {
  return {
    conversation,
    seq: m.seq,
    id: m.id,
    from: m.from,
    text: m.text,
    at: new Date(m.at).toISOString(),
    ...(m.client_id !== undefined ? { client_id: m.client_id } : {}),
    ...(m.attachments?.length ? { attachments: m.attachments } : {}),
    ...(m.editedAt !== undefined ? { edited_at: new Date(m.editedAt).toISOString() } : {}),
    ...(m.deleted ? { deleted: true as const } : {}),
    ...(m.authorErased ? { from_deleted: true as const, from_label: DELETED_USER_LABEL } : {}),
  };
}

/**
 * Encodes a `msg` frame around a message view already encoded as JSON, so a message going
 * to every member costs one `JSON.stringify`. `item` is the member's stream item: its seq
 * becomes `stream_seq` (the position to resume after); an edit or a delete says so in
 * `change`. A `msg` frame is the current state of message `(conversation, seq)`: applying
 * one twice changes nothing, so clients drop duplicates by `id` and `edited_at`.
 */
export function encodeMsgFrame(
  viewJson: string,
  item?: { seq: number; op: "new" | "edit" | "delete" },
): string {
  const stream = item ? `"stream_seq":${item.seq},` : "";
  const change = item && item.op !== "new" ? `"change":"${item.op}",` : "";
  return `{"type":"msg",${stream}${change}${viewJson.slice(1)}`;
}
