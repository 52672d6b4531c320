/**
 * Directory entries and preferences read through caches that stay true across the
 * cluster: a node announces on the bus whose records it wrote, and every other node
 * forgets them at once. The bus keeps its messages across a node's short loss of Redis,
 * so an announcement is lost only when a write's announcement cannot be published; the
 * caches' TTL bounds how long that goes unnoticed. One node alone announces nothing: it
 * makes every write itself, through its caches.
 */

import { type CachedDirectory, withEntryCache } from "../directory/entry_cache.ts";
import type { Directory } from "../directory/directory.ts";
import { type CachedPreferences, withPreferencesCache } from "../preferences/preferences_cache.ts";
import type { PreferencesStore } from "../preferences/preferences_store.ts";
import { readCacheTtlMs } from "../read_cache.ts";
import type { Bus } from "./bus.ts";

/** The bus topic on which nodes announce the records they wrote. */
export const CACHES_TOPIC = "caches.written";

/** Ids announced in one bus message at most: a bulk import goes as several. */
const IDS_PER_MESSAGE = 1_000;

/** What one announcement carries: the ids written, by cache. */
interface Written {
  directory?: string[];
  preferences?: string[];
}

/** The ids of `value` under `name` when it is a list of strings (anything else: none). */
function idsOf(value: unknown, name: keyof Written): string[] {
  if (typeof value !== "object" || value === null || !Object.hasOwn(value, name)) return [];
  const ids = (value as Record<string, unknown>)[name];
  return Array.isArray(ids) ? ids.filter((id): id is string => typeof id === "string") : [];
}

/**
 * The directory and preferences read through caches. With `bus` (cluster mode), each
 * write is announced to the other nodes, gathered by turn of the event loop, and what
 * they announce is forgotten here.
 */
export function readCaches(
  inner: { directory: Directory; preferences: PreferencesStore },
  bus: Bus | undefined,
  onError: (message: string, error: unknown) => void,
  /** Told of the directory entries written, on this node or announced by another. */
  directoryWritten: (ids: readonly string[]) => void = () => {},
): { directory: CachedDirectory; preferences: CachedPreferences } {
  if (!bus) {
    const ttlMs = readCacheTtlMs(false);
    return {
      directory: withEntryCache(inner.directory, {
        ttlMs,
        onWrite: (id) => directoryWritten([id]),
      }),
      preferences: withPreferencesCache(inner.preferences, { ttlMs }),
    };
  }
  const written = { directory: new Set<string>(), preferences: new Set<string>() };
  let scheduled = false;
  const announce = () => {
    scheduled = false;
    const lists = {
      directory: [...written.directory],
      preferences: [...written.preferences],
    };
    written.directory.clear();
    written.preferences.clear();
    const count = Math.max(lists.directory.length, lists.preferences.length);
    for (let i = 0; i < count; i += IDS_PER_MESSAGE) {
      const part: Written = {
        directory: lists.directory.slice(i, i + IDS_PER_MESSAGE),
        preferences: lists.preferences.slice(i, i + IDS_PER_MESSAGE),
      };
      bus.publish(CACHES_TOPIC, JSON.stringify(part)).catch((e) =>
        onError("Announcing cached records written failed", e)
      );
    }
  };
  const onWrite = (cache: keyof Written) => (id: string) => {
    if (cache === "directory") directoryWritten([id]);
    written[cache].add(id);
    if (scheduled) return;
    scheduled = true;
    setTimeout(announce, 0);
  };
  const ttlMs = readCacheTtlMs(true);
  const directory = withEntryCache(inner.directory, { ttlMs, onWrite: onWrite("directory") });
  const preferences = withPreferencesCache(inner.preferences, {
    ttlMs,
    onWrite: onWrite("preferences"),
  });
  bus.subscribe(CACHES_TOPIC, (message) => {
    // This node forgot its own writes as it made them.
    if (message.from === bus.node) return;
    let value: unknown;
    try {
      value = JSON.parse(message.data);
    } catch {
      return onError("Ignored a malformed announcement of cached records", message.from);
    }
    const users = idsOf(value, "directory");
    if (users.length > 0) {
      directory.forget(users);
      directoryWritten(users);
    }
    const prefs = idsOf(value, "preferences");
    if (prefs.length > 0) preferences.forget(prefs);
  });
  return { directory, preferences };
}
