import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ZendeskHost, RecordingHost, bindHost } from '../zendesk-host.js';
import { pos, view, MEDIA_OK } from '../test-support/fakes.js';
import { MemoryStorage } from '../switchboard.js';
import { setup, greet } from '../test-support/helpers.js';

function zaf() {
  const calls = /** @type {any[][]} */ ([]);
  return { calls, invoke: (/** @type {any[]} */ ...args) => { calls.push(args); return Promise.resolve(); } };
}

test('pops route to the user or ticket; a search without a route becomes a notice', () => {
  const client = zaf();
  const host = new ZendeskHost(client);
  host.pop({ target: 'user', id: 7 });
  host.pop({ target: 'ticket', id: 9 });
  host.pop({ target: 'search', query: 'Bo Smith' });
  assert.deepEqual(client.calls, [
    ['routeTo', 'user', 7],
    ['routeTo', 'ticket', 9],
    ['notify', 'Search Zendesk for: Bo Smith', 'notice', { sticky: true }],
  ]);
});

test('a custom search route is used when given', () => {
  const client = zaf();
  const host = new ZendeskHost(client, { search: (c, q) => c.invoke('routeTo', 'nav_bar', 'search_app', `q=${q}`) });
  host.pop({ target: 'search', query: 'x' });
  assert.deepEqual(client.calls, [['routeTo', 'nav_bar', 'search_app', 'q=x']]);
});

test('notification levels map to ZAF kinds; all but info stay on screen', () => {
  const client = zaf();
  const host = new ZendeskHost(client);
  host.notify({ level: 'info', code: 'a', text: 'A' });
  host.notify({ level: 'warning', code: 'b', text: 'B' });
  host.notify({ level: 'urgent', code: 'media_lost', text: 'C' });
  host.notify({ level: 'error', code: 'second_chat', text: 'D' });
  host.notify({ level: /** @type {any} */ ('later'), code: 'x', text: 'E' }); // a newer daemon's
  assert.deepEqual(client.calls, [
    ['notify', 'A', 'notice', {}],
    ['notify', 'B', 'alert', { sticky: true }],
    ['notify', 'C', 'error', { sticky: true }],
    ['notify', 'D', 'error', { sticky: true }],
    ['notify', 'E', 'notice', {}],
  ]);
});

test('bindHost: the owner is shown each contact warning once, as a ZAF alert', async () => {
  const ctx = setup();
  const calls = zaf();
  bindHost(ctx.client, new ZendeskHost(calls));
  const ws = await greet(ctx);
  const bad = 'Expecting a phone number in attribute customer_number, got: abc';
  ws.deliver({ type: 'contact', contact: view(), pos: pos(1) });
  ws.deliver({ type: 'contact', contact: view({ warnings: [bad] }), pos: pos(2) });
  ws.deliver({ type: 'contact', contact: view({ state: 'connected', warnings: [bad] }), pos: pos(3) });
  ws.deliver({ type: 'contact', contact: view({ state: 'ended', warnings: [bad, 'second'] }), pos: pos(4) });
  ws.deliver({ type: 'contact', contact: view({ contact_id: 'c-2', warnings: [bad] }), pos: pos(5) });
  ws.deliver({ type: 'contact', contact: view({ contact_id: 'c-3', owner_tab: 't-other', warnings: [bad] }), pos: pos(6) });
  assert.deepEqual(calls.calls, [
    ['notify', bad, 'alert', { sticky: true }],
    ['notify', 'second', 'alert', { sticky: true }],
    ['notify', bad, 'alert', { sticky: true }], // another contact's own warning
  ]);
});

test('bindHost: a reloaded page does not show a contact warning again; a new owner does', async () => {
  const storage = new MemoryStorage();
  const first = setup({ storage });
  const firstHost = new RecordingHost();
  bindHost(first.client, firstHost);
  const ws = await greet(first);
  ws.deliver({ type: 'contact', contact: view({ warnings: ['w'] }), pos: pos(1) });
  assert.equal(firstHost.notices.length, 1);
  first.client.stop();

  // The same browser tab reloaded: its stored view comes back, then a snapshot (not resumed).
  const again = setup({ storage });
  const host = new RecordingHost();
  bindHost(again.client, host);
  const ws2 = await greet(again, { resumed: false });
  ws2.deliver({ type: 'snapshot', contacts: [view({ warnings: ['w'] })], media: MEDIA_OK, pos: pos(2) });
  assert.deepEqual(host.notices, []);
  // Failover: another tab takes the contact over, and is told.
  const other = setup();
  const otherHost = new RecordingHost();
  bindHost(other.client, otherHost);
  const ws3 = await greet(other, { tab_id: 't-b' });
  ws3.deliver({ type: 'snapshot', contacts: [view({ warnings: ['w'] })], media: MEDIA_OK, pos: pos(2) });
  ws3.deliver({ type: 'contact', contact: view({ owner_tab: 't-b', epoch: 2, warnings: ['w'] }), pos: pos(3) });
  assert.deepEqual(otherHost.notices.map((n) => [n.level, n.code, n.text]), [['warning', 'invalid_attribute', 'w']]);
});

test('warn shows a warning once and announces when it clears', () => {
  const client = zaf();
  const host = new ZendeskHost(client);
  host.warn('no media');
  host.warn('no media');
  host.warn(null);
  assert.equal(client.calls.length, 2);
  assert.equal(client.calls[0][2], 'alert');
  assert.equal(client.calls[1][2], 'notice');
});

test('bindHost: the owner pops once, notifications reach the host', async () => {
  const ctx = setup();
  const host = new RecordingHost();
  bindHost(ctx.client, host);
  const ws = await greet(ctx);
  ws.deliver({ type: 'contact', contact: view(), pos: pos(1) });
  ws.deliver({ type: 'pop', contact_id: 'c-1', target: 'ticket', id: 3, pos: pos(2) });
  ws.deliver({ type: 'pop', contact_id: 'c-1', target: 'ticket', id: 3, pos: pos(2), replayed: true });
  ws.deliver({ type: 'notify', contact_id: 'c-1', level: 'urgent', code: 'media_lost', text: 'reopen', pos: pos(3) });
  assert.deepEqual(host.pops, [{ target: 'ticket', id: 3, query: undefined, contactId: 'c-1', pos: pos(2) }]);
  assert.deepEqual(host.notices, [{ level: 'urgent', code: 'media_lost', text: 'reopen', contactId: 'c-1', pos: pos(3) }]);
  assert.deepEqual(host.warnings, [], 'no media-less warning outside media-less mode');
});
