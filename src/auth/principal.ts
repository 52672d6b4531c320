/** Who is calling: an end user or a backend service. */

import type { Scope } from "../config.ts";

/** An authenticated end user (from a JWT, the gateway's signed context or a ticket). */
export interface UserPrincipal {
  kind: "user";
  /** The user id (`sub`). */
  id: string;
  roles: string[];
  structures: string[];
  /** When the credential stops being valid, in epoch milliseconds; absent if it never does. */
  expiresAt?: number;
}

/** An authenticated backend service (from an API key). */
export interface ServicePrincipal {
  kind: "service";
  name: string;
  scopes: Scope[];
}

/** The Hono environment shared by every route: what middlewares put in `c.var`. */
export interface AppEnv {
  Variables: {
    requestId: string;
    user: UserPrincipal;
    service: ServicePrincipal;
  };
}
