/**
 * A simulated Amazon Connect Streams `connect` object, for tests and the demo page.
 *
 * `createFakeConnect()` returns `{connect, driver}`: `connect` has the shape the adapters use
 * (`connect.contact(cb)`, `connect.agent(cb)`, contacts with getters and on* subscriptions, an
 * agent with states), and `driver` plays Amazon Connect: it adds contacts and fires their
 * events. Like real Streams, getters of a destroyed contact throw.
 * @module fake-connect
 */

/** Protocol event name → Streams subscription method. */
const METHOD = Object.freeze({
  incoming: 'onIncoming',
  connecting: 'onConnecting',
  accepted: 'onAccepted',
  connected: 'onConnected',
  missed: 'onMissed',
  ended: 'onEnded',
  acw: 'onACW',
  destroyed: 'onDestroy',
});

/** Protocol event → Streams status type after it. */
const STATUS_AFTER = Object.freeze({
  incoming: 'incoming',
  connecting: 'connecting',
  accepted: 'connecting',
  connected: 'connected',
  missed: 'missed',
  ended: 'ended',
  acw: 'ended',
  destroyed: 'ended',
});

export const DEFAULT_AGENT_STATES = Object.freeze([
  { name: 'Available', type: 'routable', agentStateARN: 'arn:state/available' },
  { name: 'Media CCP missing', type: 'not_routable', agentStateARN: 'arn:state/media-missing' },
  { name: 'Break', type: 'not_routable', agentStateARN: 'arn:state/break' },
  { name: 'Offline', type: 'offline', agentStateARN: 'arn:state/offline' },
]);

/**
 * @typedef {object} FakeContactData
 * @property {string} contactId
 * @property {string} [initialContactId]
 * @property {'voice'|'chat'|'task'|'email'|'queue_callback'} [type='voice']
 * @property {boolean} [inbound=true]
 * @property {string} [queue]
 * @property {string} [phoneNumber] the customer's number
 * @property {Record<string, string>} [attributes]
 * @property {string} [status] Streams status type (incoming, connecting, connected, ended…)
 * @property {boolean} [monitoring]
 */

function gone() {
  throw new Error('Contact not found in the agent snapshot (destroyed)');
}

class FakeConnection {
  /** @param {FakeContact} contact @param {string} type @param {string} [phoneNumber] */
  constructor(contact, type, phoneNumber) {
    this.contact = contact;
    this.type = type;
    this.phoneNumber = phoneNumber;
  }
  getType() {
    if (this.contact.destroyed) gone();
    return this.type;
  }
  getEndpoint() {
    if (this.contact.destroyed) gone();
    return { phoneNumber: this.phoneNumber || '', type: 'telephone_number' };
  }
  isSilentMonitor() {
    return this.type === 'agent' && !!this.contact.data.monitoring;
  }
  getMediaController() {
    return Promise.resolve(this.contact.chatSession);
  }
}

class FakeChatSession {
  constructor() {
    /** @type {any[]} */
    this.transcript = [];
    /** @type {Function[]} */
    this.listeners = [];
  }
  /** @param {Function} cb */
  onMessage(cb) {
    this.listeners.push(cb);
  }
  getTranscript() {
    return Promise.resolve({ data: { Transcript: this.transcript.slice() } });
  }
  /** @param {any} item */
  push(item) {
    this.transcript.push(item);
    for (const cb of this.listeners) cb({ data: item });
  }
}

export class FakeContact {
  /** @param {FakeContactData} data */
  constructor(data) {
    this.data = { type: 'voice', inbound: true, attributes: {}, status: 'incoming', ...data };
    this.destroyed = false;
    /** @type {Map<string, Function[]>} */
    this.handlers = new Map();
    this.chatSession = new FakeChatSession();
  }
  _live() {
    if (this.destroyed) gone();
    return this.data;
  }
  getContactId() {
    return this.data.contactId;
  }
  getInitialContactId() {
    return this._live().initialContactId || this.data.contactId;
  }
  getType() {
    return this._live().type;
  }
  isInbound() {
    return this._live().inbound !== false;
  }
  getQueue() {
    const q = this._live().queue;
    return q ? { name: q, queueARN: `arn:queue/${q}` } : null;
  }
  getStatus() {
    return { type: this._live().status };
  }
  getAttributes() {
    /** @type {Record<string, {name: string, value: string}>} */
    const out = {};
    for (const [name, value] of Object.entries(this._live().attributes || {})) out[name] = { name, value };
    return out;
  }
  getConnections() {
    const d = this._live();
    return [new FakeConnection(this, 'agent'), new FakeConnection(this, d.inbound === false ? 'outbound' : 'inbound', d.phoneNumber)];
  }
  getInitialConnection() {
    return this.getConnections()[1];
  }
  getActiveInitialConnection() {
    return this.getConnections()[1];
  }
  getAgentConnection() {
    return this.getConnections()[0];
  }
  isSoftphoneCall() {
    return this._live().type !== 'chat';
  }
  /** @param {string} method @param {Function} cb */
  _on(method, cb) {
    const list = this.handlers.get(method) || [];
    list.push(cb);
    this.handlers.set(method, list);
  }
  /** @param {Function} cb */ onIncoming(cb) { this._on('onIncoming', cb); }
  /** @param {Function} cb */ onConnecting(cb) { this._on('onConnecting', cb); }
  /** @param {Function} cb */ onAccepted(cb) { this._on('onAccepted', cb); }
  /** @param {Function} cb */ onConnected(cb) { this._on('onConnected', cb); }
  /** @param {Function} cb */ onMissed(cb) { this._on('onMissed', cb); }
  /** @param {Function} cb */ onEnded(cb) { this._on('onEnded', cb); }
  /** @param {Function} cb */ onACW(cb) { this._on('onACW', cb); }
  /** @param {Function} cb */ onDestroy(cb) { this._on('onDestroy', cb); }
}

