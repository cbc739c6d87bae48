import { test } from 'node:test';
import assert from 'node:assert/strict';

import { StreamsAdapter, contactSnapshot, flattenAttributes, normalizeEndpoint, chatLine, toId } from '../streams-adapter.js';
import { createFakeConnect } from '../fake-connect.js';
import { flush } from '../test-support/fakes.js';

/** A client stand-in that records what the adapter sends. */
function recorder() {
  return {
    events: /** @type {any[]} */ ([]),
    chats: /** @type {any[]} */ ([]),
    /** @param {string} event @param {any} contact */
    sendContactEvent(event, contact) {
      this.events.push({ event, contact });
    },
    /** @param {any} m */
    sendChatMessage(m) {
      this.chats.push(m);
    },
  };
}

function wired() {
  const { connect, driver } = createFakeConnect({ agent: { name: 'Ada', routingProfile: 'Sales' } });
  const client = recorder();
  const adapter = new StreamsAdapter({ connect, client, now: () => 1_700_000_000_000 }).start();
  return { connect, driver, client, adapter };
}

test('every Streams event is reported with the protocol event name', () => {
  const { driver, client } = wired();
  driver.upsert({ contactId: 'c-1', status: 'init', queue: 'Support', phoneNumber: '+441234567890' });
  for (const e of ['incoming', 'connecting', 'accepted', 'connected', 'missed', 'ended', 'acw', 'destroyed']) driver.fire('c-1', e);
  assert.deepEqual(client.events.map((e) => e.event), [
    'incoming', // the state the contact was in when the CCP first saw it
    'incoming', 'connecting', 'accepted', 'connected', 'missed', 'ended', 'acw', 'destroyed',
  ]);
});

test('an inbound voice contact maps every field', () => {
  const { driver, client } = wired();
  driver.upsert({
    contactId: 'c-1',
    initialContactId: 'c-0',
    queue: 'Support',
    phoneNumber: 'sip:+441234567890@connect.aws',
    attributes: { zendesk_user: '17', ticket_assignment: 'agent' },
  });
  const snap = client.events[0].contact;
  assert.deepEqual(snap, {
    contact_id: 'c-1',
    initial_contact_id: 'c-0',
    type: 'voice',
    direction: 'inbound',
    is_callback: false,
    monitoring: false,
    attributes: { zendesk_user: '17', ticket_assignment: 'agent' },
    softphone: true,
    occurred_at: 1_700_000_000,
    queue: 'Support',
    customer_endpoint: '+441234567890',
    agent_name: 'Ada',
    routing_profile: 'Sales',
  });
});

test('outbound, queue callback, chat and monitoring contacts', () => {
  const { driver, client, adapter } = wired();
  adapter.expectOutbound({ kind: 'user', id: 42 });
  driver.upsert({ contactId: 'out', inbound: false, phoneNumber: '+15550100', status: 'connecting' });
  driver.upsert({ contactId: 'cb', type: 'queue_callback', inbound: false, status: 'connecting' });
  driver.upsert({ contactId: 'chat', type: 'chat' });
  driver.upsert({ contactId: 'mon', monitoring: true, status: 'connected' });
  const by = Object.fromEntries(client.events.map((e) => [e.contact.contact_id, e]));
  assert.equal(by.out.contact.direction, 'outbound');
  assert.equal(by.out.event, 'connecting');
  assert.deepEqual(by.out.contact.click_to_dial, { kind: 'user', id: 42 });
  assert.equal(by.cb.contact.type, 'queue_callback');
  assert.equal(by.cb.contact.is_callback, true);
  assert.equal(by.cb.contact.click_to_dial, undefined, 'click to dial applies to the next outbound only');
  assert.equal(by.chat.contact.type, 'chat');
  assert.equal(by.chat.contact.softphone, false);
  assert.equal(by.chat.contact.customer_endpoint, undefined);
  assert.equal(by.mon.contact.monitoring, true);
  assert.equal(by.mon.event, 'connected');
});

