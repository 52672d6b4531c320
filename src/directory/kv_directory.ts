/**
 * The Deno KV adapter of the directory: one record per user plus one index key per
 * membership (`dir_member`, dimension, value, user), written in the same atomic commit
 * as the record so that an audience never sees half an update. A change too large for one
 * commit adds its new index keys first: for a moment an audience may find the user under
 * both the old and the new values, never under neither, even if the process dies between.
 */

import { AppError } from "../errors.ts";
import { getManyEntries } from "../store/kv_reads.ts";
import * as keys from "../store/keys.ts";
import { keyBytesOf, MAX_KEY_BYTES, MAX_MUTATIONS } from "../store/kv/limits.ts";
import {
  type Dimension,
  type Directory,
  type DirectoryEntry,
  MEMBERSHIP_DIMENSIONS,
  valuesOf,
} from "./directory.ts";

const INDEXED: Dimension[] = ["ALL", ...MEMBERSHIP_DIMENSIONS, "CATEGORY"];
const MAX_RETRIES = 20;
const PAGE = 1000;

type IndexKey = ReturnType<typeof keys.directoryMemberKey>;

function indexKeys(entry: DirectoryEntry | undefined): Map<string, IndexKey> {
  const out = new Map<string, IndexKey>();
  if (!entry) return out;
  for (const dim of INDEXED) {
    for (const value of valuesOf(entry, dim)) {
      const key = keys.directoryMemberKey(dim as keys.DirectoryDimension, value, entry.id);
      out.set(JSON.stringify(key), key);
    }
  }
  return out;
}

/** Bytes of index keys, encoded (a membership of 100 characters may take 300). */
const bytesOf = (list: Iterable<IndexKey>) => {
  let bytes = 0;
  for (const [, , value, user] of list) bytes += keyBytesOf(value, user);
  return bytes;
};

/** Whether a commit of `mutations` writing or checking `bytes` of keys fits in one. */
const fits = (mutations: number, bytes: number) =>
  mutations <= MAX_MUTATIONS && bytes <= MAX_KEY_BYTES;

/** Creates the directory on an open Deno KV handle. */
export function createKvDirectory(kv: Deno.Kv): Directory {
  async function write(
    id: string,
    change: (current: DirectoryEntry | undefined) => DirectoryEntry | undefined,
  ): Promise<{ entry: DirectoryEntry | undefined; existed: boolean }> {
    // The entry's key, checked and written by every commit of a change.
    const entryBytes = 2 * keyBytesOf(id);
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const current = await kv.get<DirectoryEntry>(keys.directoryUserKey(id));
      const before = current.value ?? undefined;
      const after = change(before);
      const oldKeys = indexKeys(before);
      const newKeys = indexKeys(after);
      // An entry is refused only if it could not be written alone, as its creation would.
      if (after && !fits(1 + newKeys.size, entryBytes + bytesOf(newKeys.values()))) {
        throw new AppError(
          "payload_too_large",
          `Cannot store directory entry "${id.slice(0, 100)}": too many or too long memberships`,
        );
      }
      const added = [...newKeys].flatMap(([k, key]) => oldKeys.has(k) ? [] : [key]);
      const removed = [...oldKeys].flatMap(([k, key]) => newKeys.has(k) ? [] : [key]);
      const op = kv.atomic().check(current);
      if (fits(1 + added.length + removed.length, entryBytes + bytesOf([...added, ...removed]))) {
        for (const key of added) op.set(key, 1);
      } else {
        // The new index keys first, checked like the entry's commit below: they land only
        // while the entry is still the one they were computed from. The old ones go with
        // the entry (they fit: they were written with it), so a removal never lands once
        // the entry has changed. A change whose second commit never lands (lost to another,
        // and not written again) leaves an index key too many, never one missing.
        const first = kv.atomic().check(current);
        for (const key of added) first.set(key, 1);
        if (!(await first.commit()).ok) continue;
      }
      for (const key of removed) op.delete(key);
      if (after) op.set(keys.directoryUserKey(id), after);
      else op.delete(keys.directoryUserKey(id));
      if ((await op.commit()).ok) return { entry: after, existed: before !== undefined };
    }
    throw new Error(`Directory entry "${id}" keeps changing`);
  }

  async function getMany(ids: string[]): Promise<(DirectoryEntry | undefined)[]> {
    const entries = await getManyEntries<DirectoryEntry>(
      kv,
      ids.map((id) => keys.directoryUserKey(id)),
    );
    return entries.map((e) => e.value ?? undefined);
  }

  return {
    async put(entry) {
      const { existed } = await write(entry.id, () => entry);
      return { created: !existed };
    },
    async update(id, change) {
      return (await write(id, change)).entry;
    },
    async get(id) {
      return (await kv.get<DirectoryEntry>(keys.directoryUserKey(id))).value ?? undefined;
    },
    getMany,
    async delete(id) {
      return (await write(id, () => undefined)).existed;
    },
    async members(dim, value, visit) {
      const prefix = keys.directoryMemberPrefix(dim as keys.DirectoryDimension, value);
      let page: string[] = [];
      for await (const entry of kv.list({ prefix }, { batchSize: PAGE })) {
        page.push(entry.key[3] as string);
        if (page.length >= PAGE) {
          if (visit(page) === false) return;
          page = [];
        }
      }
      if (page.length > 0) visit(page);
    },
  } satisfies Directory;
}
