/**
 * relais as a child process, for tests that kill it: on Deno (`src/main.ts`) or on Node
 * (the bundle of `src/node/main.ts`), chosen per call or for a whole run with
 * `RELAIS_TEST_RUNTIME=node`.
 */

import { buildNode } from "../../src/node/build.ts";
import { testEnv } from "./server.ts";

/** A runtime relais runs on. */
export type TestRuntime = "deno" | "node";

/** The runtime of child servers when a test names none: `RELAIS_TEST_RUNTIME`, else Deno. */
export const TEST_RUNTIME: TestRuntime = (() => {
  const value = (Deno.env.get("RELAIS_TEST_RUNTIME") ?? "deno").trim().toLowerCase();
  if (value !== "deno" && value !== "node") {
    throw new Error(`RELAIS_TEST_RUNTIME must be "deno" or "node", got "${value}"`);
  }
  return value;
})();

let nodeVersion: Promise<string | undefined> | undefined;

/**
 * The version of `node` on the PATH (`v20.11.1`), or `undefined` when there is none (Deno
 * runs itself for a `node` it cannot find: that is not Node).
 */
export function nodeAvailable(): Promise<string | undefined> {
  nodeVersion ??= new Deno.Command("node", {
    args: ["--version"],
    stdout: "piped",
    stderr: "null",
  }).output()
    .then((out) => {
      const version = new TextDecoder().decode(out.stdout).trim();
      return out.success && /^v\d+\.\d+\.\d+$/.test(version) ? version : undefined;
    })
    .catch(() => undefined);
  return nodeVersion;
}

let bundle: Promise<string> | undefined;

/** Builds the Node bundle once per test run (when stale); answers its path. */
export function nodeBundle(): Promise<string> {
  bundle ??= buildNode();
  return bundle;
}

/** A relais child process. */
export interface ChildServer {
  origin: string;
  wsUrl: string;
  process: Deno.ChildProcess;
  /** Sends a signal and waits for the exit. */
  kill(signal: Deno.Signal): Promise<Deno.CommandStatus>;
}

const root = new URL("../../", import.meta.url);

/**
 * Starts relais on a random port and waits for its listening line: `src/main.ts` on Deno,
 * or the Node bundle with `node` (`runtime`, default {@linkcode TEST_RUNTIME}).
 */
export async function spawnServer(
  env: Record<string, string>,
  options: { runtime?: TestRuntime } = {},
): Promise<ChildServer> {
  const runtime = options.runtime ?? TEST_RUNTIME;
  if (runtime === "node" && !(await nodeAvailable())) {
    throw new Error("Cannot start relais on Node: node is not on the PATH");
  }
  const [program, args] = runtime === "node"
    // The V8 flag `deno task start` and `start:node` run relais with.
    ? ["node", ["--no-allocation-site-pretenuring", await nodeBundle()]]
    : [Deno.execPath(), [
      "run",
      "-A",
      "--v8-flags=--no-allocation-site-pretenuring",
      "src/main.ts",
    ]];
  const command = new Deno.Command(program, {
    args,
    cwd: root,
    env: testEnv({ PORT: "0", RELAIS_LOG_LEVEL: "warning", ...env }),
    stdout: "piped",
    stderr: "inherit",
  });
  const process = command.spawn();
  const reader = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const deadline = Date.now() + 20_000;
  let origin: string | undefined;
  while (!origin) {
    if (Date.now() > deadline) throw new Error("relais did not start within 20 s");
    const { value, done } = await reader.read();
    if (done) throw new Error(`relais exited before listening: ${buffer}`);
    buffer += value;
    origin = /relais listening on (http:\/\/\S+)/.exec(buffer)?.[1];
  }
  // Keep draining stdout so the child never blocks on a full pipe.
  (async () => {
    try {
      while (!(await reader.read()).done) { /* drain */ }
    } catch { /* closed */ }
  })();
  return {
    origin,
    wsUrl: `${origin.replace("http", "ws")}/v1/ws`,
    process,
    async kill(signal) {
      process.kill(signal);
      return await process.status;
    },
  };
}
