/**
 * The fan-out janitor's passes: each kind of work on its own, a job handed on once it was
 * seen unfinished twice, and a kind that fails never holding up another.
 */

import assert from "node:assert/strict";
import { createFanoutJanitor, type UnfinishedWork } from "../../src/cluster/fanout_janitor.ts";
import { eventually } from "../_support/eventually.ts";

/** A kind of work whose unfinished jobs the test sets, recording what was resumed. */
function work(name: string) {
  let jobs: string[] = [];
  let failing = false;
  const resumed: string[][] = [];
  const kind: UnfinishedWork = {
    name,
    unfinished: () =>
      failing ? Promise.reject(new Error(`${name} unreachable`)) : Promise.resolve(jobs),
    resume(ids) {
      resumed.push(ids);
      return Promise.resolve(ids.length);
    },
  };
  return {
    kind,
    resumed,
    set: (ids: string[]) => void (jobs = ids),
    fail: (on: boolean) => void (failing = on),
  };
}

Deno.test("the janitor hands on each kind's jobs seen unfinished on two passes, each kind alone", async () => {
  const events = work("event fan-outs");
  const conversations = work("conversation fan-outs");
  const errors: string[] = [];
  const janitor = createFanoutJanitor({
    work: [events.kind, conversations.kind],
    intervalMs: 20,
    onError: (message) => void errors.push(message),
  });
  events.set(["e1"]);
  conversations.set(["c1", "c2"]);
  await janitor.start();
  // The first pass only notes them: a job just created belongs to its node.
  assert.equal(events.resumed.length, 0);
  assert.equal(conversations.resumed.length, 0);
  try {
    await eventually(() => events.resumed.length > 0 && conversations.resumed.length > 0);
    assert.deepEqual(events.resumed[0], ["e1"]);
    assert.deepEqual(conversations.resumed[0], ["c1", "c2"]);

    // One kind fails: the other goes on, and the failure is reported under its name.
    events.fail(true);
    conversations.set(["c3"]);
    await eventually(() => conversations.resumed.some((ids) => ids.includes("c3")));
    assert.ok(errors.some((m) => m.includes("event fan-outs")), errors.join("; "));
    assert.ok(!errors.some((m) => m.includes("conversation fan-outs")), errors.join("; "));
    // The jobs that were finished meanwhile are not handed on again.
    assert.deepEqual(conversations.resumed.find((ids) => ids.includes("c3")), ["c3"]);
  } finally {
    janitor.stop();
  }
  const after = conversations.resumed.length;
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(conversations.resumed.length, after, "a stopped janitor resumes nothing");
});
