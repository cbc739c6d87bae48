/**
 * A tiny synchronous event emitter. A throwing listener is reported and does not stop the
 * others (nor the client that emits).
 * @module emitter
 */

export class Emitter {
  constructor() {
    /** @type {Map<string, Set<Function>>} */
    this._handlers = new Map();
  }

  /**
   * Subscribe to an event.
   * @param {string} name
   * @param {(payload: any) => void} fn
   * @returns {() => void} a function that unsubscribes
   */
  on(name, fn) {
    let set = this._handlers.get(name);
    if (!set) {
      set = new Set();
      this._handlers.set(name, set);
    }
    set.add(fn);
    return () => this.off(name, fn);
  }

  /**
   * @param {string} name
   * @param {(payload: any) => void} fn
   */
  off(name, fn) {
    const set = this._handlers.get(name);
    if (set) set.delete(fn);
  }

  /**
   * @param {string} name
   * @param {any} [payload]
   */
  emit(name, payload) {
    const set = this._handlers.get(name);
    if (!set) return;
    for (const fn of Array.from(set)) {
      try {
        fn(payload);
      } catch (err) {
        if (typeof console !== 'undefined') console.error(`switchboard: '${name}' listener failed`, err);
      }
    }
  }
}
