/** A small typed event emitter: the client's `on()` and how it reaches its listeners. */

/** Listeners by event name, for an event map `E` (name → value). */
export interface Emitter<E> {
  /** Listens to an event; returns a function that stops listening. */
  on<K extends keyof E>(type: K, listener: (value: E[K]) => void): () => void;
  /** Calls every listener of `type` with `value`, in the order they were added. */
  emit<K extends keyof E>(type: K, value: E[K]): void;
}

/** Creates an emitter; a listener that throws is logged and the others still run. */
export function createEmitter<E>(): Emitter<E> {
  const listeners = new Map<keyof E, Set<(value: never) => void>>();
  return {
    on(type, listener) {
      let set = listeners.get(type);
      if (!set) listeners.set(type, set = new Set());
      set.add(listener as (value: never) => void);
      return () => void set.delete(listener as (value: never) => void);
    },
    emit(type, value) {
      for (const listener of [...(listeners.get(type) ?? [])]) {
        try {
          (listener as (v: typeof value) => void)(value);
        } catch (error) {
          // One failing listener must not break the stream for the others.
          console.error(`relais: a "${String(type)}" listener failed`, error);
        }
      }
    },
  };
}
