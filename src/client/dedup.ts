/** A bounded memory of ids already handed to the application (delivery is at-least-once). */

/** Remembers the last `capacity` ids. */
export interface SeenIds {
  /** True if `id` was seen; otherwise remembers it and answers false. */
  check(id: string): boolean;
  /** True if `id` is remembered; remembers nothing. */
  has(id: string): boolean;
  size(): number;
}

/** Creates an id memory that forgets the oldest ids beyond `capacity`. */
export function createSeenIds(capacity = 2000): SeenIds {
  // A Set iterates in insertion order: its first entry is the oldest.
  const seen = new Set<string>();
  return {
    check(id) {
      if (seen.has(id)) return true;
      seen.add(id);
      if (seen.size > capacity) seen.delete(seen.values().next().value!);
      return false;
    },
    has: (id) => seen.has(id),
    size: () => seen.size,
  };
}
