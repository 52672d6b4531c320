/**
 * Web Push as the app wires it: the VAPID keys, the pusher that decides and sends at due
 * time, its actor, and the step that queues a fan-out batch's pushes right after the batch
 * was delivered live (a target it reached has a connection and gets no push).
 */

import type { Registry } from "../../actors/registry.ts";
import type { Controls } from "../controls/controls.ts";
import type { LiveDelivery } from "../delivery/live_delivery.ts";
import type { Directory } from "../directory/directory.ts";
import type { PreferencesStore } from "../preferences/preferences_store.ts";
import type { Hub } from "../realtime/hub.ts";
import type { Store } from "../store/store.ts";
import { definePushActor, notifyPusher } from "./push_actor.ts";
import type { PushStore, VapidKeys } from "./push_store.ts";
import type { EndpointPolicy } from "./subscription.ts";
import type { Config } from "../config.ts";
import { CLAIM_MS, createPusher } from "./pusher.ts";
import { createPushSender } from "./sender.ts";
import { createVapidSource } from "./vapid.ts";

/** Web Push, as the routes and the privacy exports reach it. */
export interface PushServices {
  store: PushStore;
  /** The VAPID keys (generated once in development). */
  vapid(): Promise<VapidKeys>;
  endpoints: EndpointPolicy;
}

/** What {@linkcode wirePush} needs. */
export interface PushWiring {
  pushStore: PushStore;
  /**
   * The push settings (without VAPID keys, a pair is generated once and kept in the store),
   * and the app's address the notifications link to.
   */
  config: { push: Config["push"]; mailer: Pick<Config["mailer"], "appUrl"> };
  registry: Registry;
  store: Store;
  directory: Directory;
  preferences: PreferencesStore;
  hub: Hub;
  /** Whether a user is connected (default: to this node; cluster mode: to any node). */
  isLive?(user: string): boolean;
  /** Tells the push runner that pushes are due (default: this node's; cluster mode: its node's). */
  wake?(dueAt: number): void;
  /** Cluster mode: each task is claimed before its send (for {@linkcode CLAIM_MS}). */
  claim?: boolean;
  controls: Controls;
  onGenerated(): void;
  onError(message: string, error: unknown): void;
}

/**
 * Defines the push actor and answers the services the routes reach, and `deliverLive`:
 * the live delivery followed by the queueing of the batch's pushes.
 */
export function wirePush(
  deps: PushWiring,
  live: LiveDelivery,
): { services: PushServices; deliverLive: LiveDelivery["deliverBatch"] } {
  const { registry, controls, onError } = deps;
  const { push: settings, mailer: { appUrl } } = deps.config;
  const vapid = createVapidSource({
    ...(settings.vapid ? { configured: settings.vapid } : {}),
    store: deps.pushStore,
    onGenerated: deps.onGenerated,
  });
  const pusher = createPusher({
    push: deps.pushStore,
    store: deps.store,
    directory: deps.directory,
    preferences: deps.preferences,
    sender: createPushSender(),
    vapid: async () => ({ ...await vapid(), subject: settings.subject }),
    endpoints: settings.endpoints,
    isLive: deps.isLive ?? ((user) => deps.hub.ofUser(user).length > 0),
    // The `push` kill switch, and `notifications`: a push is the notice of an in-app item.
    pushAllowed: (subject) =>
      controls.isEnabled("push", subject) && controls.isEnabled("notifications", subject),
    ...(appUrl ? { appUrl } : {}),
    retryBaseMs: settings.retryBaseMs,
    maxAttempts: settings.maxAttempts,
    ...(deps.claim ? { claimMs: CLAIM_MS } : {}),
    onError,
  });
  definePushActor({ registry, pusher, settings: { batchSize: 50, pollMs: 30_000 }, onError });
  return {
    services: { store: deps.pushStore, vapid, endpoints: settings.endpoints },
    deliverLive(batch, json, envelope, trace) {
      live.deliverBatch(batch, json, envelope, trace);
      pusher.enqueue(batch, envelope).then(
        (dueAt) => dueAt !== undefined && (deps.wake ?? ((d) => notifyPusher(registry, d)))(dueAt),
        (e) => onError(`Queueing the pushes of event "${batch.event.id}" failed`, e),
      );
    },
  };
}
