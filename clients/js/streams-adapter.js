/**
 * Amazon Connect Streams → Switchboard.
 *
 * `StreamsAdapter` subscribes to every contact the embedded CCP sees (`connect.contact(cb)`)
 * and reports each Streams event (onIncoming … onDestroy) as a `contact_event`, with a
 * ContactSnapshot built from the contact's getters; chat lines are reported as
 * `chat_message`. Every tab reports everything: the daemon deduplicates.
 *
 * What the real library does, and the adapter relies on (amazon-connect-streams 2.x, driven
 * in tests/browser/test_streams_*.py):
 * - contact types are voice, queue_callback, chat, task and email: each is reported as it is;
 * - `connect.contact(cb)` announces contacts that appear after the subscription only: the
 *   adapter also tracks the agent snapshot's contacts (`agent.getContacts()`), so a CCP that
 *   starts while a contact is in progress reports it;
 * - a removed contact is handed over as a `ContactSnapshot` whose `isInbound()` throws: the
 *   direction is the one of the contact's first snapshot, never re-derived;
 * - ACW fires before ENDED: the adapter reports `ended` first (once) so the daemon always sees
 *   ended → acw → destroyed; a task can be `paused` (still the agent's contact).
 *
 * `MediaGate` applies the daemon's media-less gate to the agent: with gate `block` and the
 * media CCP not ready it sets the agent to a not-routable state, and puts back the routable
 * state it replaced once the media CCP is ready. During a contact Streams queues the state
 * (`enqueueNextState`): `getState()` is unchanged and `getNextState()` holds it; the gate
 * treats a queued state as set, and withdraws its own queued state when the media CCP is ready
 * before the contact ends.
 *
 * Both take the `connect` global or any object of the same shape (`contact(cb)`, `agent(cb)`),
 * e.g. `fake-connect.js`.
 * @module streams-adapter
 */

/** Streams subscription method → protocol event name. */
export const STREAMS_EVENTS = Object.freeze([
  ['onIncoming', 'incoming'],
  ['onConnecting', 'connecting'],
  ['onAccepted', 'accepted'],
  ['onConnected', 'connected'],
  ['onMissed', 'missed'],
  ['onEnded', 'ended'],
  ['onACW', 'acw'],
  ['onDestroy', 'destroyed'],
]);

/** Streams contact status type (`contact.getStatus().type`) → the event that state implies. */
const STATUS_EVENT = Object.freeze({
  init: 'incoming',
  incoming: 'incoming',
  pending: 'connecting',
  connecting: 'connecting',
  connected: 'connected',
  missed: 'missed',
  rejected: 'missed',
  ended: 'ended',
  error: 'ended',
  paused: 'connected',
});

/** Streams contact types, reported as they are (anything else is a voice contact). */
const CONTACT_TYPES = new Set(['voice', 'queue_callback', 'chat', 'task', 'email']);

const MAX_ATTRIBUTES = 200;
const MAX_VALUE = 4096;
const MAX_TEXT = 1024;

/**
 * Call a Streams getter; Streams throws once a contact is gone from the agent snapshot.
 * @template T
 * @param {() => T} fn
 * @param {T} [fallback]
 * @returns {T|undefined}
 */
function tryGet(fn, fallback) {
  try {
    const value = fn();
    return value === undefined || value === null ? fallback : value;
  } catch (_) {
    return fallback;
  }
}

/** @param {any} s @param {number} max */
function clip(s, max) {
  const text = String(s);
  return text.length > max ? text.slice(0, max) : text;
}

/**
 * A protocol id (`[A-Za-z0-9_.:-]{1,128}`) from anything.
 * @param {any} raw
 * @returns {string|undefined}
 */
export function toId(raw) {
  if (raw === undefined || raw === null || raw === '') return undefined;
  const id = String(raw).replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 128);
  return id || undefined;
}

/**
 * Flatten Streams attributes `{name: {name, value}}` to `{name: value}` (strings, bounded).
 * @param {Record<string, any>|undefined} attributes
 * @returns {Record<string, string>}
 */
export function flattenAttributes(attributes) {
  /** @type {Record<string, string>} */
  const out = {};
  if (!attributes || typeof attributes !== 'object') return out;
  let n = 0;
  for (const key of Object.keys(attributes)) {
    if (n >= MAX_ATTRIBUTES) break;
    const entry = attributes[key];
    const value = entry && typeof entry === 'object' && 'value' in entry ? entry.value : entry;
    if (value === undefined || value === null) continue;
    const name = entry && typeof entry === 'object' && typeof entry.name === 'string' ? entry.name : key;
    out[clip(name, MAX_TEXT)] = clip(value, MAX_VALUE);
    n += 1;
  }
  return out;
}

