/**
 * Web Push from the SDK: `subscribePush()` asks the user's permission, registers the
 * service worker (`/sdk/relais-sw.js`, or the application's own), subscribes with the
 * server's VAPID public key and registers the subscription with relais, which then sends
 * the user's notifications as pushes while no tab of theirs is connected.
 */

import type { Http } from "./http.ts";

// The browser's service worker and push types, as far as used here: the SDK also runs
// (and is type-checked) where the DOM library is absent.

/** A service worker, as `subscribePush()` waits for it. */
interface WorkerLike {
  state: string;
  addEventListener(type: "statechange", listener: () => void): void;
}

/** A browser push subscription, as used here. */
interface PushSubscriptionLike {
  endpoint: string;
  options: { applicationServerKey: ArrayBuffer | null };
  toJSON(): unknown;
  unsubscribe(): Promise<boolean>;
}

/** A service worker registration (the browser's `ServiceWorkerRegistration`). */
export interface PushWorkerRegistration {
  active: WorkerLike | null;
  installing: WorkerLike | null;
  waiting: WorkerLike | null;
  pushManager: {
    getSubscription(): Promise<PushSubscriptionLike | null>;
    subscribe(options: {
      userVisibleOnly: boolean;
      applicationServerKey: Uint8Array<ArrayBuffer>;
    }): Promise<PushSubscriptionLike>;
  };
}

/** The browser globals Web Push needs. */
interface BrowserPush {
  navigator?: {
    serviceWorker?: {
      register(url: string, options: { scope: string }): Promise<PushWorkerRegistration>;
    };
  };
  PushManager?: unknown;
  Notification?: { requestPermission(): Promise<string> };
}

/** Why `subscribePush()` failed: `code` says which step. */
export class PushError extends Error {
  constructor(
    /** `unsupported`, `denied`, `service_worker`, `subscribe` or `register`. */
    readonly code: "unsupported" | "denied" | "service_worker" | "subscribe" | "register",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "PushError";
  }
}

/** Options of `subscribePush()`. */
export interface SubscribePushOptions {
  /**
   * The service worker to push through: a registration the application made, or the URL
   * of a script to register (default: relais's `/sdk/relais-sw.js`, which must then be on
   * the page's origin). An application's own worker may `importScripts` relais's one.
   */
  serviceWorker?: string | PushWorkerRegistration;
  /** The scope to register the worker with (default `/`). */
  scope?: string;
  /**
   * How long the browser's push service may take to subscribe (default 20 s): a browser
   * that cannot reach it may otherwise wait for ever.
   */
  subscribeTimeoutMs?: number;
}

/** A push subscription as the browser serializes it and relais stores it. */
export interface PushSubscriptionInfo {
  endpoint: string;
  expirationTime?: number | null;
  keys: { p256dh: string; auth: string };
}

/** The SDK's push methods. */
export interface PushActions {
  /** Subscribes this browser to the user's pushes; rejects with a {@linkcode PushError}. */
  subscribePush(options?: SubscribePushOptions): Promise<PushSubscriptionInfo>;
  /** Unsubscribes this browser; false when it was not subscribed. */
  unsubscribePush(options?: SubscribePushOptions): Promise<boolean>;
}

/** Base64url text as bytes. */
function fromBase64Url(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replaceAll("-", "+").replaceAll("_", "/");
  const raw = atob(b64 + "=".repeat((4 - b64.length % 4) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

const sameBytes = (a: ArrayBuffer | null | undefined, b: Uint8Array) => {
  if (!a || a.byteLength !== b.length) return false;
  const view = new Uint8Array(a);
  return view.every((x, i) => x === b[i]);
};

const message = (error: unknown) => error instanceof Error ? error.message : String(error);

/** Waits until a registration has an active worker (push needs one). */
function activated(registration: PushWorkerRegistration): Promise<PushWorkerRegistration> {
  if (registration.active) return Promise.resolve(registration);
  const worker = registration.installing ?? registration.waiting;
  if (!worker) return Promise.resolve(registration);
  return new Promise((resolve, reject) => {
    worker.addEventListener("statechange", () => {
      if (worker.state === "activated") resolve(registration);
      if (worker.state === "redundant") {
        reject(new PushError("service_worker", "The service worker could not be installed"));
      }
    });
  });
}

/** `promise`, or a rejection once `ms` have passed without an answer. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Creates the push methods over the client's HTTP helper. */
export function createPushActions(options: { http: Http; baseUrl: string }): PushActions {
  const { http } = options;

  async function registration(choice: SubscribePushOptions) {
    const browser = globalThis as BrowserPush;
    const workers = browser.navigator?.serviceWorker;
    if (!workers || !browser.PushManager || !browser.Notification) {
      throw new PushError("unsupported", "Web Push is not supported here");
    }
    if (typeof choice.serviceWorker === "object") return await activated(choice.serviceWorker);
    const url = choice.serviceWorker ?? `${options.baseUrl}/sdk/relais-sw.js`;
    try {
      const registered = await workers.register(url, { scope: choice.scope ?? "/" });
      return await activated(registered);
    } catch (error) {
      if (error instanceof PushError) throw error;
      throw new PushError(
        "service_worker",
        `Cannot register the service worker "${url}": ${message(error)}`,
        { cause: error },
      );
    }
  }

  return {
    async subscribePush(choice = {}) {
      const reg = await registration(choice);
      const permission = await (globalThis as BrowserPush).Notification!.requestPermission();
      if (permission !== "granted") {
        throw new PushError("denied", `Notifications are not allowed: "${permission}"`);
      }
      const { public_key } = await http.request<{ public_key: string }>(
        "GET",
        "/v1/push/vapid-public-key",
      );
      const key = fromBase64Url(public_key);
      let subscription: PushSubscriptionLike;
      try {
        const existing = await reg.pushManager.getSubscription();
        // A subscription made with another server key would never receive relais's pushes.
        if (existing && !sameBytes(existing.options.applicationServerKey, key)) {
          await existing.unsubscribe();
        }
        subscription = existing && sameBytes(existing.options.applicationServerKey, key)
          ? existing
          : await within(
            reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }),
            choice.subscribeTimeoutMs ?? 20_000,
          );
      } catch (error) {
        throw new PushError(
          "subscribe",
          `Cannot subscribe to the push service: ${message(error)}`,
          { cause: error },
        );
      }
      const info = subscription.toJSON() as PushSubscriptionInfo;
      try {
        await http.request("POST", "/v1/me/push-subscriptions", info);
      } catch (error) {
        throw new PushError(
          "register",
          `Cannot register the push subscription: ${message(error)}`,
          { cause: error },
        );
      }
      return info;
    },
    async unsubscribePush(choice = {}) {
      const reg = await registration(choice);
      const subscription = await reg.pushManager.getSubscription();
      if (!subscription) return false;
      await http.request("DELETE", "/v1/me/push-subscriptions", {
        endpoint: subscription.endpoint,
      });
      return await subscription.unsubscribe();
    },
  };
}
