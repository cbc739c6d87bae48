/**
 * The Switchboard client for a browser tab: one WebSocket to the daemon, speaking
 * `switchboard.v1.json` (see protocol/README.md).
 *
 * What it does for the page:
 * - greets with `hello` (token, tab id, private session, resume position, role);
 * - keeps the tab id and the last stream position in sessionStorage (a reload resumes), the
 *   private session in memory only (a duplicated tab cannot present it), and adopts the new
 *   tab id when the daemon says the presented one was live elsewhere (a duplicated tab);
 * - reconnects with capped exponential backoff and full jitter, obeying the close codes;
 * - keeps the agent's contacts and media state, tells whether this tab OWNS each contact;
 * - acts on each `pop`/`notify` once, even when it is replayed after a reconnect or reload;
 * - sends contact events, chat messages, media status and owner commands (with the epoch).
 *
 * Events (`client.on(name, fn)`):
 * - `status`   {state, attempt?, delayMs?, code?, reason?}  connection lifecycle
 * - `welcome`  the `welcome` message (after `tabId` / `session` are updated)
 * - `reassigned` {from, to}  the stored tab id was live elsewhere: this is a new tab
 * - `contact`  {contact, previous, owner, replayed, snapshot}  a contact view changed
 * - `removed`  {contactId, previous}  the daemon forgot a finished contact, or a snapshot
 *                                        no longer lists it
 * - `owner`    {contactId, owner, contact}  this tab gained (true) or lost (false) a contact
 * - `pop`      the `pop` message; only for the owner, at most once per stream position
 * - `notify`   the `notify` message; at most once per stream position
 * - `media`    the MediaView
 * - `snapshot` the `snapshot` message, after the view was replaced
 * - `error`    the daemon's `error` message ({code, message, ref, command?}) or a local one
 *              ({code, message, local: true})
 * @module switchboard
 */

