/**
 * Long-polling: a user's stream in batches, one `GET /v1/poll` at a time.
 *
 * A poll session is a connection like any other (presence, live items, redeliveries) whose
 * frames wait in a buffer until the next request takes them. A request returns at once
 * when frames are waiting, else when the first one arrives (plus a few milliseconds to
 * batch a burst) or when its timeout passes, with an empty batch.
 *
 * Resume semantics are those of WS and SSE: the answer's `epoch` and `seq` are the stream
 * position the client has reached, and the client sends them back as `epoch` and `after`.
 * A client whose `after` is behind what the session already answered lost an answer, and
 * one whose `epoch` is not the session's resumes from elsewhere: either way the session is
 * replaced by a new one that replays from the store. A session with no request for two
 * heartbeat intervals is dead and detached, so presence follows.
 */

import type { UserPrincipal } from "../auth/principal.ts";
import { CLOSE, encodeFrame } from "../schemas/frames.ts";
import { utf8Length } from "../utf8.ts";
import type { Outlet } from "./hub.ts";
import type { Sessions, StreamPosition } from "./session.ts";

/** Dependencies of {@linkcode createPollSessions}. */
export interface PollDeps {
  sessions: Sessions;
  /** A session with no request for two intervals is dropped. */
  heartbeatMs: number;
  /** No activity for this long ends the session with 4009; 0 disables it. */
  idleTimeoutMs: number;
  /** Frames a session buffers between requests before it is dropped (default 1000). */
  maxBufferedFrames?: number;
  /**
   * Bytes a session buffers between requests (`RELAIS_MAX_SOCKET_BUFFER_BYTES`, default
   * 4 MiB): past them it is ended with 4008, like a socket whose client stopped reading.
   */
  maxBufferedBytes?: number;
  /** How long a woken request waits for more frames to batch (default 10 ms). */
  batchMs?: number;
  /** Poll sessions one user may keep; the oldest idle one goes first (default 8). */
  maxPerUser?: number;
}

/** What one poll asks for. */
export interface PollRequest {
  /** The session of the previous answer, to keep buffering and presence between polls. */
  session?: string;
  /** The stream position the client has reached. */
  after?: number;
  /** The epoch of `after` (a previous answer's `epoch`). */
  epoch?: string;
  timeoutMs: number;
}

/** Long-poll sessions. */
export interface PollSessions {
  /** Answers one poll as the JSON body `{session, epoch, seq, frames}`. */
  poll(user: UserPrincipal, request: PollRequest): Promise<string>;
  /** Live poll sessions. */
  size(): number;
  /** Drops every session (shutdown); waiting requests answer what they have. */
  closeAll(): void;
}

interface PollSession {
  id: string;
  user: string;
  /** The epoch of the stream positions the session answers (its welcome's). */
  epoch: string;
  frames: string[];
  /** Bytes of `frames`, as UTF-8. */
  bytes: number;
  /** Highest stream position buffered. */
  upTo: number;
  /** Highest stream position answered. */
  answered: number;
  /** The request currently waiting, and how to wake it. */
  waiting?: { token: object; wake: () => void };
  lastPoll: number;
  lastActive: number;
  /** Set when the server closed the session; its last frames are still to be answered. */
  ended: boolean;
  timers: ReturnType<typeof setTimeout>[];
}

/** The JSON body of an answer: `{session, epoch, seq, frames}` around frames already encoded. */
function batchOf(s: PollSession, frames: string[]): string {
  const head = `{"session":${JSON.stringify(s.id)},"epoch":${JSON.stringify(s.epoch)}`;
  return `${head},"seq":${s.answered},"frames":[${frames.join(",")}]}`;
}

