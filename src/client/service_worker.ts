/**
 * The SDK's service worker, served as `/sdk/relais-sw.js`: it shows each Web Push message
 * relais sends as a notification, and on a click focuses a tab already at the
 * notification's link or opens one. An application with its own service worker can load
 * it there with `importScripts("https://relais.example.org/sdk/relais-sw.js")`.
 *
 * The payload is what relais's pusher sends: `{id, seq, title, body, url?, tag?, …}`.
 *
 * @module
 */

/** The part of a push event used here. */
interface PushEventLike extends Event {
  data: { json(): unknown } | null;
  waitUntil(promise: Promise<unknown>): void;
}

/** The part of a notification click used here. */
interface NotificationEventLike extends Event {
  notification: { data: unknown; close(): void };
  waitUntil(promise: Promise<unknown>): void;
}

/** A window the worker controls, or may. */
interface WindowClientLike {
  url: string;
  focus(): Promise<unknown>;
}

/** The part of the worker's global scope used here. */
interface WorkerScope {
  registration: {
    scope: string;
    showNotification(title: string, options: Record<string, unknown>): Promise<void>;
  };
  clients: {
    matchAll(options: { type: "window"; includeUncontrolled: boolean }): Promise<
      WindowClientLike[]
    >;
    openWindow(url: string): Promise<unknown>;
    claim(): Promise<void>;
  };
  skipWaiting(): Promise<void>;
  addEventListener(type: string, listener: (event: Event) => void): void;
}

const scope = globalThis as unknown as WorkerScope;

/** The notification's data: where a click goes and which item it is. */
interface ShownData {
  url?: string;
  id?: string;
  seq?: number;
}

function payloadOf(event: PushEventLike): Record<string, unknown> {
  try {
    const value = event.data?.json();
    return typeof value === "object" && value !== null ? value as Record<string, unknown> : {};
  } catch {
    return {};
  }
}

const text = (value: unknown, fallback: string) =>
  typeof value === "string" && value !== "" ? value : fallback;

scope.addEventListener("install", () => {
  void scope.skipWaiting();
});

scope.addEventListener("activate", (event) => {
  (event as PushEventLike).waitUntil(scope.clients.claim());
});

scope.addEventListener("push", (event) => {
  const push = event as PushEventLike;
  const payload = payloadOf(push);
  const data: ShownData = {
    ...(typeof payload.url === "string" ? { url: payload.url } : {}),
    ...(typeof payload.id === "string" ? { id: payload.id } : {}),
    ...(typeof payload.seq === "number" ? { seq: payload.seq } : {}),
  };
  push.waitUntil(
    scope.registration.showNotification(text(payload.title, "relais"), {
      body: text(payload.body, ""),
      data,
      // A newer notification with the same collapse key replaces the one shown.
      ...(typeof payload.tag === "string" ? { tag: payload.tag, renotify: true } : {}),
      ...(typeof payload.timestamp === "string"
        ? { timestamp: Date.parse(payload.timestamp) }
        : {}),
    }),
  );
});

scope.addEventListener("notificationclick", (event) => {
  const click = event as NotificationEventLike;
  click.notification.close();
  const data = (click.notification.data ?? {}) as ShownData;
  const target = new URL(data.url ?? "/", scope.registration.scope).href;
  click.waitUntil((async () => {
    const windows = await scope.clients.matchAll({ type: "window", includeUncontrolled: true });
    const open = windows.find((w) => w.url === target);
    if (open) return await open.focus();
    return await scope.clients.openWindow(target);
  })());
});