/**
 * The customer's number: `sip:+15550100@host` and `tel:` forms reduced to the number.
 * @param {any} raw
 * @returns {string|undefined}
 */
export function normalizeEndpoint(raw) {
  if (!raw) return undefined;
  let s = String(raw).trim();
  s = s.replace(/^(sip|tel):/i, '');
  const at = s.indexOf('@');
  if (at > 0) s = s.slice(0, at);
  return s ? clip(s, 256) : undefined;
}

/**
 * The customer's connection of a contact: the first non-agent connection, else the initial one.
 * @param {any} contact
 */
function customerConnection(contact) {
  const connections = tryGet(() => contact.getConnections(), []) || [];
  const found = connections.find((c) => {
    const type = tryGet(() => c.getType());
    return type === 'inbound' || type === 'outbound';
  });
  return found || tryGet(() => contact.getActiveInitialConnection()) || tryGet(() => contact.getInitialConnection());
}

/**
 * Whether the agent is monitoring (silent monitor or barge) rather than handling the contact.
 * @param {any} contact
 * @returns {boolean}
 */
function isMonitoring(contact) {
  const agentConn = tryGet(() => contact.getAgentConnection());
  if (agentConn) {
    if (tryGet(() => agentConn.isSilentMonitor(), false) || tryGet(() => agentConn.isBarge(), false)) return true;
    const status = tryGet(() => agentConn.getMonitorStatus());
    if (typeof status === 'string' && status !== '' && status.toUpperCase() !== 'NONE') return true;
    if (tryGet(() => agentConn.getType()) === 'monitoring') return true;
  }
  return false;
}

/**
 * Build a protocol ContactSnapshot from a Streams contact.
 * @param {any} contact a Streams Contact (or the same shape)
 * @param {{agent?: any, now?: () => number}} [context]
 * @returns {Record<string, any>|null} null if the contact has no id
 */
export function contactSnapshot(contact, context = {}) {
  const contactId = toId(tryGet(() => contact.getContactId()));
  if (!contactId) return null;
  const rawType = String(tryGet(() => contact.getType(), 'voice')).toLowerCase();
  const isCallback = rawType === 'queue_callback';
  const type = CONTACT_TYPES.has(rawType) ? rawType : 'voice';
  const inbound = tryGet(() => contact.isInbound(), true);
  const queue = tryGet(() => contact.getQueue());
  const customer = customerConnection(contact);
  const endpoint = customer ? tryGet(() => customer.getEndpoint()) : undefined;
  const agent = context.agent;
  const now = context.now || Date.now;
  /** @type {Record<string, any>} */
  const snap = {
    contact_id: contactId,
    type,
    direction: inbound === false ? 'outbound' : 'inbound',
    is_callback: isCallback,
    monitoring: isMonitoring(contact),
    attributes: flattenAttributes(tryGet(() => contact.getAttributes(), {})),
    softphone: tryGet(() => contact.isSoftphoneCall(), true) !== false,
    occurred_at: now() / 1000,
  };
  const initial = toId(tryGet(() => contact.getInitialContactId()));
  if (initial) snap.initial_contact_id = initial;
  if (queue && queue.name) snap.queue = clip(queue.name, MAX_TEXT);
  const number = normalizeEndpoint(endpoint && endpoint.phoneNumber);
  if (number) snap.customer_endpoint = number;
  const agentName = agent ? tryGet(() => agent.getName()) : undefined;
  if (agentName) snap.agent_name = clip(agentName, MAX_TEXT);
  const profile = agent ? tryGet(() => agent.getRoutingProfile()) : undefined;
  if (profile && profile.name) snap.routing_profile = clip(profile.name, MAX_TEXT);
  return snap;
}

/**
 * A Streams chat transcript item → protocol chat_message fields (without contact_id).
 * @param {any} item `{Id, Type, ContentType, Content, ParticipantRole, DisplayName, AbsoluteTime}`
 * @returns {Record<string, any>|null}
 */
export function chatLine(item) {
  if (!item) return null;
  const messageId = toId(item.Id || item.id);
  if (!messageId) return null;
  const role = String(item.ParticipantRole || '').toUpperCase();
  const name = item.DisplayName ? clip(item.DisplayName, MAX_TEXT) : undefined;
  let participant = 'system';
  if (role === 'CUSTOMER') participant = 'customer';
  else if (role === 'AGENT') participant = 'agent';
  else if (/bot|lex/i.test(name || '')) participant = 'bot';
  let text = item.Content;
  if (item.Type === 'EVENT' || !text) {
    const what = String(item.ContentType || '').split('.').pop() || 'event';
    const verb = { joined: 'joined the chat', left: 'left the chat', ended: 'ended the chat' }[what] || what;
    text = `${name || participant} ${verb}`;
  }
  const sentAt = item.AbsoluteTime ? Date.parse(item.AbsoluteTime) / 1000 : undefined;
  /** @type {Record<string, any>} */
  const line = { message_id: messageId, participant, text: clip(text, 16384) };
  if (name) line.name = name;
  if (sentAt !== undefined && !Number.isNaN(sentAt)) line.sent_at = sentAt;
  return line;
}

