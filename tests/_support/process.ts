/** relais as a child process, for tests that kill it. */

import { testEnv } from "./server.ts";

/** A relais child process. */
export interface ChildServer {
  origin: string;
  wsUrl: string;
  process: Deno.ChildProcess;
  /** Sends a signal and waits for the exit. */
  kill(signal: Deno.Signal): Promise<Deno.CommandStatus>;
}

const root = new URL("../../", import.meta.url);

/** Starts `src/main.ts` on a random port and waits for its listening line. */
export async function spawnServer(env: Record<string, string>): Promise<ChildServer> {
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "src/main.ts"],
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
