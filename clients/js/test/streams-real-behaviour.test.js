// What the real amazon-connect-streams library does that the demo's fake-connect does not,
// reproduced with objects shaped as Streams 2.x hands them over (the browser tests in
// tests/browser/test_streams_app.py run the library itself):
// a new Contact object per event, ACW before ENDED, a removal ContactSnapshot whose isInbound()
// throws, contacts of the agent snapshot not replayed by connect.contact(), and states set
// with enqueueNextState queued in getNextState() while a contact is in progress.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { StreamsAdapter, MediaGate } from '../streams-adapter.js';
import { TokenKeeper } from '../zendesk-app.js';
import { FakeClock, flush } from '../test-support/fakes.js';

/** A Streams-like world: contacts by id; every handler receives a fresh object, as Streams does. */
function world() {
  /** @type {Map<string, any>} */
  const data = new Map();
  /** @type {Map<string, Map<string, Function[]>>} */
  const handlers = new Map();
  const removed = new Set();
  /** @type {Function[]} */
  const contactSubs = [];
  /** @type {Function[]} */
  const agentSubs = [];
  let agent = /** @type {any} */ (null);
  /** @param {string} id @param {boolean} [snapshot] a removal ContactSnapshot */
  function contact(id, snapshot = false) {
    const get = () => {
      if (removed.has(id) && !snapshot) throw new Error(`Contact ${id} no longer exists.`);
      return data.get(id);
    };
    /** @type {any} */
    const c = {
      getContactId: () => id,
      getType: () => get().type,
      getStatus: () => ({ type: get().state }),
      // a ContactSnapshot's connections are live lookups: they throw once it is removed
      isInbound: () => {
        if (removed.has(id)) throw new Error(`Contact ${id} no longer exists.`);
        return get().inbound;
      },
      getAttributes: () => ({}),
      getConnections: () => [],
    };
    for (const name of ['onIncoming', 'onConnecting', 'onAccepted', 'onConnected', 'onMissed', 'onEnded', 'onACW', 'onDestroy']) {
      c[name] = (/** @type {Function} */ fn) => {
        if (!handlers.has(id)) handlers.set(id, new Map());
        const byName = /** @type {Map<string, Function[]>} */ (handlers.get(id));
        byName.set(name, [...(byName.get(name) || []), fn]);
      };
    }
    return c;
  }
  /** @param {string} id @param {string} name @param {any} [arg] */
  const fire = (id, name, arg) => ((handlers.get(id) || new Map()).get(name) || []).forEach((fn) => fn(arg || contact(id)));
  const connect = {
    contact: (/** @type {Function} */ fn) => contactSubs.push(fn),
    agent: (/** @type {Function} */ fn) => {
      agentSubs.push(fn);
      if (agent) fn(agent);
    },
  };
  return {
    connect,
    /** @param {string} id @param {any} fields */
    add(id, fields) {
      data.set(id, { type: 'voice', inbound: true, state: 'incoming', ...fields });
      contactSubs.forEach((fn) => fn(contact(id)));
    },
    /** @param {string} id @param {string} state @param {string[]} events */
    move(id, state, events) {
      data.get(id).state = state;
      events.forEach((e) => fire(id, e));
    },
    /** @param {string} id */
    remove(id) {
      removed.add(id);
      fire(id, 'onDestroy', contact(id, true));
    },
    /** the agent snapshot arrives (with the contacts already in it) */
    signIn() {
      agent = { getContacts: () => [...data.keys()].filter((k) => !removed.has(k)).map((k) => contact(k)) };
      agentSubs.forEach((fn) => fn(agent));
    },
  };
}

function recorder() {
  return {
    events: /** @type {any[]} */ ([]),
    /** @param {string} event @param {any} contact */
    sendContactEvent(event, contact) {
      this.events.push({ event, id: contact.contact_id, type: contact.type, direction: contact.direction, is_callback: contact.is_callback });
    },
    sendChatMessage() {},
  };
}