test('onDestroy reuses the last snapshot (Streams getters throw by then)', () => {
  const { driver, client } = wired();
  driver.upsert({ contactId: 'c-1', type: 'chat', queue: 'Chat', attributes: { customer_name: 'Bo' } });
  driver.fire('c-1', 'ended');
  driver.fire('c-1', 'destroyed');
  const last = client.events.at(-1);
  assert.equal(last.event, 'destroyed');
  assert.equal(last.contact.type, 'chat');
  assert.equal(last.contact.queue, 'Chat');
  assert.deepEqual(last.contact.attributes, { customer_name: 'Bo' });
});

test('a CCP that (re)starts mid-call reports the state the contact is in', () => {
  const { connect, driver } = createFakeConnect();
  driver.upsert({ contactId: 'c-1', status: 'connected' });
  const client = recorder();
  new StreamsAdapter({ connect, client }).start();
  assert.deepEqual(client.events.map((e) => e.event), ['connected']);
});

test('a contact object is subscribed once even if handed over twice', () => {
  const { driver, client, adapter } = wired();
  const contact = driver.upsert({ contactId: 'c-1' });
  adapter.track(contact);
  driver.fire('c-1', 'connected');
  assert.deepEqual(client.events.map((e) => e.event), ['incoming', 'connected']);
});

test('chat transcripts: earlier lines and new ones are reported with stable ids', async () => {
  const { driver, client } = wired();
  driver.upsert({ contactId: 'chat-1', type: 'chat' });
  driver.chat('chat-1', { Id: 'm-1', Type: 'MESSAGE', ParticipantRole: 'CUSTOMER', DisplayName: 'Bo', Content: 'hello', AbsoluteTime: '2024-01-01T00:00:00.000Z' });
  driver.fire('chat-1', 'connected');
  await flush();
  driver.chat('chat-1', { Id: 'm-2', Type: 'MESSAGE', ParticipantRole: 'AGENT', DisplayName: 'Ada', Content: 'hi Bo' });
  driver.chat('chat-1', { Id: 'm-3', Type: 'EVENT', ContentType: 'application/vnd.amazonaws.connect.event.participant.left', ParticipantRole: 'CUSTOMER', DisplayName: 'Bo' });
  assert.deepEqual(client.chats.map((c) => [c.message_id, c.participant, c.text]), [
    ['m-1', 'customer', 'hello'],
    ['m-2', 'agent', 'hi Bo'],
    ['m-3', 'customer', 'Bo left the chat'],
  ]);
  assert.equal(client.chats[0].contact_id, 'chat-1');
  assert.equal(client.chats[0].sent_at, 1704067200);
});

test('helpers: attributes, endpoints, ids, chat roles', () => {
  assert.deepEqual(flattenAttributes({ a: { name: 'a', value: '1' }, b: { name: 'b', value: null }, c: { name: 'c', value: 5 } }), { a: '1', c: '5' });
  assert.deepEqual(flattenAttributes(undefined), {});
  const many = Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`k${i}`, { name: `k${i}`, value: 'x'.repeat(5000) }]));
  const flat = flattenAttributes(many);
  assert.equal(Object.keys(flat).length, 200);
  assert.equal(flat.k0.length, 4096);
  assert.equal(normalizeEndpoint('tel:+15550100'), '+15550100');
  assert.equal(normalizeEndpoint(''), undefined);
  assert.equal(toId('a b/c'), 'a_b_c');
  assert.equal(toId(''), undefined);
  assert.equal(chatLine({ Id: 'x', ParticipantRole: 'SYSTEM', DisplayName: 'BOT', Content: 'Welcome' }).participant, 'bot');
  assert.equal(chatLine({ Id: 'y', ParticipantRole: 'SYSTEM', DisplayName: 'SYSTEM_MESSAGE', Content: 'queued' }).participant, 'system');
  assert.equal(chatLine({}), null);
  assert.equal(contactSnapshot({ getContactId: () => { throw new Error('gone'); } }), null);
});
