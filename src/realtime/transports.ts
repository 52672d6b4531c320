/**
 * The realtime transports as the services wire them: the sessions every transport attaches
 * through, the WebSocket protocol over them, and the SSE streams and poll sessions, all
 * with the heartbeat and the limits of the configuration.
 */

import type { Config } from "../config.ts";
import { createPollSessions, type PollSessions } from "./poll_sessions.ts";
import { createSessions, type SessionDeps, type Sessions } from "./session.ts";
import { createSseStreams, type SseStreams } from "./sse_streams.ts";
import { createWsProtocol, type WsProtocol } from "./ws_protocol.ts";
import type { WsProtocolDeps } from "./ws_types.ts";

/** What {@linkcode wireTransports} needs beyond the configuration. */
export type TransportsWiring =
  & Omit<SessionDeps, "resumeMaxItems" | "recentWindowMs" | "heartbeatMs">
  & Pick<WsProtocolDeps, "auth" | "tickets" | "onError">
  & Required<Pick<WsProtocolDeps, "guard" | "messaging">>
  & { config: Pick<Config, "delivery" | "realtime" | "limits"> };

/** The sessions and the transports over them. */
export interface Transports {
  sessions: Sessions;
  protocol: WsProtocol;
  sseStreams: SseStreams;
  polls: PollSessions;
}

/** Creates the sessions and every transport over them. */
export function wireTransports(deps: TransportsWiring): Transports {
  const { config, auth, tickets, guard, messaging, onError, ...session } = deps;
  const { heartbeatMs, idleTimeoutMs } = config.realtime;
  const sessions = createSessions({
    ...session,
    resumeMaxItems: config.delivery.resumeMaxItems,
    recentWindowMs: config.delivery.recentWindowMs,
    heartbeatMs,
  });
  const liveness = {
    sessions,
    heartbeatMs,
    idleTimeoutMs,
    maxBufferedBytes: config.limits.maxSocketBufferBytes,
  };
  return {
    sessions,
    protocol: createWsProtocol({
      sessions,
      auth,
      tickets,
      maxFrameBytes: config.limits.maxFrameBytes,
      helloTimeoutMs: 10_000,
      heartbeatMs,
      idleTimeoutMs,
      onError,
      guard,
      maxJsonDepth: config.limits.maxJsonDepth,
      messaging,
    }),
    sseStreams: createSseStreams(liveness),
    polls: createPollSessions(liveness),
  };
}