import { Emitter } from './emitter.js';
import { backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
import { TabStore, defaultStorage, defaultStorageKey, isPosition } from './tab-store.js';

export { MemoryStorage } from './tab-store.js';
export { backoffDelay, backoffCeiling } from './backoff.js';

export const PROTOCOL_VERSION = 'switchboard.v1';
export const JSON_SUBPROTOCOL = 'switchboard.v1.json';
export const CLIENT_VERSION = 'switchboard-js/0.1.0';

/** Close codes the daemon uses (protocol/errors.py CloseCode). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  ABNORMAL: 1006, // set by the browser: no close frame (network, refused handshake)
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  TRY_AGAIN_LATER: 1013,
  UNAUTHORIZED: 4001,
  HELLO_TIMEOUT: 4002,
  FLOODING: 4008,
  SUPERSEDED: 4009,
});

/** Error codes of `error` messages (protocol/errors.py ErrorCode). */
export const ErrorCode = Object.freeze({
  BAD_FRAME: 'bad_frame',
  UNKNOWN_TYPE: 'unknown_type',
  INVALID_MESSAGE: 'invalid_message',
  HELLO_REQUIRED: 'hello_required',
  ALREADY_GREETED: 'already_greeted',
  RATE_LIMITED: 'rate_limited',
  AGENT_RATE_LIMITED: 'agent_rate_limited',
  UNAUTHORIZED: 'unauthorized',
  WRONG_ROLE: 'wrong_role',
  NOT_OWNER: 'not_owner',
  STALE_EPOCH: 'stale_epoch',
  UNKNOWN_CONTACT: 'unknown_contact',
  CONTACT_NOT_IN_CONNECT: 'contact_not_in_connect',
  CONTACT_NOT_YOURS: 'contact_not_yours',
  OUT_OF_ORDER: 'out_of_order',
  UNAVAILABLE: 'unavailable',
  INTERNAL: 'internal',
});

export const CONTACT_EVENTS = Object.freeze([
  'incoming', 'connecting', 'accepted', 'connected', 'missed', 'ended', 'acw', 'destroyed',
]);
export const COMMANDS = Object.freeze([
  'create_ticket', 'attach_to_current', 'pause_recording', 'resume_recording',
]);

const WS_OPEN = 1;
const MAX_OUTBOX = 500;
const MAX_PENDING_COMMANDS = 50;

/**
 * @typedef {import('./tab-store.js').Position} Position
 * @typedef {import('./tab-store.js').StorageLike} StorageLike
 *
 * @typedef {object} ContactView  the daemon's view of a contact (protocol ContactView)
 * @property {string} contact_id
 * @property {string} [initial_contact_id]
 * @property {'voice'|'chat'|'task'|'email'} type
 * @property {'inbound'|'outbound'} direction
 * @property {string} state  the furthest Streams event seen (incoming … destroyed)
 * @property {string} [customer_endpoint]
 * @property {string} [queue]
 * @property {string|null} [owner_tab]  the owning tab id (absent/null: nobody right now)
 * @property {number} epoch  ownership epoch: commands must carry it
 * @property {number} [grace_until]  set while the owner is disconnected (epoch seconds)
 * @property {'auto'|'agent'} [mode]
 * @property {number} [ticket_id]
 * @property {number} [user_id]
 * @property {boolean} [recording_paused]
 * @property {string[]} [warnings]
 *
 * @typedef {object} MediaView
 * @property {boolean} media_less
 * @property {boolean} present  a media CCP is connected
 * @property {boolean} ready  ... signed in, with microphone, audio not lost
 * @property {'warn'|'block'} gate
 * @property {string} [active_contact]
 *
 * @typedef {object} ClientOptions
 * @property {string} url  ws(s)://host:port/ws
 * @property {string} [token]  a JWT minted by the deployment
 * @property {() => (string|Promise<string>)} [tokenProvider]  called before every connection
 * @property {'embedded'|'media'} [role='embedded']
 * @property {boolean} [mediaLess]  sent in `hello` only when set: overrides the daemon's mode
 * @property {StorageLike} [storage]  defaults to sessionStorage
 * @property {string|number} [slot]  several simulated tabs sharing one storage: one slot each
 * @property {string} [storageKey]  key prefix (default `switchboard.<role>[.<slot>]`)
 * @property {any} [WebSocket]  the WebSocket constructor (default: the global one)
 * @property {() => number} [random]  for the jitter (default Math.random)
 * @property {(fn: Function, ms: number) => any} [setTimeout]
 * @property {(handle: any) => void} [clearTimeout]
 * @property {() => number} [now]  milliseconds (default Date.now)
 * @property {import('./backoff.js').BackoffOptions} [backoff]
 * @property {string} [clientVersion]
 * @property {boolean} [closeOnPageHide=true]  close cleanly on `pagehide` so the daemon
 *   sees a reload at once (browsers only)
 */

/** An error thrown synchronously by the client's methods, with a protocol-like `code`. */
export class SwitchboardError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.name = 'SwitchboardError';
    this.code = code;
  }
}

/**
 * The warning an embedded tab should show for a media state, or null when all is well.
 * @param {MediaView|null|undefined} media
 * @returns {string|null}
 */
export function mediaWarning(media) {
  if (!media || !media.media_less || media.ready) return null;
  const block = media.gate === 'block' ? ' You are set to not routable until it is ready.' : '';
  if (!media.present) {
    return `Media-less mode: the media CCP is not open, so calls have no audio. Open it now.${block}`;
  }
  return `Media-less mode: the media CCP is open but not ready (sign-in, microphone or audio).${block}`;
}