/**
 * @typedef {object} AdapterOptions
 * @property {any} connect the Streams `connect` global or the same shape
 * @property {{sendContactEvent: Function, sendChatMessage: Function}} client a SwitchboardClient
 * @property {() => number} [now] milliseconds (default Date.now)
 * @property {boolean} [chat=true] report chat transcripts
 * @property {(snapshot: Record<string, any>, contact: any, event: string) => void} [enrich]
 *   add fields (e.g. `analysis` on `ended`) before a snapshot is sent
 */

export class StreamsAdapter {
  /** @param {AdapterOptions} options */
  constructor(options) {
    this.connect = options.connect;
    this.client = options.client;
    this.now = options.now || Date.now;
    this.chat = options.chat !== false;
    this.enrich = options.enrich;
    /** @type {any} the Streams agent, once known */
    this.agent = null;
    /** @type {Map<string, Record<string, any>>} last good snapshot per contact (Streams
     *  getters throw once a contact is destroyed, so `destroyed` reuses it) */
    this._last = new Map();
    /** @type {Set<string>} contacts already subscribed (Streams hands out a new object per
     *  event, so they are told apart by id) */
    this._subscribed = new Set();
    /** @type {Set<string>} contacts whose `ended` was reported */
    this._ended = new Set();
    /** @type {Set<string>} chat contacts whose transcript is followed */
    this._chats = new Set();
    /** @type {{kind: 'user'|'ticket', id: number}|null} */
    this._clickToDial = null;
  }

  start() {
    this.connect.contact((/** @type {any} */ contact) => this.track(contact));
    if (typeof this.connect.agent === 'function') {
      this.connect.agent((/** @type {any} */ agent) => {
        this.agent = agent;
        // contacts that were there before this adapter started (a late or reloaded CCP)
        for (const contact of tryGet(() => agent.getContacts(), []) || []) this.track(contact);
      });
    }
    return this;
  }

  /**
   * The next outbound contact was started from a Zendesk user or ticket (click to dial); null:
   * it was not (a dial from nowhere in particular, or one Connect refused).
   * @param {{kind: 'user'|'ticket', id: number}|null} target
   */
  expectOutbound(target) {
    this._clickToDial = target;
  }

  /**
   * Subscribe to one contact's events and report the state it is already in (a reloaded
   * CCP is handed the existing contacts; the daemon ignores what it already knows).
   * @param {any} contact
   */
  track(contact) {
    const id = contact ? toId(tryGet(() => contact.getContactId())) : undefined;
    if (!id || this._subscribed.has(id)) return;
    this._subscribed.add(id);
    for (const [method, event] of STREAMS_EVENTS) {
      if (typeof contact[method] === 'function') {
        contact[method]((c) => this.report(event, c && typeof c.getContactId === 'function' ? c : contact));
      }
    }
    const status = tryGet(() => contact.getStatus());
    const current = status && STATUS_EVENT[String(status.type).toLowerCase()];
    if (current) this.report(current, contact);
  }

  /**
   * Report one event of one contact.
   * @param {string} event
   * @param {any} contact
   */
  report(event, contact) {
    const id = toId(tryGet(() => contact.getContactId()));
    const previous = id ? this._last.get(id) : undefined;
    const alive = tryGet(() => contact.getType()) !== undefined;
    /** @type {Record<string, any>|null} */
    let snap;
    if (alive) {
      snap = contactSnapshot(contact, { agent: this.agent, now: this.now });
      if (snap && previous) {
        // keep what Streams stops telling as the contact winds down
        for (const key of ['queue', 'customer_endpoint', 'initial_contact_id', 'agent_name', 'routing_profile', 'click_to_dial']) {
          if (snap[key] === undefined && previous[key] !== undefined) snap[key] = previous[key];
        }
        snap.attributes = { ...previous.attributes, ...snap.attributes };
      }
    } else {
      // Streams' getters throw once the contact left the agent snapshot (onDestroy)
      snap = previous ? { ...previous, occurred_at: this.now() / 1000 } : null;
    }
    if (!snap) return;
    // Streams throws from a removed contact's isInbound(): the first snapshot's direction holds
    if (previous) snap.direction = previous.direction;
    if (event === 'acw' && !this._ended.has(snap.contact_id)) this.report('ended', contact);
    if (event === 'ended') {
      if (this._ended.has(snap.contact_id)) return;
      this._ended.add(snap.contact_id);
    }
    if (!previous && snap.direction === 'outbound' && this._clickToDial) {
      snap.click_to_dial = this._clickToDial;
      this._clickToDial = null;
    }
    this._last.set(snap.contact_id, snap);
    if (this.enrich) this.enrich(snap, contact, event);
    this.client.sendContactEvent(event, snap);
    if (event === 'connected' && snap.type === 'chat' && this.chat) this._followChat(contact, snap.contact_id);
    if (event === 'destroyed') {
      this._last.delete(snap.contact_id);
      this._chats.delete(snap.contact_id);
      this._ended.delete(snap.contact_id);
      this._subscribed.delete(snap.contact_id);
    }
  }

