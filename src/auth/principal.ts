/** Who is calling: an end user or a backend service. */

import type { Scope } from "../config.ts";

/** An authenticated end user (from a JWT, the gateway's signed context or a ticket). */
export interface UserPrincipal {
  kind: "user";
  /** The user id (`sub`). */
  id: string;
  roles: string[];
  structures: string[];
  /** From the directory (credentials carry none). */
  formations?: string[];
  /** From the directory (credentials carry none). */
  groups?: string[];
  /** From the directory: `STUDENT` or `STAFF`. */
  category?: string;
  /** When the credential stops being valid, in epoch milliseconds; absent if it never does. */
  expiresAt?: number;
}

/** An authenticated backend service (from an API key). */
export interface ServicePrincipal {
  kind: "service";
  name: string;
  scopes: Scope[];
}

/** The Hono environment shared by every route: what middlewares put in its variables (`c.get`). */
export interface AppEnv {
  Variables: {
    requestId: string;
    /** The trace of the request, when its route traced it (`RELAIS_TRACES=on`). */
    traceId: string | undefined;
    /** The client's address for per-IP limits (see `RELAIS_TRUSTED_PROXIES`). */
    clientIp: string | undefined;
    user: UserPrincipal;
    service: ServicePrincipal;
    /** A poll that named a session was answered by another (it had ended): a new start. */
    pollRestarted: boolean;
  };
}
