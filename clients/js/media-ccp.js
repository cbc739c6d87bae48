/**
 * The media CCP page: the separate CCP that carries the audio in media-less mode.
 *
 * It connects with role `media`, works out its readiness and reports it as `media_status`
 * whenever it changes (and again after every reconnect):
 * - microphone: the browser's microphone permission (`navigator.permissions`), when the
 *   browser can tell; otherwise assumed granted (the softphone itself asks for it);
 * - signed_in: Streams handed us the agent (`connect.agent(cb)`), until an auth failure;
 * - in_call: a voice contact of this CCP is connected;
 * - audio_lost: a softphone error since the call connected.
 * It shows what the daemon tells it: the `media` view (`mediaCcp.media`, the `media` event),
 * including which contact it should be carrying (`active_contact`).
 * @module media-ccp
 */

import { Emitter } from './emitter.js';
import { SwitchboardClient } from './switchboard.js';

/**
 * @typedef {{microphone: boolean, signed_in: boolean, in_call: boolean, audio_lost: boolean}} MediaStatus
 *
 * @typedef {object} MediaCcpOptions
 * @property {SwitchboardClient} [client] a client with role `media` (else one is built from `clientOptions`)
 * @property {import('./switchboard.js').ClientOptions} [clientOptions]
 * @property {any} [connect] the Streams `connect` global of the media CCP (optional)
 * @property {any} [navigator] for the microphone permission (default: the global one)
 * @property {Partial<MediaStatus>} [initial] starting values (e.g. when there is no Streams)
 */

export class MediaCcp extends Emitter {
  /** @param {MediaCcpOptions} options */
  constructor(options) {
    super();
    this.client = options.client || new SwitchboardClient({ ...options.clientOptions, role: 'media' });
    if (this.client.role !== 'media') throw new TypeError('MediaCcp needs a client with role "media"');
    this.connect = options.connect;
    this.navigator = options.navigator !== undefined ? options.navigator : globalThis.navigator;
    /** @type {MediaStatus} */
    this.status = {
      microphone: true,
      signed_in: !options.connect,
      in_call: false,
      audio_lost: false,
      ...(options.initial || {}),
    };
    /** @type {any} the daemon's MediaView */
    this.media = null;
    /** @type {Set<string>} connected voice contacts */
    this._calls = new Set();
    this.client.on('media', (/** @type {any} */ media) => {
      this.media = media;
      this.emit('media', media);
    });
  }

  /** The contact the daemon says this CCP should carry, if any. */
  get activeContact() {
    return this.media ? this.media.active_contact || null : null;
  }

  start() {
    this.client.sendMediaStatus(this.status); // remembered: sent once welcomed
    this.client.start();
    this._watchMicrophone();
    if (this.connect) this._watchStreams(this.connect);
    return this;
  }

  stop() {
    this.client.stop();
  }

  /**
   * Change some readiness facts; sends `media_status` if anything changed.
   * @param {Partial<MediaStatus>} partial
   */
  update(partial) {
    const next = { ...this.status, ...partial };
    const changed = Object.keys(next).some((k) => /** @type {any} */ (next)[k] !== /** @type {any} */ (this.status)[k]);
    if (!changed) return;
    this.status = next;
    this.client.sendMediaStatus(next);
    this.emit('status', { ...next });
  }

  /** @returns {boolean} ready as the daemon counts it (its `ready` also needs a connection) */
  get ready() {
    return this.status.signed_in && this.status.microphone && !this.status.audio_lost;
  }

  _watchMicrophone() {
    const permissions = this.navigator && this.navigator.permissions;
    if (!permissions || typeof permissions.query !== 'function') return;
    Promise.resolve()
      .then(() => permissions.query({ name: 'microphone' }))
      .then((/** @type {any} */ perm) => {
        const apply = () => this.update({ microphone: perm.state === 'granted' });
        apply();
        if (typeof perm.addEventListener === 'function') perm.addEventListener('change', apply);
        else perm.onchange = apply;
      })
      .catch(() => {
        // this browser cannot query the microphone permission (e.g. Firefox): keep the assumption
      });
  }

  /** @param {any} connect */
  _watchStreams(connect) {
    if (typeof connect.agent === 'function') {
      connect.agent((/** @type {any} */ agent) => {
        this.update({ signed_in: true });
        if (agent && typeof agent.onSoftphoneError === 'function') {
          agent.onSoftphoneError(() => this.update({ audio_lost: true }));
        }
      });
    }
    if (connect.core && typeof connect.core.onAuthFail === 'function') {
      connect.core.onAuthFail(() => this.update({ signed_in: false }));
    }
    if (typeof connect.contact === 'function') {
      connect.contact((/** @type {any} */ contact) => this._watchContact(contact));
    }
  }

  /** @param {any} contact */
  _watchContact(contact) {
    let id;
    try {
      if (contact.getType() === 'chat' || contact.getType() === 'task') return;
      id = contact.getContactId();
    } catch (_) {
      return;
    }
    const on = (/** @type {string} */ method, /** @type {Function} */ fn) => {
      if (typeof contact[method] === 'function') contact[method](fn);
    };
    on('onConnected', () => {
      this._calls.add(id);
      this.update({ in_call: true, audio_lost: false });
    });
    const done = () => {
      this._calls.delete(id);
      this.update({ in_call: this._calls.size > 0 });
    };
    on('onEnded', done);
    on('onDestroy', done);
    let status;
    try {
      status = contact.getStatus().type;
    } catch (_) {
      status = undefined;
    }
    if (status === 'connected') {
      // a CCP (re)started mid-call: it carries that call already
      this._calls.add(id);
      this.update({ in_call: true });
    }
  }
}