export class SwitchboardClient extends Emitter {
  /** @param {ClientOptions} options */
  constructor(options) {
    super();
    if (!options || !options.url) throw new TypeError('SwitchboardClient: url is required');
    if (!options.token && !options.tokenProvider) {
      throw new TypeError('SwitchboardClient: token or tokenProvider is required');
    }
    const g = /** @type {any} */ (globalThis);
    this.url = options.url;
    /** @type {'embedded'|'media'} */
    this.role = options.role || 'embedded';
    this.mediaLess = options.mediaLess;
    this.clientVersion = options.clientVersion || CLIENT_VERSION;
    this._hasProvider = typeof options.tokenProvider === 'function';
    this._tokenProvider = this._hasProvider ? options.tokenProvider : () => options.token;
    this._WebSocket = options.WebSocket || g.WebSocket;
    this._random = options.random || Math.random;
    this._setTimeout = options.setTimeout || ((fn, ms) => g.setTimeout(fn, ms));
    this._clearTimeout = options.clearTimeout || ((h) => g.clearTimeout(h));
    this._now = options.now || Date.now;
    this._backoff = { ...DEFAULT_BACKOFF, ...(options.backoff || {}) };
    this._store = new TabStore(
      options.storage || defaultStorage(),
      options.storageKey || defaultStorageKey(this.role, options.slot),
    );

    /** @type {string|null} this tab's id (from storage, then from `welcome`) */
    this.tabId = this._store.tabId;
    /** @type {string|null} private session: page memory only, never stored */
    this.session = null;
    /** @type {Position|null} the last stream position seen */
    this.position = this._store.position;
    /** @type {string|null} */
    this.agentId = null;
    const view = this.position ? this._store.view : null;
    /** @type {Map<string, ContactView>} the agent's contacts (restored after a reload) */
    this.contacts = new Map((view ? view.contacts : []).map((c) => [c.contact_id, c]));
    /** @type {MediaView|null} */
    this.media = view ? view.media : null;
    /** @type {string} idle|connecting|open|reconnecting|stopped|unauthorized|superseded */
    this.state = 'idle';
    /** @type {number} connections attempted since the last welcome */
    this.attempt = 0;

    /** @type {any} */
    this._ws = null;
    this._timer = null;
    this._stopped = true;
    this._welcomed = false;
    /** @type {object[]} contact events / chat messages waiting for a welcomed connection */
    this._outbox = [];
    /** @type {Map<string, object>} commands by ref, to explain a refusal */
    this._pending = new Map();
    /** @type {Set<string>} contacts this tab owned at the last check */
    this._owned = new Set();
    /** @type {object|null} the media CCP's latest status (role media), resent after welcome */
    this._mediaStatus = null;
    this._lastToken = null;
    this._refusedToken = null;
    this._refSeq = 0;
    this._started = false;
    this._onPageHide = null;
    if (options.closeOnPageHide !== false && typeof g.addEventListener === 'function') {
      this._onPageHide = () => {
        if (this._ws) this._ws.close(CloseCode.NORMAL, 'page hidden');
      };
      g.addEventListener('pagehide', this._onPageHide);
    }
  }

  // -- lifecycle --------------------------------------------------------------------------

  /** Connect (and keep reconnecting until `stop()` or a final close code). */
  start() {
    if (!this._stopped) return this;
    this._stopped = false;
    if (!this._started) {
      this._started = true;
      // The view restored from storage, for the UI; ownership is only claimed after welcome.
      for (const contact of this.contacts.values()) {
        this.emit('contact', { contact, previous: null, owner: false, replayed: false, snapshot: false, restored: true });
      }
      if (this.media) this.emit('media', this.media);
    }
    this._connect();
    return this;
  }

  /** Close the connection and stop reconnecting. */
  stop() {
    this._stopped = true;
    this._cancelTimer();
    const ws = this._ws;
    this._ws = null;
    this._welcomed = false;
    if (ws) {
      try {
        ws.close(CloseCode.NORMAL, 'client stopped');
      } catch (_) {
        // already closing
      }
    }
    if (this._onPageHide && typeof globalThis.removeEventListener === 'function') {
      globalThis.removeEventListener('pagehide', this._onPageHide);
    }
    this._setState('stopped');
  }

