// Amazon Connect's side for tests/browser/test_streams_app.py: agent snapshots enter the real
// Streams library through its event bus, its API calls reach connect.core.client (this back
// end). A state set with enqueueNextState during a contact is queued, as Connect does; a call the
// agent places (`agent.connect`, CreateOutboundContact) becomes a connecting outbound contact,
// and a number that is not E.164 is refused, as Connect refuses it. A chat's
// media controller (Streams hands it over from amazon-connect-chatjs, which needs AWS) is a
// session holding the transcript: `ccp.say(contactId, item)` is the customer typing.
(() => {
  const STATES = [
    { name: 'Available', type: 'routable', agentStateARN: 'arn:state/available' },
    { name: 'Offline', type: 'offline', agentStateARN: 'arn:state/offline' },
    { name: 'Media CCP missing', type: 'not_routable', agentStateARN: 'arn:state/media' },
  ];
  const contacts = new Map();
  const snapshot = { state: { ...STATES[0], startTimestamp: new Date() }, nextState: null };
  const calls = [];
  function render(c) {
    const now = new Date();
    const customer = {
      connectionId: `${c.id}-customer`, type: c.direction === 'outbound' ? 'outbound' : 'inbound',
      initial: true, state: { type: 'connected', timestamp: now },
      endpoint: { type: 'telephone_number', phoneNumber: c.number ? `sip:${c.number}@connect` : null, name: null },
    };
    const agent = {
      connectionId: `${c.id}-agent`, type: 'agent', initial: false,
      state: { type: c.state === 'ended' ? 'disconnected' : 'connected', timestamp: now },
      endpoint: { type: 'agent', phoneNumber: null, name: 'Ada' },
      softphoneMediaInfo: c.type === 'voice' || c.type === 'queue_callback' ? { callType: 'audio_only' } : undefined,
    };
    return {
      contactId: c.id, initialContactId: c.initial || c.id, type: c.type || 'voice',
      state: { type: c.state, timestamp: now },
      queue: { name: c.queue || 'Support', queueARN: 'arn:queue/support', queueId: 'support' },
      queueTimestamp: now, contactDuration: '0',
      initiationMethod: c.direction === 'outbound' ? 'outbound' : (c.method || 'inbound'),
      attributes: Object.fromEntries(Object.entries(c.attributes || {}).map(([k, v]) => [k, { name: k, value: v }])),
      connections: [agent, customer],
    };
  }
  function agentData() {
    return {
      snapshot: {
        ...snapshot, contacts: [...contacts.values()].map(render), snapshotTimestamp: new Date(),
        agentAvailabilityState: { state: contacts.size ? 'Busy' : snapshot.state.name, timeStamp: new Date() },
      },
      configuration: {
        name: 'Ada Lovelace', username: 'ada', agentStates: STATES, permissions: [],
        softphoneEnabled: true, dialableCountries: ['gb', 'us'],
        routingProfile: {
          name: 'Sales', routingProfileId: 'arn:aws:connect:eu-west-2:123456789012:instance/aaaa-bbbb/routing-profile/sales',
          defaultOutboundQueue: { queueARN: 'arn:queue/out', name: 'Outbound' }, channelConcurrencyMap: { VOICE: 1, CHAT: 2 },
        },
      },
    };
  }
  const chats = new Map();
  connect.core.mediaFactory = {
    get(connection) {
      const id = connection.contactId || connection.getContactId();
      if (!chats.has(id)) chats.set(id, { transcript: [], handlers: [] });
      const chat = chats.get(id);
      return Promise.resolve({
        onMessage(fn) { chat.handlers.push(fn); },
        getTranscript() { return Promise.resolve({ data: { Transcript: [...chat.transcript] } }); },
      });
    },
    destroy() {},
  };
  function push() { connect.core.getEventBus().trigger(connect.AgentEvents.UPDATE, agentData()); }
  let dialled = 0;
  connect.core.client = {
    call(method, params, callbacks) {
      calls.push({
        method, state: params && params.state ? params.state.name : null, enqueue: !!(params && params.enqueueNextState),
        endpoint: (params && params.endpoint) || null, queueARN: (params && params.queueARN) || null,
      });
      if (method === connect.ClientMethods.CREATE_OUTBOUND_CONTACT) {
        const number = params.endpoint.phoneNumber;
        if (!/^\+[1-9][0-9]{6,14}$/.test(number)) {
          if (callbacks && callbacks.failure) callbacks.failure(JSON.stringify({ message: `Invalid phone number: ${number}` }), {});
          return;
        }
        const id = `dialled-${++dialled}`;
        contacts.set(id, { id, type: 'voice', direction: 'outbound', state: 'connecting', number });
        push();
        if (callbacks && callbacks.success) callbacks.success({ contactId: id });
        return;
      }
      if (method === connect.ClientMethods.PUT_AGENT_STATE) {
        const target = STATES.find((s) => s.name === params.state.name);
        if (contacts.size && params.enqueueNextState) {
          // Connect queues it; setting the current state withdraws the queued one
          snapshot.nextState = target.name === snapshot.state.name ? null : { ...target };
        } else {
          snapshot.state = { ...target, startTimestamp: new Date() };
          snapshot.nextState = null;
        }
        push();
      }
      if (callbacks && callbacks.success) callbacks.success({});
    },
  };
  window.ccp = {
    calls, snapshot, push,
    set(c) { contacts.set(c.id, { ...(contacts.get(c.id) || {}), ...c }); push(); },
    remove(id) {
      contacts.delete(id);
      if (!contacts.size && snapshot.nextState) {
        snapshot.state = { ...snapshot.nextState, startTimestamp: new Date() };
        snapshot.nextState = null;
      }
      push();
    },
    say(id, item) {
      if (!chats.has(id)) chats.set(id, { transcript: [], handlers: [] });
      const chat = chats.get(id);
      chat.transcript.push(item);
      chat.handlers.forEach((fn) => fn({ data: item }));
    },
    state() { return { state: snapshot.state.name, type: snapshot.state.type, next: snapshot.nextState && snapshot.nextState.name }; },
  };
  push();
})();