test('ACW before ENDED is reported ended then acw, and the late ENDED is not repeated', () => {
  const w = world();
  const client = recorder();
  new StreamsAdapter({ connect: w.connect, client }).start();
  w.add('c-1', { state: 'connected' });
  w.move('c-1', 'ended', ['onACW', 'onEnded']); // Streams' event graph order
  w.remove('c-1');
  assert.deepEqual(client.events.map((e) => e.event), ['connected', 'ended', 'acw', 'destroyed']);
});

test('an outbound call removed from the snapshot is still outbound (isInbound throws by then)', () => {
  const w = world();
  const client = recorder();
  new StreamsAdapter({ connect: w.connect, client }).start();
  w.add('out-1', { inbound: false, state: 'connecting' });
  w.move('out-1', 'ended', ['onACW', 'onEnded']);
  w.remove('out-1');
  assert.deepEqual(new Set(client.events.map((e) => e.direction)), new Set(['outbound']));
  assert.equal(client.events.at(-1).event, 'destroyed');
});

test('email and queue callback contacts are typed as they are; a paused task is still connected', () => {
  const w = world();
  const client = recorder();
  new StreamsAdapter({ connect: w.connect, client }).start();
  w.add('mail', { type: 'email', state: 'connected' });
  w.add('cb', { type: 'queue_callback', inbound: false, state: 'connecting' });
  w.add('task', { type: 'task', state: 'paused' });
  const by = Object.fromEntries(client.events.map((e) => [e.id, e]));
  assert.equal(by.mail.type, 'email');
  assert.equal(by.cb.type, 'queue_callback');
  assert.equal(by.cb.is_callback, true);
  assert.equal(by.task.event, 'connected');
});

test('contacts already in the agent snapshot are reported by an adapter that starts late, once', () => {
  const w = world();
  w.add('early', { state: 'connected' }); // before anyone subscribed: connect.contact() will not replay it
  const client = recorder();
  new StreamsAdapter({ connect: w.connect, client }).start();
  assert.deepEqual(client.events, []);
  w.signIn();
  w.signIn(); // a second agent refresh hands over new objects for the same contact
  assert.deepEqual(client.events.map((e) => [e.event, e.id]), [['connected', 'early']]);
  w.move('early', 'ended', ['onACW']);
  assert.deepEqual(client.events.map((e) => e.event), ['connected', 'ended', 'acw'], 'subscribed once');
});

/** An agent as Streams has it: a state, a queued next state while a contact is in progress. */
function streamsAgent() {
  const states = [
    { name: 'Available', type: 'routable' },
    { name: 'Lunch', type: 'not_routable' },
    { name: 'Media CCP missing', type: 'not_routable' },
  ];
  /** @type {Function[]} */
  const routable = [];
  const agent = {
    state: states[0],
    next: /** @type {any} */ (null),
    busy: false,
    calls: /** @type {string[]} */ ([]),
    getState: () => agent.state,
    getNextState: () => agent.next,
    getAgentStates: () => states,
    onRoutable: (/** @type {Function} */ fn) => routable.push(fn),
    /** @param {any} state @param {any} _callbacks @param {any} options */
    setState(state, _callbacks, options) {
      agent.calls.push(state.name);
      if (agent.busy && options && options.enqueueNextState) {
        agent.next = state.name === agent.state.name ? null : state;
      } else {
        agent.state = state;
        agent.next = null;
      }
    },
    endContact() {
      agent.busy = false;
      if (agent.next) {
        agent.state = agent.next;
        agent.next = null;
      }
    },
    states,
  };
  return { agent, connect: { agent: (/** @type {Function} */ fn) => fn(agent) } };
}

const BLOCKED = { media_less: true, present: false, ready: false, gate: 'block' };
const READY = { media_less: true, present: true, ready: true, gate: 'block' };

