import assert from "node:assert/strict";
import type { UserPrincipal } from "../../src/auth/principal.ts";
import type { UserAuth } from "../../src/auth/user_auth.ts";
import { withClaimsRefresh } from "../../src/directory/claims_refresh.ts";
import type { Directory } from "../../src/directory/directory.ts";
import { createKvDirectory } from "../../src/directory/kv_directory.ts";

function fakeAuth(principals: Record<string, UserPrincipal>): UserAuth {
  return {
    verifyToken: (token) => Promise.resolve(principals[token]),
    verifySignedContext: () => Promise.reject(new Error("unused")),
    signDevToken: () => Promise.resolve(""),
  };
}

const principal = (id: string, roles: string[], structures: string[]): UserPrincipal => ({
  kind: "user",
  id,
  roles,
  structures,
});

/** The directory, keeping the writes it was asked for (the refresh does not await them). */
function tracked(directory: Directory) {
  const writes: Promise<unknown>[] = [];
  const wrapped: Directory = {
    ...directory,
    update: (id, change) => {
      const write = directory.update(id, change);
      writes.push(write);
      return write;
    },
  };
  /** Resolves once every write asked for so far has ended; returns how many there were. */
  const settle = async () => (await Promise.allSettled(writes)).length;
  return { directory: wrapped, settle };
}

Deno.test("claims refresh updates roles and structures of the directory at authentication", async () => {
  using kv = await Deno.openKv(":memory:");
  const { directory, settle } = tracked(createKvDirectory(kv));
  await directory.put({
    id: "u1",
    email: "u1@example.org",
    name: "U One",
    locale: "en",
    category: "STAFF",
    roles: ["ROLE_STUDENT"],
    structures: [],
    formations: ["f1"],
    groups: ["g1"],
    updated_at: new Date(0).toISOString(),
  });
  let clock = 0;
  const auth = withClaimsRefresh(
    fakeAuth({
      a: principal("u1", ["ROLE_STAFF", "institution-admin"], ["univ-x"]),
      b: principal("u2", ["ROLE_STUDENT"], ["univ-y"]),
      none: principal("u1", [], []),
    }),
    directory,
    { intervalMs: 1000, now: () => clock, onError: (_, e) => assert.fail(String(e)) },
  );

  await auth.verifyToken("a");
  await auth.verifyToken("b");
  assert.equal(await settle(), 2);
  const u1 = (await directory.get("u1"))!;
  assert.deepEqual([u1.roles, u1.structures, u1.email, u1.groups], [
    ["ROLE_STAFF", "institution-admin"],
    ["univ-x"],
    "u1@example.org",
    ["g1"],
  ]);
  const found: string[] = [];
  await directory.members("ROLE", "institution-admin", (ids) => void found.push(...ids));
  assert.deepEqual(found, ["u1"]);
  // An unknown user gets an entry with what the token says.
  assert.deepEqual((await directory.get("u2"))?.structures, ["univ-y"]);

  // A token without claims says nothing about them; a refresh happens at most once per interval.
  clock = 5000;
  await auth.verifyToken("none");
  // The refresh asks for its write while it verifies: none was asked for.
  assert.equal(await settle(), 2);
  assert.deepEqual((await directory.get("u1"))!.roles, ["ROLE_STAFF", "institution-admin"]);
});