  /**
   * Report a chat's transcript so far and each new line.
   * @param {any} contact
   * @param {string} contactId
   */
  _followChat(contact, contactId) {
    if (this._chats.has(contactId)) return;
    const connection = tryGet(() => contact.getAgentConnection());
    if (!connection || typeof connection.getMediaController !== 'function') return;
    this._chats.add(contactId);
    const send = (/** @type {any} */ item) => {
      const line = chatLine(item);
      if (line) this.client.sendChatMessage({ contact_id: contactId, ...line });
    };
    Promise.resolve(tryGet(() => connection.getMediaController()))
      .then((session) => {
        if (!session) return undefined;
        if (typeof session.onMessage === 'function') session.onMessage((/** @type {any} */ e) => send(e && e.data ? e.data : e));
        if (typeof session.getTranscript !== 'function') return undefined;
        return Promise.resolve(session.getTranscript({ maxResults: 100, sortOrder: 'ASCENDING' })).then((r) => {
          const items = (r && r.data && r.data.Transcript) || [];
          items.forEach(send);
        });
      })
      .catch(() => {
        this._chats.delete(contactId);
      });
  }
}

/**
 * Puts the agent in a not-routable state while media-less mode has no ready media CCP and the
 * gate is `block`, and back into the routable state it replaced once the media CCP is ready.
 * It restores only a state it set itself, and only if the agent is still in it (an agent who
 * chose another state meanwhile keeps it).
 */
export class MediaGate {
  /**
   * @param {{connect: any, stateName?: string, onChange?: (blocked: boolean, state: any) => void}} options
   *   stateName: the not-routable state to use (default: the first of type not_routable)
   */
  constructor(options) {
    this.connect = options.connect;
    this.stateName = options.stateName;
    this.onChange = options.onChange;
    /** @type {any} */
    this.agent = null;
    /** @type {any} the last media view */
    this.media = null;
    /** @type {{from: any, to: any}|null} the switch this gate made */
    this.forced = null;
  }

  start() {
    this.connect.agent((agent) => {
      this.agent = agent;
      if (typeof agent.onRoutable === 'function') agent.onRoutable(() => this.apply(this.media));
      this.apply(this.media);
    });
    return this;
  }

  /** @param {{on: Function}} client subscribe to the client's `media` events */
  attach(client) {
    client.on('media', (/** @type {any} */ media) => this.apply(media));
    return this;
  }

  /**
   * @param {any} media a MediaView
   * @returns {boolean} the gate should block now
   */
  static blocks(media) {
    return !!media && !!media.media_less && !media.ready && media.gate === 'block';
  }

  /** @param {any} media */
  apply(media) {
    this.media = media;
    const agent = this.agent;
    if (!agent) return;
    const current = tryGet(() => agent.getState());
    // a queued state (Streams' enqueueNextState during a contact) is the state to come
    const next = tryGet(() => agent.getNextState(), null);
    if (MediaGate.blocks(media)) {
      if (!current || current.type !== 'routable') return;
      if (next && next.type !== 'routable') return; // already on its way out of routing
      const target = this._notRoutable(agent);
      if (!target) return;
      this.forced = { from: current, to: target };
      this._set(agent, target);
      if (this.onChange) this.onChange(true, target);
    } else if (this.forced) {
      const { from, to } = this.forced;
      this.forced = null;
      // in the gate's state, or still queued for it: put back (setting the current routable
      // state also withdraws the queued one); another state chosen meanwhile is left alone
      const mine = (current && current.name === to.name) || (next && next.name === to.name);
      if (mine) {
        this._set(agent, from);
        if (this.onChange) this.onChange(false, from);
      }
    }
  }

  /** @param {any} agent */
  _notRoutable(agent) {
    const states = tryGet(() => agent.getAgentStates(), []) || [];
    const named = this.stateName ? states.find((s) => s.name === this.stateName) : undefined;
    return named || states.find((s) => s.type === 'not_routable');
  }

  /** @param {any} agent @param {any} state */
  _set(agent, state) {
    try {
      agent.setState(state, { success: () => {}, failure: () => {} }, { enqueueNextState: true });
    } catch (_) {
      // Streams refuses while the agent is mid-contact without enqueueing: next media change retries
    }
  }
}
