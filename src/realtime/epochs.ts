/**
 * Stream epochs: a position in a user's stream is an epoch plus a `seq`.
 *
 * `welcome` tells the client the epoch of its stream, and every resume sends it back
 * beside `after` (WebSocket `hello.epoch`, SSE `Last-Event-ID: <epoch>:<seq>` or
 * `?epoch=`, poll `epoch=`). An epoch names a lifetime of the items the server can only
 * replay from memory: a resume within the same epoch may count on them, a resume from
 * another one may not. Each user's epoch is the life of their stream head
 * (`src/delivery/stream_heads.ts`): a restart, or a head built anew after the user's
 * actor passivated, starts a new one. Epochs are opaque to clients.
 */

/** Where the epoch of a user's stream comes from. */
export interface StreamEpochs {
  /** The current epoch of `user`'s stream: a short URL-safe string, never containing `:`. */
  epochOf(user: string): string;
}

/** A new random epoch: 16 URL-safe characters (96 random bits). */
export function newEpoch(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
}

/** What {@linkcode isRecovered} decides from. */
export interface ResumeOutcome {
  /** The position the client resumed after; absent on a fresh connection. */
  after?: number;
  /** The epoch the client sent with `after`; absent for clients that predate epochs. */
  clientEpoch?: string;
  /** The stream's current epoch, the one `welcome` tells. */
  epoch: string;
  /**
   * The replay holds every item after `after` that is still deliverable: the stored ones,
   * and the ephemeral ones of the current epoch's recent window.
   */
  complete: boolean;
}

/**
 * Whether a resume is `recovered`: the client gave a position of the current epoch and
 * the replay is complete.
 *
 * Ephemeral items live in memory only, for the life of an epoch, and only users with a
 * live stream head get them at all. A position of the current epoch misses none (the
 * replay's completeness says whether the window still holds them). Any other position
 * (another epoch's, or a client's that predates epochs) gets the stored items exactly,
 * but an ephemeral item may have gone by while nobody kept it: never provably complete.
 */
export function isRecovered(outcome: ResumeOutcome): boolean {
  if (outcome.after === undefined || !outcome.complete) return false;
  return outcome.clientEpoch === outcome.epoch;
}
