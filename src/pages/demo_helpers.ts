/**
 * What the demo page's helper routes do on the server's behalf, in development only:
 * sign tokens for the demo users, publish as a backend would, open a 1:1 conversation.
 */

import type { UserAuth } from "../auth/user_auth.ts";
import type { Publisher } from "../delivery/publisher.ts";
import type { Messaging } from "../messaging/messaging.ts";
import type { Envelope } from "../schemas/envelope.ts";

/** The demo page's helpers. */
export interface DemoHelpers {
  /** Signs a development token for a demo user. */
  signToken(user: string, ttlSeconds: number): Promise<string>;
  /** Publishes an envelope as a backend would. */
  publish(envelope: Envelope): Promise<unknown>;
  /** Creates (or finds) the 1:1 conversation of two users, as a backend would. */
  createConversation(members: [string, string]): Promise<{ id: string }>;
}

/** The helpers, on the app's own services. */
export function createDemoHelpers(
  deps: { auth: UserAuth; publisher: Publisher; messaging: Messaging },
): DemoHelpers {
  return {
    signToken: (user, ttlSeconds) =>
      deps.auth.signDevToken(user, { ttlSeconds, structures: ["demo"] }),
    publish: async (envelope) => (await deps.publisher.publish(envelope)).result,
    createConversation: async (members) =>
      (await deps.messaging.create({ kind: "service", name: "demo" }, {
        kind: "direct",
        members,
      })).conversation,
  };
}
