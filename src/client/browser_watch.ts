/**
 * What the client hears from the browser: the network going offline and back online, the
 * page being hidden or shown, and the user's input. In Deno (no `document`) it hears nothing.
 */

/** What the SDK uses of a browser's `window` and `document` (no DOM types needed). */
interface EventTargetLike {
  addEventListener(type: string, listener: () => void, options?: { passive: boolean }): void;
  removeEventListener(type: string, listener: () => void): void;
}
interface DocumentLike extends EventTargetLike {
  visibilityState: string;
}

/** What {@linkcode watchBrowser} reports. */
export interface BrowserHandlers {
  /** The browser is back online. */
  online(): void;
  /** The browser went offline. */
  offline(): void;
  /** The page was hidden (another tab, a minimised window). */
  hidden(): void;
  /** The user is active: the page was shown, or a key or pointer was pressed. */
  activity(): void;
}

/**
 * Listens to the browser's online/offline, visibility and input events; answers a function
 * that stops listening. Input is reported once a second at most.
 */
export function watchBrowser(handlers: BrowserHandlers): () => void {
  const doc = (globalThis as { document?: DocumentLike }).document;
  if (!doc) return () => {};
  const win = globalThis as unknown as EventTargetLike;
  let lastInput = 0;
  const onOnline = () => handlers.online();
  const onOffline = () => handlers.offline();
  const onVisibility = () => {
    if (doc.visibilityState === "visible") handlers.activity();
    else handlers.hidden();
  };
  const onInput = () => {
    // Input events come in bursts: look at one per second at most.
    const now = Date.now();
    if (now - lastInput < 1000) return;
    lastInput = now;
    handlers.activity();
  };
  win.addEventListener("online", onOnline);
  win.addEventListener("offline", onOffline);
  doc.addEventListener("visibilitychange", onVisibility);
  doc.addEventListener("pointerdown", onInput, { passive: true });
  doc.addEventListener("keydown", onInput, { passive: true });
  return () => {
    win.removeEventListener("online", onOnline);
    win.removeEventListener("offline", onOffline);
    doc.removeEventListener("visibilitychange", onVisibility);
    doc.removeEventListener("pointerdown", onInput);
    doc.removeEventListener("keydown", onInput);
  };
}
