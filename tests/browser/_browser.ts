/**
 * Chromium for browser tests: Debian's `/usr/bin/chromium` driven by playwright-core.
 *
 * Without Chromium the browser tests are skipped with one line saying so, except in CI
 * (`CI` set), where they run and fail: CI installs Chromium, so its absence there is a
 * failure.
 */

import { type BrowserContext, chromium, type Page } from "playwright-core";
import { skipUnless } from "../_support/requirements.ts";

/** Where Debian installs Chromium; `RELAIS_TEST_CHROMIUM` names another executable. */
export const CHROMIUM: string = Deno.env.get("RELAIS_TEST_CHROMIUM") || "/usr/bin/chromium";
/** Where screenshots are kept (gitignored). */
export const ARTIFACTS = new URL("../artifacts/", import.meta.url);

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

const available = exists(CHROMIUM);

/** A launched browser profile (one context, like one user's browser). */
export interface Browser {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

/** Launches Chromium with a fresh profile and opens one page. */
export async function launch(): Promise<Browser> {
  const dir = await Deno.makeTempDir({ prefix: "relais-chromium-" });
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 900 },
    locale: "fr-FR",
  });
  context.setDefaultTimeout(15_000);
  const page = context.pages()[0] ?? await context.newPage();
  return {
    context,
    page,
    async close() {
      await context.close().catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Saves a full-page screenshot as `tests/artifacts/<name>.png`. */
export async function screenshot(page: Page, name: string): Promise<void> {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: new URL(`${name}.png`, ARTIFACTS).pathname, fullPage: true });
}

/**
 * Declares a browser test, bounded to `timeoutMs` (60 s by default). Skipped with a
 * message when Chromium is missing outside CI.
 */
export function browserTest(
  name: string,
  fn: () => Promise<void>,
  timeoutMs = 60_000,
): void {
  const skip = skipUnless(available, {
    tests: "the browser tests",
    missing: `${CHROMIUM} is missing`,
    install: "apt-get install -y chromium",
  });
  Deno.test({
    name,
    ignore: skip,
    // Playwright keeps pipes to the browser process between calls.
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      if (!available) throw new Error(`${CHROMIUM} is missing: CI must install chromium`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        const error = new Error(`Browser test took longer than ${timeoutMs} ms`);
        timer = setTimeout(() => reject(error), timeoutMs); // deadline, not synchronisation
      });
      try {
        await Promise.race([fn(), timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  });
}
