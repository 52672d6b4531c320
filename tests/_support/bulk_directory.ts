/** Writes many directory users straight into a KV file, for audience-size tests and benchmarks. */

import type { Directory, DirectoryEntry } from "../../src/directory/directory.ts";
import { createKvDirectory } from "../../src/directory/kv_directory.ts";

/** The id of bulk user `i`. */
export const bulkUserId = (i: number) => `bulk-${String(i).padStart(5, "0")}`;

/** Puts `count` users, all in `group`, into `directory`; returns their ids. */
export async function putBulkUsers(
  directory: Directory,
  count: number,
  group: string,
): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => bulkUserId(i));
  const now = new Date().toISOString();
  for (let i = 0; i < ids.length; i += 100) {
    await Promise.all(
      ids.slice(i, i + 100).map((id) =>
        directory.put(
          {
            id,
            email: null,
            name: null,
            locale: "fr",
            category: "STUDENT",
            roles: ["ROLE_STUDENT"],
            structures: ["univ-exemple"],
            formations: ["licence-info"],
            groups: [group],
            updated_at: now,
          } satisfies DirectoryEntry,
        )
      ),
    );
  }
  return ids;
}

/** Puts `count` users, all in `group`, into the KV at `path`; returns their ids. */
export async function writeBulkDirectory(
  path: string,
  count: number,
  group: string,
): Promise<string[]> {
  const kv = await Deno.openKv(path);
  try {
    return await putBulkUsers(createKvDirectory(kv), count, group);
  } finally {
    kv.close();
  }
}
