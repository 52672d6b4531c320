import assert from "node:assert/strict";
import type { UserPrincipal } from "../../src/auth/principal.ts";
import type { UserAuth } from "../../src/auth/user_auth.ts";
import type { Directory, DirectoryEntry } from "../../src/directory/directory.ts";
import { withDirectoryIdentity } from "../../src/directory/identity.ts";

const claims: UserPrincipal = {
  kind: "user",
  id: "marie",
  roles: ["ROLE_TUTOR"],
  structures: [],
};

const entry: DirectoryEntry = {
  id: "marie",
  email: "marie@univ.test",
  name: "Marie",
  locale: "fr",
  category: "STUDENT",
  roles: ["ROLE_STUDENT"],
  structures: ["univ-lyon"],
  formations: ["l3-info"],
  groups: ["td-2"],
  updated_at: "2026-03-05T12:00:00.000Z",
};

const auth = {
  verifyToken: () => Promise.resolve(structuredClone(claims)),
  verifySignedContext: () => Promise.resolve(structuredClone(claims)),
  signDevToken: () => Promise.resolve(""),
} satisfies UserAuth;

function directoryOf(get: (id: string) => Promise<DirectoryEntry | undefined>) {
  let reads = 0;
  const directory = {
    get: (id: string) => {
      reads++;
      return get(id);
    },
  } as unknown as Directory;
  return { directory, reads: () => reads };
}

Deno.test("identity: memberships are the directory's plus the credential's claims", async () => {
  const { directory } = directoryOf(() => Promise.resolve(entry));
  const identity = withDirectoryIdentity(auth, directory, { onError: () => {} });
  for (
    const principal of [
      await identity.verifyToken("t"),
      await identity.verifySignedContext({ context: "c" }),
    ]
  ) {
    assert.deepEqual(principal.roles.sort(), ["ROLE_STUDENT", "ROLE_TUTOR"]);
    assert.deepEqual(principal.structures, ["univ-lyon"]);
    assert.deepEqual(principal.formations, ["l3-info"]);
    assert.deepEqual(principal.groups, ["td-2"]);
    assert.equal(principal.category, "STUDENT");
  }
});

Deno.test("identity: every verification reads the entry, and an unknown user keeps the claims", async () => {
  const { directory, reads } = directoryOf((id) =>
    Promise.resolve(id === "marie" ? undefined : entry)
  );
  const identity = withDirectoryIdentity(auth, directory, { onError: () => {} });
  assert.deepEqual(await identity.verifyToken("t"), claims);
  await identity.verifyToken("t");
  assert.equal(reads(), 2, "caching is the directory's (withEntryCache)");
});

Deno.test("identity: a directory that cannot be read leaves the claims and reports it", async () => {
  const errors: string[] = [];
  const { directory } = directoryOf(() => Promise.reject(new Error("KV down")));
  const identity = withDirectoryIdentity(auth, directory, {
    onError: (message) => errors.push(message),
  });
  assert.deepEqual(await identity.verifyToken("t"), claims);
  assert.deepEqual(errors, ['Cannot read the directory entry of "marie"']);
});
