/**
 * The ingest's port: a stream of change entries read as a consumer group, each entry
 * handed to one consumer and kept pending until it is acked. The adapter is
 * `redis_change_stream.ts` (Redis/KeyDB Streams: `XREADGROUP`, `XACK`, `XAUTOCLAIM`).
 */

/** One stream entry: its id and its field/value pairs in order. */
export interface StreamEntry {
  id: string;
  fields: [string, string][];
  /** The entry was pending but has left the stream (trimmed): nothing to read. */
  deleted?: boolean;
}

/** One entry of the dead-letter stream. */
export interface DeadLetterEntry {
  /** Its id in the dead-letter stream. */
  id: string;
  /** The id of the original entry. */
  entry: string;
  reason: string;
  detail: string;
  /** The original `data`, cut to a few kilobytes. */
  data?: string;
}

/** Where the group stands. */
export interface StreamInfo {
  /** Entries of the stream not yet delivered to the group (`null`: Redis cannot tell). */
  lag: number | null;
  /** Entries delivered and not yet acked, all consumers together. */
  pending: number;
  /** The last entry delivered to the group. */
  lastDeliveredId: string | null;
  /** Entries in the stream. */
  length: number;
  /** Entries in the dead-letter stream. */
  deadLetters: number;
}

/** A stream read as a consumer group by one consumer. */
export interface ChangeStream {
  /** The stream's name; the dead letters go to `<name>:dead`. */
  readonly name: string;
  /** This reader's name in the group. */
  readonly consumer: string;
  /** Creates the group (at the stream's end) unless it exists; creates the stream too. */
  ensureGroup(): Promise<void>;
  /**
   * Entries this consumer was handed and never acked (a previous life of the same node),
   * after the id `after` ("0" for all).
   */
  readOwnPending(after: string, count: number): Promise<StreamEntry[]>;
  /** New entries, waiting up to `blockMs` for some. */
  readNew(count: number, blockMs: number): Promise<StreamEntry[]>;
  /** Takes over entries pending on any consumer for longer than `minIdleMs`. */
  claim(minIdleMs: number, count: number): Promise<StreamEntry[]>;
  ack(ids: readonly string[]): Promise<void>;
  /** Appends the entry to the dead-letter stream with its reason (the caller acks it). */
  deadLetter(entry: StreamEntry, reason: string, detail: string): Promise<void>;
  /** The newest dead letters, newest first. */
  recentDeadLetters(limit: number): Promise<DeadLetterEntry[]>;
  info(): Promise<StreamInfo>;
  /** Ends a blocking read at once; later reads fail. */
  interrupt(): void;
  close(): Promise<void>;
}
