/**
 * The bench keeps what a server child logs at error level once it listens (the lines its
 * drained output would otherwise lose), so that a scenario that sees a 500 can report the
 * server's own line: a child here prints its listening line, then JSON log lines of both
 * levels, split across writes, as relais's logger writes them.
 */

import assert from "node:assert/strict";
import { spawnChild, waitForLine } from "../../bench/_procs.ts";

const script = `
const out = (text) => Deno.stdout.writeSync(new TextEncoder().encode(text));
out("relais listening on http://127.0.0.1:1\\n");
out('{"level":"INFO","message":"HTTP request"}\\n{"level":"ERR');
await new Promise((resolve) => setTimeout(resolve, 50));
out('OR","message":"HTTP request failed","status":500}\\n');
out('{"level":"ERROR","message":"Unhandled error","error":"Error: boom"}\\n');
await new Promise((resolve) => setTimeout(resolve, 60_000));
`;

Deno.test("a server child's error lines after its listening line are kept, not its other lines", async () => {
  const child = await spawnChild("relais", Deno.execPath(), ["eval", script]);
  try {
    await waitForLine(child, /relais listening on (http:\/\/\S+)/, 20_000);
    const deadline = Date.now() + 10_000;
    while (child.errorLines.length < 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual(child.errorLines.map((line) => JSON.parse(line).message), [
      "HTTP request failed",
      "Unhandled error",
    ]);
  } finally {
    await child.stop();
  }
});
