/**
 * The frames and shapes the SDK speaks, shared with the server as types only: the SDK
 * bundle carries no server code and no runtime dependency.
 */

import type { ClientFrame, PresenceStatus, ServerFrame } from "../schemas/frames.ts";
import type { ClientEnvelope } from "../schemas/envelope.ts";

export type { ClientEnvelope, ClientFrame, PresenceStatus, ServerFrame };

/** The transports, best first. */
export type TransportKind = "ws" | "sse" | "poll";

/** The server frame of a given `type`. */
export type FrameOf<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

/** `welcome`: the connection is attached; `seq` is the user's last stream position. */
export type WelcomeFrame = FrameOf<"welcome">;
/** `event`: one item of the user's stream (notification, reactive-UI event…). */
export type EventFrame = FrameOf<"event">;
/** `error`: a problem with a client frame or a server-side limit. */
export type ErrorFrame = FrameOf<"error">;