  /** Reconnect now (e.g. when the browser comes back online) instead of waiting. */
  reconnectNow() {
    if (this._stopped || this._ws) return;
    this._cancelTimer();
    this._connect();
  }

  /** @returns {boolean} a welcomed connection is open */
  get connected() {
    return this._welcomed && !!this._ws && this._ws.readyState === WS_OPEN;
  }

  async _connect() {
    this._setState('connecting', { attempt: this.attempt });
    let token;
    try {
      token = await this._tokenProvider();
    } catch (err) {
      this.emit('error', { code: 'token_unavailable', message: String(err), local: true });
      this._scheduleReconnect(undefined, 'token provider failed');
      return;
    }
    if (this._stopped) return;
    if (!token || token === this._refusedToken) {
      this._final('unauthorized', CloseCode.UNAUTHORIZED, 'no usable token');
      return;
    }
    this._lastToken = token;
    let ws;
    try {
      ws = new this._WebSocket(this.url, [JSON_SUBPROTOCOL]);
    } catch (err) {
      this.emit('error', { code: 'connect_failed', message: String(err), local: true });
      this._scheduleReconnect(undefined, 'connect failed');
      return;
    }
    this._ws = ws;
    ws.onopen = () => {
      if (ws !== this._ws) return;
      if (ws.protocol && ws.protocol !== JSON_SUBPROTOCOL) {
        ws.close(CloseCode.PROTOCOL_ERROR, 'unexpected subprotocol');
        return;
      }
      this._sendNow(this._hello(token));
    };
    ws.onmessage = (/** @type {{data: any}} */ ev) => {
      if (ws === this._ws) this._receive(ev.data);
    };
    ws.onclose = (/** @type {{code: number, reason: string}} */ ev) => {
      if (ws === this._ws) this._closed(ev.code, ev.reason);
    };
    ws.onerror = () => {
      // a close event follows; nothing to do here
    };
  }

  /** @param {string} token */
  _hello(token) {
    /** @type {Record<string, any>} */
    const hello = { type: 'hello', token, role: this.role, client_version: this.clientVersion };
    if (this.tabId) hello.tab_id = this.tabId;
    if (this.session) hello.session = this.session;
    if (this.position) hello.resume = { epoch: this.position.epoch, seq: this.position.seq };
    if (typeof this.mediaLess === 'boolean') hello.media_less = this.mediaLess;
    return hello;
  }

  /** @param {number} code @param {string} reason */
  _closed(code, reason) {
    this._ws = null;
    this._welcomed = false;
    if (this._stopped) {
      this._setState('stopped', { code, reason });
      return;
    }
    if (code === CloseCode.SUPERSEDED) {
      this._final('superseded', code, reason);
    } else if (code === CloseCode.UNAUTHORIZED) {
      this._refusedToken = this._lastToken;
      if (this._hasProvider) this._scheduleReconnect(code, reason);
      else this._final('unauthorized', code, reason);
    } else {
      this._scheduleReconnect(code, reason);
    }
  }

  /** @param {string} state @param {number} code @param {string} reason */
  _final(state, code, reason) {
    this._stopped = true;
    this._cancelTimer();
    this._setState(state, { code, reason });
  }

  /** @param {number|undefined} code @param {string|undefined} reason */
  _scheduleReconnect(code, reason) {
    this._ws = null;
    if (this._stopped) return;
    const delayMs = backoffDelay(this.attempt, this._backoff, this._random);
    this.attempt += 1;
    this._setState('reconnecting', { attempt: this.attempt, delayMs, code, reason });
    this._cancelTimer();
    this._timer = this._setTimeout(() => {
      this._timer = null;
      if (!this._stopped) this._connect();
    }, delayMs);
  }

  _cancelTimer() {
    if (this._timer !== null) {
      this._clearTimeout(this._timer);
      this._timer = null;
    }
  }

