// Test doubles: a scriptable WebSocket, a manual clock, a seeded random. Node only.

/** A WebSocket stand-in the test plays the daemon through. */
export function socketFactory() {
  /** @type {FakeWebSocket[]} */
  const sockets = [];
  class FakeWebSocket {
    /** @param {string} url @param {string[]} protocols */
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.protocol = '';
      /** @type {any[]} */
      this.sent = [];
      /** @type {{code: number, reason: string}|null} */
      this.closedByClient = null;
      this.onopen = null;
      this.onmessage = null;
      this.onclose = null;
      this.onerror = null;
      sockets.push(this);
    }
    /** @param {string} data */
    send(data) {
      if (this.readyState !== 1) throw new Error('InvalidStateError: not open');
      this.sent.push(JSON.parse(data));
    }
    close(code = 1000, reason = '') {
      if (this.readyState >= 2) return;
      this.readyState = 3;
      this.closedByClient = { code, reason };
      queueMicrotask(() => this.onclose && this.onclose({ code, reason }));
    }
    // -- the test's side ---------------------------------------------------------------
    accept(protocol = 'switchboard.v1.json') {
      this.readyState = 1;
      this.protocol = protocol;
      this.onopen && this.onopen({});
    }
    /** @param {any} message */
    deliver(message) {
      this.onmessage && this.onmessage({ data: typeof message === 'string' ? message : JSON.stringify(message) });
    }
    drop(code = 1006, reason = '') {
      this.readyState = 3;
      this.onclose && this.onclose({ code, reason });
    }
    /** @param {string} type */
    sentOf(type) {
      return this.sent.filter((m) => m.type === type);
    }
    get hello() {
      return this.sent.find((m) => m.type === 'hello');
    }
  }
  return { FakeWebSocket, sockets, last: () => sockets[sockets.length - 1] };
}

/** A manual clock for setTimeout/clearTimeout. */
export class FakeClock {
  constructor() {
    this.now = 0;
    this.seq = 0;
    /** @type {{id: number, at: number, ms: number, fn: Function}[]} */
    this.timers = [];
    this.setTimeout = (/** @type {Function} */ fn, /** @type {number} */ ms) => {
      this.seq += 1;
      this.timers.push({ id: this.seq, at: this.now + ms, ms, fn });
      return this.seq;
    };
    this.clearTimeout = (/** @type {number} */ id) => {
      this.timers = this.timers.filter((t) => t.id !== id);
    };
  }
  /** @param {number} ms */
  advance(ms) {
    const until = this.now + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.now = due.at;
      due.fn();
    }
    this.now = until;
  }
  /** The delay of the only pending timer. */
  get pendingDelay() {
    return this.timers.length ? this.timers[0].ms : null;
  }
}

/** A deterministic random in [0, 1) (mulberry32). @param {number} seed */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Let pending promises and microtasks run. */
export function flush() {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A contact view as the daemon sends it. @param {Record<string, any>} over */
export function view(over = {}) {
  return { contact_id: 'c-1', type: 'voice', direction: 'inbound', state: 'incoming', owner_tab: 't-a', epoch: 1, mode: 'auto', warnings: [], ...over };
}

export const MEDIA_OK = Object.freeze({ media_less: false, present: false, ready: false, gate: 'warn' });

/** @param {number} seq @param {string} [epoch] */
export function pos(seq, epoch = 'E1') {
  return { epoch, seq };
}
