/** The served bundles are generated: they must match their sources. */

import assert from "node:assert/strict";
import { bundle, ENTRIES } from "../../src/pages/build.ts";
import * as bundles from "../../src/pages/bundles.ts";

const root = new URL("../../", import.meta.url).pathname;

Deno.test("the committed SDK and page bundles match their sources (run `deno task bundle`)", async () => {
  for (const { name, entry } of ENTRIES) {
    const fresh = await bundle(entry, root);
    assert.ok(
      (bundles as Record<string, string>)[name] === fresh,
      `${name} is stale: run \`deno task bundle\``,
    );
  }
});
