/**
 * Stream epochs: a position in a user's stream is an epoch plus a `seq`.
 *
 * `welcome` tells the client the epoch of its stream, and every resume sends it back
 * beside `after` (WebSocket `hello.epoch`, SSE `Last-Event-ID: <epoch>:<seq>` or
 * `?epoch=`, poll `epoch=`). An epoch names a lifetime of the items the server can only
 * replay from memory: a resume within the same epoch may count on them, a resume from
 * another one may not. Epochs are opaque to clients.
 */

import * as v from "valibot";
import { EpochSchema } from "../schemas/frames.ts";

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

/**
 * One epoch per process, for every user: a restart starts a new epoch. `epoch` is for
 * tests; it must be what {@linkcode EpochSchema} accepts.
 */
export function processEpochs(epoch: string = newEpoch()): StreamEpochs {
  if (!v.is(EpochSchema, epoch)) throw new Error(`Invalid stream epoch "${epoch}"`);
  return { epochOf: () => epoch };
}

/** What {@linkcode isRecovered} decides from. */
export interface ResumeOutcome {
  /** The position the client resumed after; absent on a fresh connection. */
  after?: number;
  /** The epoch the client sent with `after`; absent for clients that predate epochs. */
  clientEpoch?: string;
  /** The stream's current epoch, the one `welcome` tells. */
  epoch: string;
  /** The replay read every item after `after` that is still deliverable. */
  complete: boolean;
}

/**
 * Whether a resume is `recovered`: the client gave a position and the replay is complete,
 * and, when the client named its epoch, either it is the current one or the replay does
 * not depend on it.
 *
 * Today every item, ephemeral ones included, is read back from the store until it leaves
 * the recent window, so a replay from another epoch is exactly as complete as one from
 * the current epoch.
 *
 * TODO(hot path): once ephemeral items live only in memory, a resume from another epoch
 * is `recovered: false` unless only durable items could have been missed.
 */
export function isRecovered(outcome: ResumeOutcome): boolean {
  if (outcome.after === undefined || !outcome.complete) return false;
  if (outcome.clientEpoch === undefined || outcome.clientEpoch === outcome.epoch) return true;
  return REPLAY_SPANS_EPOCHS;
}

/** Whether a replay reaches items of earlier epochs (true while every item is stored). */
const REPLAY_SPANS_EPOCHS = true;