test('the gate withdraws its queued state when the media CCP is ready before the call ends', () => {
  const { agent, connect } = streamsAgent();
  const gate = new MediaGate({ connect, stateName: 'Media CCP missing' }).start();
  agent.busy = true;
  gate.apply(BLOCKED);
  assert.equal(agent.state.name, 'Available');
  assert.equal(agent.next.name, 'Media CCP missing');
  gate.apply(BLOCKED); // already queued: nothing more
  assert.deepEqual(agent.calls, ['Media CCP missing']);
  gate.apply(READY);
  assert.equal(agent.next, null);
  agent.endContact();
  assert.equal(agent.state.name, 'Available', 'the agent is routable after the call');
});

test('the gate leaves alone a state the agent queued, before or after it blocked', () => {
  const { agent, connect } = streamsAgent();
  const gate = new MediaGate({ connect, stateName: 'Media CCP missing' }).start();
  agent.busy = true;
  agent.setState(agent.states[1], {}, { enqueueNextState: true }); // Lunch after this call
  gate.apply(BLOCKED);
  assert.equal(agent.next.name, 'Lunch');
  gate.apply(READY);
  assert.equal(agent.next.name, 'Lunch');

  const second = streamsAgent();
  const gate2 = new MediaGate({ connect: second.connect, stateName: 'Media CCP missing' }).start();
  second.agent.busy = true;
  gate2.apply(BLOCKED);
  second.agent.setState(second.agent.states[1], {}, { enqueueNextState: true }); // chose Lunch since
  gate2.apply(READY);
  assert.equal(second.agent.next.name, 'Lunch');
});

/** A fetch answering the refresh endpoint. */
function refreshServer() {
  const server = { status: 200, calls: /** @type {string[]} */ ([]), n: 0 };
  /** @param {string} _url @param {any} init */
  const fetch = async (_url, init) => {
    server.calls.push(init.headers.Authorization);
    server.n += 1;
    const body = server.status === 200 ? { token: `t${server.n}`, ttl_seconds: 10 } : { error: 'the session is over' };
    return { ok: server.status === 200, status: server.status, json: async () => body };
  };
  return { server, fetch };
}

test('TokenKeeper renews at half life with the current token, and stops when refused', async () => {
  const clock = new FakeClock();
  const { server, fetch } = refreshServer();
  const keeper = new TokenKeeper({
    token: 't0', ttlSeconds: 10, refreshUrl: '/zendesk/token', fetch: /** @type {any} */ (fetch),
    now: () => clock.now, setTimeout: /** @type {any} */ (clock.setTimeout), clearTimeout: /** @type {any} */ (clock.clearTimeout),
  }).start();
  const ended = /** @type {any[]} */ ([]);
  keeper.on('ended', (/** @type {any} */ e) => ended.push(e.reason));
  assert.equal(await keeper.fresh(), 't0');
  clock.advance(4999);
  await flush();
  assert.deepEqual(server.calls, []);
  clock.advance(1);
  await flush();
  assert.deepEqual(server.calls, ['Bearer t0']);
  assert.equal(keeper.token, 't1');
  clock.advance(5000);
  await flush();
  assert.deepEqual(server.calls, ['Bearer t0', 'Bearer t1']);
  server.status = 401;
  clock.advance(5000);
  await flush();
  assert.deepEqual(ended, ['the session is over']);
  clock.advance(60_000);
  await flush();
  assert.equal(server.calls.length, 3, 'no more refreshes once the session is over');
  await assert.rejects(keeper.fresh());
});

test('a reconnect after a long sleep renews a spent token before using it', async () => {
  const clock = new FakeClock();
  const { server, fetch } = refreshServer();
  const keeper = new TokenKeeper({
    token: 't0', ttlSeconds: 10, refreshUrl: '/zendesk/token', fetch: /** @type {any} */ (fetch),
    now: () => clock.now, setTimeout: () => 0, clearTimeout: () => {},
  }); // timers never fire: the machine slept
  clock.now += 8000;
  assert.equal(await keeper.fresh(), 't1');
  assert.deepEqual(server.calls, ['Bearer t0']);
});
