/**
 * What a tab keeps across reloads of the same browser tab: its tab id, the last stream
 * position it saw, and the positions of the pops/notifications it already acted on.
 *
 * It lives in `sessionStorage` (per browser tab, survives reloads, copied when a tab is
 * duplicated). The private `session` from `welcome` is deliberately NOT kept here: it stays
 * in page memory so that a duplicated tab cannot present it.
 * @module tab-store
 */

/**
 * The subset of the Web Storage API the client uses.
 * @typedef {{getItem(key: string): (string|null), setItem(key: string, value: string): void,
 *   removeItem(key: string): void}} StorageLike
 */

/** @typedef {{epoch: string, seq: number}} Position */

const MAX_ACTED = 200;

/** An in-memory Storage, for tests and for browsers where storage is disabled. */
export class MemoryStorage {
  constructor() {
    /** @type {Map<string, string>} */
    this.map = new Map();
  }
  /** @param {string} key */
  getItem(key) {
    return this.map.has(key) ? /** @type {string} */ (this.map.get(key)) : null;
  }
  /** @param {string} key @param {string} value */
  setItem(key, value) {
    this.map.set(key, String(value));
  }
  /** @param {string} key */
  removeItem(key) {
    this.map.delete(key);
  }
  get length() {
    return this.map.size;
  }
  /** @param {number} i */
  key(i) {
    return Array.from(this.map.keys())[i] ?? null;
  }
}

/**
 * The page's sessionStorage, or memory when there is none (node, sandboxed iframes).
 * @returns {StorageLike}
 */
export function defaultStorage() {
  try {
    const s = globalThis.sessionStorage;
    if (s) {
      const probe = '__switchboard_probe__';
      s.setItem(probe, '1');
      s.removeItem(probe);
      return s;
    }
  } catch (_) {
    // storage disabled (privacy settings, opaque origin): fall through
  }
  return new MemoryStorage();
}

/**
 * @param {string} role
 * @param {string|number|undefined|null} slot
 * @returns {string}
 */
export function defaultStorageKey(role, slot) {
  return slot === undefined || slot === null || slot === '' ? `switchboard.${role}` : `switchboard.${role}.${slot}`;
}

/** @param {any} p @returns {p is Position} */
export function isPosition(p) {
  return !!p && typeof p === 'object' && typeof p.epoch === 'string' && p.epoch !== '' &&
    Number.isInteger(p.seq) && p.seq >= 0;
}

/** @param {Position} p @returns {string} */
export function positionKey(p) {
  return `${p.epoch}:${p.seq}`;
}

export class TabStore {
  /**
   * @param {StorageLike} storage
   * @param {string} prefix every key starts with it (one prefix per simulated tab)
   */
  constructor(storage, prefix) {
    this.storage = storage;
    this.prefix = prefix;
    /** @type {Set<string>} */
    this._acted = new Set(this._readJson('acted', []).filter((k) => typeof k === 'string'));
  }

  /** @returns {string|null} */
  get tabId() {
    return this._read('tab_id');
  }

  /** @param {string|null} id */
  set tabId(id) {
    if (id) this._write('tab_id', id);
    else this._remove('tab_id');
  }

  /** @returns {Position|null} */
  get position() {
    const p = this._readJson('pos', null);
    return isPosition(p) ? { epoch: p.epoch, seq: p.seq } : null;
  }

  /** @param {Position|null} p */
  set position(p) {
    if (p) this._write('pos', JSON.stringify({ epoch: p.epoch, seq: p.seq }));
    else this._remove('pos');
  }

  /**
   * The agent view as of `position` (contacts and media), so that a reloaded page that
   * resumes (and so gets only the messages after `position`) still knows every contact.
   * @returns {{contacts: any[], media: any}|null}
   */
  get view() {
    const v = this._readJson('view', null);
    return v && Array.isArray(v.contacts) ? { contacts: v.contacts, media: v.media || null } : null;
  }

  /** @param {{contacts: any[], media: any}|null} v */
  set view(v) {
    if (v) this._write('view', JSON.stringify(v));
    else this._remove('view');
  }

  /** @param {Position} p @returns {boolean} */
  hasActed(p) {
    return this._acted.has(positionKey(p));
  }

  /**
   * Remember that the message at `p` was acted on (bounded: the oldest are forgotten).
   * @param {Position} p
   */
  markActed(p) {
    this._acted.add(positionKey(p));
    while (this._acted.size > MAX_ACTED) {
      const oldest = this._acted.values().next().value;
      this._acted.delete(oldest);
    }
    this._write('acted', JSON.stringify(Array.from(this._acted)));
  }

  /** @param {string} name */
  _key(name) {
    return `${this.prefix}.${name}`;
  }

  /** @param {string} name */
  _read(name) {
    try {
      return this.storage.getItem(this._key(name));
    } catch (_) {
      return null;
    }
  }

  /** @param {string} name @param {any} fallback */
  _readJson(name, fallback) {
    const raw = this._read(name);
    if (raw === null) return fallback;
    try {
      return JSON.parse(raw);
    } catch (_) {
      return fallback;
    }
  }

  /** @param {string} name @param {string} value */
  _write(name, value) {
    try {
      this.storage.setItem(this._key(name), value);
    } catch (_) {
      // quota or disabled storage: the tab still works, it just will not resume after a reload
    }
  }

  /** @param {string} name */
  _remove(name) {
    try {
      this.storage.removeItem(this._key(name));
    } catch (_) {
      // ignore
    }
  }
}
