/**
 * The Deno KV adapter of the directory: one record per user plus one index key per
 * membership (`dir_member`, dimension, value, user), written in the same atomic commit
 * as the record so that an audience never sees half an update.
 */

import { AppError } from "../errors.ts";
import { getManyEntries } from "../store/kv_reads.ts";
import * as keys from "../store/keys.ts";
import { MAX_KEY_BYTES, MAX_MUTATIONS } from "../store/kv/limits.ts";
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

const keyBytes = (key: readonly unknown[]) =>
  key.reduce<number>((n, part) => n + String(part).length * 3 + 2, 2);

/** Creates the directory on an open Deno KV handle. */
export function createKvDirectory(kv: Deno.Kv): Directory {
  async function write(
    id: string,
    change: (current: DirectoryEntry | undefined) => DirectoryEntry | undefined,
  ): Promise<{ entry: DirectoryEntry | undefined; existed: boolean }> {
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const current = await kv.get<DirectoryEntry>(keys.directoryUserKey(id));
      const before = current.value ?? undefined;
      const after = change(before);
      const oldKeys = indexKeys(before);
      const newKeys = indexKeys(after);
      const op = kv.atomic().check(current);
      let mutations = 1;
      let bytes = keyBytes(keys.directoryUserKey(id));
      for (const [k, key] of oldKeys) {
        if (newKeys.has(k)) continue;
        op.delete(key);
        mutations++;
        bytes += keyBytes(key);
      }
      for (const [k, key] of newKeys) {
        if (oldKeys.has(k)) continue;
        op.set(key, 1);
        mutations++;
        bytes += keyBytes(key);
      }
      if (mutations > MAX_MUTATIONS || bytes > MAX_KEY_BYTES) {
        throw new AppError(
          "payload_too_large",
          `Cannot store directory entry "${id.slice(0, 100)}": too many or too long memberships`,
        );
      }
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