export class FakeAgent {
  /** @param {{name?: string, routingProfile?: string, states?: any[], state?: string}} [options] */
  constructor(options = {}) {
    this.name = options.name || 'Demo Agent';
    this.routingProfile = options.routingProfile || 'Basic Routing Profile';
    this.states = (options.states || DEFAULT_AGENT_STATES).map((s) => ({ ...s }));
    this.state = this.states.find((s) => s.name === (options.state || 'Available')) || this.states[0];
    /** @type {any[]} every setState call, for tests */
    this.setStateCalls = [];
    /** @type {Map<string, Function[]>} */
    this.handlers = new Map();
  }
  getName() {
    return this.name;
  }
  getRoutingProfile() {
    return { name: this.routingProfile };
  }
  getAgentStates() {
    return this.states.slice();
  }
  getState() {
    return { ...this.state };
  }
  /**
   * @param {any} state
   * @param {{success?: Function, failure?: Function}} [callbacks]
   * @param {any} [options]
   */
  setState(state, callbacks = {}, options = {}) {
    this.setStateCalls.push({ state, options });
    const found = this.states.find((s) => s.name === state.name);
    if (!found) {
      if (callbacks.failure) callbacks.failure(new Error(`no state ${state.name}`));
      return;
    }
    this.applyState(found);
    if (callbacks.success) callbacks.success();
  }
  /**
   * Change the state as if it changed elsewhere (another CCP): listeners fire, no call recorded.
   * @param {any} state
   */
  applyState(state) {
    const found = this.states.find((s) => s.name === state.name) || state;
    if (found.name === this.state.name) return;
    this.state = found;
    this._fire('onStateChange', { newState: found.name });
    this._fire(found.type === 'routable' ? 'onRoutable' : 'onNotRoutable', this);
  }
  /** @param {string} method @param {any} arg */
  _fire(method, arg) {
    for (const cb of this.handlers.get(method) || []) cb(arg);
  }
  /** @param {string} method @param {Function} cb */
  _on(method, cb) {
    const list = this.handlers.get(method) || [];
    list.push(cb);
    this.handlers.set(method, list);
  }
  /** @param {Function} cb */ onRoutable(cb) { this._on('onRoutable', cb); }
  /** @param {Function} cb */ onNotRoutable(cb) { this._on('onNotRoutable', cb); }
  /** @param {Function} cb */ onStateChange(cb) { this._on('onStateChange', cb); }
  /** @param {Function} cb */ onSoftphoneError(cb) { this._on('onSoftphoneError', cb); }
}

/**
 * @param {{agent?: ConstructorParameters<typeof FakeAgent>[0], signedIn?: boolean}} [options]
 */
export function createFakeConnect(options = {}) {
  /** @type {Function[]} */
  const contactCallbacks = [];
  /** @type {Function[]} */
  const agentCallbacks = [];
  /** @type {Map<string, FakeContact>} */
  const contacts = new Map();
  const agent = new FakeAgent(options.agent);
  let signedIn = options.signedIn !== false;

  const connect = {
    /** @param {Function} cb */
    contact(cb) {
      contactCallbacks.push(cb);
      for (const c of contacts.values()) if (!c.destroyed) cb(c);
    },
    /** @param {Function} cb */
    agent(cb) {
      agentCallbacks.push(cb);
      if (signedIn) cb(agent);
    },
    ContactType: { VOICE: 'voice', CHAT: 'chat', TASK: 'task', QUEUE_CALLBACK: 'queue_callback' },
  };

  const driver = {
    agent,
    contacts,
    /** @param {string} id */
    contact(id) {
      return contacts.get(id);
    },
    /**
     * Add a contact (the `contact(cb)` subscribers see it) or update its data.
     * @param {FakeContactData} data
     * @returns {FakeContact}
     */
    upsert(data) {
      const existing = contacts.get(data.contactId);
      if (existing) {
        Object.assign(existing.data, data);
        return existing;
      }
      const contact = new FakeContact(data);
      contacts.set(data.contactId, contact);
      for (const cb of contactCallbacks) cb(contact);
      return contact;
    },
    /**
     * Fire one event of a contact, as Streams does in every CCP of the agent.
     * @param {string} contactId
     * @param {string} event incoming … destroyed
     */
    fire(contactId, event) {
      const contact = contacts.get(contactId);
      const method = /** @type {Record<string, string>} */ (METHOD)[event];
      if (!contact || !method || contact.destroyed) return;
      contact.data.status = /** @type {Record<string, string>} */ (STATUS_AFTER)[event];
      if (event === 'destroyed') {
        contact.destroyed = true;
        contacts.delete(contactId);
      }
      for (const cb of contact.handlers.get(method) || []) cb(contact);
    },
    /** @param {string} contactId @param {any} item a Streams chat transcript item */
    chat(contactId, item) {
      const contact = contacts.get(contactId);
      if (contact) contact.chatSession.push(item);
    },
    signIn() {
      if (signedIn) return;
      signedIn = true;
      for (const cb of agentCallbacks) cb(agent);
    },
  };
  return { connect, driver };
}