  /** @param {string} state @param {object} [detail] */
  _setState(state, detail = {}) {
    this.state = state;
    this.emit('status', { state, ...detail });
  }

  // -- receiving --------------------------------------------------------------------------

  /** @param {any} data */
  _receive(data) {
    let msg;
    try {
      msg = typeof data === 'string' ? JSON.parse(data) : null;
    } catch (_) {
      msg = null;
    }
    if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') {
      this.emit('error', { code: ErrorCode.BAD_FRAME, message: 'unreadable frame from daemon', local: true });
      return;
    }
    switch (msg.type) {
      case 'welcome':
        this._welcome(msg);
        break;
      case 'error':
        this._error(msg);
        break;
      case 'contact':
      case 'pop':
      case 'notify':
      case 'media':
      case 'forget':
      case 'snapshot':
        this._streamed(msg);
        break;
      default:
        // a newer daemon's message: ignore it, as the protocol allows
        break;
    }
  }

  /** @param {any} msg */
  _welcome(msg) {
    this.agentId = msg.agent_id;
    this.session = msg.session;
    const previous = this.tabId;
    if (msg.tab_id && msg.tab_id !== previous) {
      this.tabId = msg.tab_id;
      this._store.tabId = msg.tab_id;
      if (msg.tab_id_reassigned) this.emit('reassigned', { from: previous, to: msg.tab_id });
    }
    this._welcomed = true;
    this.attempt = 0;
    this._setState('open', { resumed: !!msg.resumed, reassigned: !!msg.tab_id_reassigned });
    this._syncOwnership();
    this.emit('welcome', msg);
    this._flush();
  }

  /** @param {any} msg */
  _error(msg) {
    const command = msg.ref ? this._pending.get(msg.ref) : undefined;
    if (command) this._pending.delete(msg.ref);
    this.emit('error', command ? { ...msg, command } : msg);
  }

  /**
   * A message of the agent's stream: advance the position, then apply it.
   * @param {any} msg
   */
  _streamed(msg) {
    const pos = isPosition(msg.pos) ? msg.pos : null;
    if (pos && msg.type !== 'snapshot' && this.position && pos.epoch === this.position.epoch &&
        pos.seq <= this.position.seq) {
      return; // already seen (the daemon does not resend, but a repeat must stay harmless)
    }
    if (pos) this._setPosition(pos);
    const replayed = !!msg.replayed;
    switch (msg.type) {
      case 'contact':
        this._contact(msg.contact, replayed);
        break;
      case 'pop':
      case 'notify':
        this._actOnce(msg, pos);
        break;
      case 'media':
        this._media(msg.media);
        break;
      case 'forget':
        this._forget(msg.contact_ids || []);
        break;
      case 'snapshot':
        this._snapshot(msg);
        break;
      default:
        break;
    }
  }

  /** @param {string[]} contactIds finished contacts the daemon no longer keeps */
  _forget(contactIds) {
    for (const id of contactIds) {
      const previous = this.contacts.get(id);
      if (!previous) continue;
      this.contacts.delete(id);
      this.emit('removed', { contactId: id, previous });
    }
    this._persistView();
    this._syncOwnership();
  }

  /** @param {Position} pos */
  _setPosition(pos) {
    this.position = { epoch: pos.epoch, seq: pos.seq };
    this._store.position = this.position;
  }

  /** @param {ContactView} view @param {boolean} replayed */
  _contact(view, replayed) {
    if (!view || !view.contact_id) return;
    const previous = this.contacts.get(view.contact_id) || null;
    this.contacts.set(view.contact_id, view);
    this._persistView();
    this.emit('contact', { contact: view, previous, owner: this.isOwner(view.contact_id), replayed, snapshot: false });
    this._syncOwnership();
  }

  /**
   * Pops and notifications are actions: do each at most once per stream position, even
   * when it comes again as a replay after a reconnect or a reload of this browser tab.
   * @param {any} msg @param {Position|null} pos
   */
  _actOnce(msg, pos) {
    if (pos) {
      if (this._store.hasActed(pos)) return;
      this._store.markActed(pos);
    }
    this.emit(msg.type, msg);
  }

  /** @param {MediaView} media */
  _media(media) {
    if (!media) return;
    this.media = media;
    this._persistView();
    this.emit('media', media);
  }

  /** @param {any} msg */
  _snapshot(msg) {
    const before = this.contacts;
    this.contacts = new Map();
    for (const view of msg.contacts || []) this.contacts.set(view.contact_id, view);
    this._persistView();
    for (const [id, previous] of before) {
      if (!this.contacts.has(id)) this.emit('removed', { contactId: id, previous });
    }
    for (const view of this.contacts.values()) {
      this.emit('contact', {
        contact: view,
        previous: before.get(view.contact_id) || null,
        owner: this.isOwner(view.contact_id),
        replayed: false,
        snapshot: true,
      });
    }
    this._syncOwnership();
    this._media(msg.media);
    this.emit('snapshot', msg);
  }

  _persistView() {
    this._store.view = { contacts: Array.from(this.contacts.values()), media: this.media };
  }

  /** Emit `owner` for every contact whose ownership by this tab changed. */
  _syncOwnership() {
    const now = new Set();
    for (const view of this.contacts.values()) {
      if (this.isOwner(view.contact_id)) now.add(view.contact_id);
    }
    for (const id of now) {
      if (!this._owned.has(id)) this.emit('owner', { contactId: id, owner: true, contact: this.contacts.get(id) });
    }
    for (const id of this._owned) {
      if (!now.has(id)) this.emit('owner', { contactId: id, owner: false, contact: this.contacts.get(id) || null });
    }
    this._owned = now;
  }

  // -- the view ---------------------------------------------------------------------------

  /** @param {string} contactId @returns {ContactView|undefined} */
  contact(contactId) {
    return this.contacts.get(contactId);
  }

  /**
   * Whether this tab owns the contact. Never true before this page's first `welcome`: a
   * duplicated tab starts with the original's id and must not believe it owns anything.
   * @param {string} contactId
   * @returns {boolean}
   */
  isOwner(contactId) {
    const view = this.contacts.get(contactId);
    return !!view && !!this.session && !!this.tabId && view.owner_tab === this.tabId;
  }

  /**
   * @param {string} contactId
   * @returns {'owner'|'observer'|null} null: the contact is unknown
   */
  roleFor(contactId) {
    if (!this.contacts.has(contactId)) return null;
    return this.isOwner(contactId) ? 'owner' : 'observer';
  }

  /** @returns {ContactView[]} the contacts this tab owns */
  owned() {
    return Array.from(this.contacts.values()).filter((c) => this.isOwner(c.contact_id));
  }

  // -- sending ----------------------------------------------------------------------------

  /**
   * Report a Streams contact event. Every tab reports every event; the daemon deduplicates.
   * Queued while disconnected and sent after the next `welcome`.
   * @param {string} event incoming|connecting|accepted|connected|missed|ended|acw|destroyed
   * @param {object} contact a ContactSnapshot (contact_id required)
   * @param {{ref?: string}} [extra]
   */
  sendContactEvent(event, contact, extra = {}) {
    if (!CONTACT_EVENTS.includes(event)) throw new SwitchboardError(ErrorCode.INVALID_MESSAGE, `unknown contact event: ${event}`);
    if (!contact || !contact.contact_id) throw new SwitchboardError(ErrorCode.INVALID_MESSAGE, 'contact.contact_id is required');
    /** @type {Record<string, any>} */
    const message = { type: 'contact_event', event, contact };
    if (extra.ref) message.ref = extra.ref;
    this._queue(message);
  }

  /**
   * Report one chat line; `message_id` must be stable (the same line from several tabs).
   * @param {{contact_id: string, message_id: string, participant: string, text: string,
   *   name?: string, sent_at?: number, ref?: string}} message
   */
  sendChatMessage(message) {
    if (!message || !message.contact_id || !message.message_id) {
      throw new SwitchboardError(ErrorCode.INVALID_MESSAGE, 'contact_id and message_id are required');
    }
    this._queue({ type: 'chat_message', ...message });
  }

  /**
   * The media CCP's readiness (role `media` only). The latest status is resent after every
   * welcome, so the daemon always has it.
   * @param {{microphone: boolean, signed_in: boolean, in_call?: boolean, audio_lost?: boolean}} status
   */
  sendMediaStatus(status) {
    if (this.role !== 'media') throw new SwitchboardError(ErrorCode.WRONG_ROLE, 'media_status is for role media');
    this._mediaStatus = {
      type: 'media_status',
      microphone: !!status.microphone,
      signed_in: !!status.signed_in,
      in_call: !!status.in_call,
      audio_lost: !!status.audio_lost,
    };
    if (this.connected) this._sendNow(this._mediaStatus);
  }

  /**
   * An owner command on a contact, under the contact's current ownership epoch. Throws a
   * SwitchboardError (code unknown_contact, not_owner or not_connected) when it cannot be
   * sent; a refusal by the daemon arrives as an `error` event carrying this `ref` and the
   * command (`stale_epoch`: ownership moved meanwhile; look at the contact again).
   * @param {'create_ticket'|'attach_to_current'|'pause_recording'|'resume_recording'} name
   * @param {string} contactId
   * @param {{ticket_id?: number, user_id?: number, ref?: string}} [extra]
   * @returns {string} the command's ref
   */
  command(name, contactId, extra = {}) {
    if (!COMMANDS.includes(name)) throw new SwitchboardError(ErrorCode.INVALID_MESSAGE, `unknown command: ${name}`);
    const view = this.contacts.get(contactId);
    if (!view) throw new SwitchboardError(ErrorCode.UNKNOWN_CONTACT, `no contact ${contactId}`);
    if (!this.isOwner(contactId)) {
      throw new SwitchboardError(ErrorCode.NOT_OWNER, `tab ${view.owner_tab || '(none)'} owns ${contactId}`);
    }
    if (!this.connected) throw new SwitchboardError('not_connected', 'not connected: try again when connected');
    const ref = extra.ref || this._nextRef('cmd');
    /** @type {Record<string, any>} */
    const message = { type: 'command', name, contact_id: contactId, epoch: view.epoch, ref };
    if (extra.ticket_id !== undefined) message.ticket_id = extra.ticket_id;
    if (extra.user_id !== undefined) message.user_id = extra.user_id;
    this._pending.set(ref, message);
    while (this._pending.size > MAX_PENDING_COMMANDS) {
      this._pending.delete(this._pending.keys().next().value);
    }
    this._sendNow(message);
    return ref;
  }

  /** @param {string} prefix */
  _nextRef(prefix) {
    this._refSeq += 1;
    const rand = Math.floor(this._random() * 0xffffff).toString(16);
    return `${prefix}-${this._refSeq}-${rand}`;
  }

  /** @param {object} message */
  _queue(message) {
    if (this.connected) {
      this._sendNow(message);
      return;
    }
    this._outbox.push(message);
    if (this._outbox.length > MAX_OUTBOX) this._outbox.shift();
  }

  _flush() {
    if (this.role === 'media' && this._mediaStatus) this._sendNow(this._mediaStatus);
    const queued = this._outbox;
    this._outbox = [];
    for (let i = 0; i < queued.length; i += 1) {
      if (!this._sendNow(queued[i])) {
        this._outbox = queued.slice(i).concat(this._outbox); // the socket went: keep the rest
        break;
      }
    }
  }

  /** @param {object} message */
  _sendNow(message) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WS_OPEN) return false;
    ws.send(JSON.stringify(message));
    return true;
  }
}