/** Creates the poll session store. */
export function createPollSessions(deps: PollDeps): PollSessions {
  const maxFrames = deps.maxBufferedFrames ?? 1000;
  const maxBytes = deps.maxBufferedBytes ?? 4 * 1024 * 1024;
  const batchMs = deps.batchMs ?? 10;
  const maxPerUser = deps.maxPerUser ?? 8;
  const polls = new Map<string, PollSession>();

  function drop(s: PollSession) {
    if (polls.get(s.id) === s) polls.delete(s.id);
    for (const t of s.timers) clearTimeout(t);
    s.ended = true;
    deps.sessions.detach(s.id);
    s.waiting?.wake();
  }

  function end(s: PollSession, code: number, reason: string) {
    if (s.ended) return;
    s.frames.push(encodeFrame({ type: "close", code, reason }));
    s.ended = true;
    for (const t of s.timers) clearTimeout(t);
    deps.sessions.detach(s.id);
    // Kept until a request takes the close frame, or until it would have expired.
    s.timers[0] = setTimeout(
      () => polls.get(s.id) === s && polls.delete(s.id),
      2 * deps.heartbeatMs,
    );
    s.waiting?.wake();
  }

  function watch(s: PollSession) {
    const expire = () => {
      if (s.ended) return;
      const quiet = Date.now() - s.lastPoll;
      if (!s.waiting && quiet >= 2 * deps.heartbeatMs) return drop(s);
      s.timers[0] = setTimeout(expire, Math.max(1, 2 * deps.heartbeatMs - (s.waiting ? 0 : quiet)));
    };
    s.timers[0] = setTimeout(expire, 2 * deps.heartbeatMs);
    if (deps.idleTimeoutMs > 0) {
      const checkIdle = () => {
        const quiet = Date.now() - s.lastActive;
        if (quiet >= deps.idleTimeoutMs) return end(s, CLOSE.idle, "Idle timeout");
        s.timers[1] = setTimeout(checkIdle, deps.idleTimeoutMs - quiet);
      };
      s.timers[1] = setTimeout(checkIdle, deps.idleTimeoutMs);
    }
  }

  function evictBeyondCap(user: string) {
    const mine = [...polls.values()].filter((s) => s.user === user && !s.waiting);
    mine.sort((a, b) => a.lastPoll - b.lastPoll);
    for (const s of mine.slice(0, Math.max(0, mine.length - maxPerUser + 1))) drop(s);
  }

  async function start(principal: UserPrincipal, position: StreamPosition): Promise<PollSession> {
    const user = principal.id;
    const { after } = position;
    evictBeyondCap(user);
    const s: PollSession = {
      id: "",
      user,
      epoch: "",
      frames: [],
      bytes: 0,
      upTo: after ?? 0,
      answered: after ?? 0,
      lastPoll: Date.now(),
      lastActive: Date.now(),
      ended: false,
      timers: [],
    };
    const outlet: Outlet = {
      transport: "poll",
      send(text, seq) {
        if (s.ended) return;
        const bytes = utf8Length(text);
        if (s.frames.length > 0 && s.bytes + bytes > maxBytes) {
          // Nobody takes the frames, or a replay outgrew one answer: end the session as a
          // slow socket is cut off, without this frame. The next answer holds what fits and
          // the close; its `seq` stops before this frame, which the client's resume replays.
          return end(s, CLOSE.policy, "Too slow: outgoing buffer full");
        }
        s.frames.push(text);
        s.bytes += bytes;
        if (seq !== undefined && seq > s.upTo) s.upTo = seq;
        // Nobody is taking the frames: the client resumes from the store instead.
        if (s.frames.length > maxFrames && s.id) return drop(s);
        s.waiting?.wake();
      },
      close: (code, reason) => end(s, code, reason),
      activity: () => void (s.lastActive = Date.now()),
    };
    const attached = await deps.sessions.attach(principal, outlet, position);
    s.id = attached.connId;
    s.epoch = attached.epoch;
    if (s.ended) {
      // Ended while it replayed (a switch, a full buffer): only its one answer is left, and
      // nothing keeps it for a later request.
      clearTimeout(s.timers[0]);
      deps.sessions.detach(s.id);
    } else {
      polls.set(s.id, s);
      watch(s);
    }
    return s;
  }

  function answer(s: PollSession): string {
    const frames = s.frames;
    s.frames = [];
    s.bytes = 0;
    s.answered = Math.max(s.answered, s.upTo);
    s.lastPoll = Date.now();
    if (s.ended && polls.get(s.id) === s) {
      clearTimeout(s.timers[0]);
      polls.delete(s.id);
    }
    return batchOf(s, frames);
  }

  return {
    async poll(user, request) {
      let s = request.session ? polls.get(request.session) : undefined;
      if (s && s.user !== user.id) s = undefined;
      const lost = s && request.after !== undefined && request.after < s.answered;
      const elsewhere = s && request.epoch !== undefined && request.epoch !== s.epoch;
      if (s && (lost || elsewhere) && !s.ended) {
        // The previous answer was lost, or the client's position is of another epoch:
        // replay from the store on a fresh session.
        drop(s);
        s = undefined;
      }
      s ??= await start(user, { after: request.after, epoch: request.epoch });
      s.lastPoll = Date.now();
      if (s.frames.length === 0 && !s.ended && request.timeoutMs > 0) {
        // A newer request for the same session answers the older one, empty.
        s.waiting?.wake();
        const token = {};
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((resolve) => {
          s!.waiting = { token, wake: resolve };
          timer = setTimeout(resolve, request.timeoutMs);
        });
        clearTimeout(timer);
        if (s.waiting?.token !== token) {
          return batchOf(s, []);
        }
        if (s.frames.length > 0 && !s.ended && batchMs > 0) {
          await new Promise((r) => setTimeout(r, batchMs));
        }
        s.waiting = undefined;
      }
      // An answer that never reaches its client loses nothing durable: the client's next
      // `after` is then behind `answered`, and the session is replayed from the store.
      return answer(s);
    },
    size: () => polls.size,
    closeAll() {
      for (const s of [...polls.values()]) {
        if (!s.ended) end(s, 1001, "Server shutting down");
        clearTimeout(s.timers[0]);
        polls.delete(s.id);
      }
    },
  };
}
