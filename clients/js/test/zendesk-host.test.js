import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ZendeskHost, RecordingHost, bindHost } from '../zendesk-host.js';
import { pos, view } from '../test-support/fakes.js';
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

test('notification levels map to ZAF kinds; urgent and warning stay on screen', () => {
  const client = zaf();
  const host = new ZendeskHost(client);
  host.notify({ level: 'info', code: 'a', text: 'A' });
  host.notify({ level: 'warning', code: 'b', text: 'B' });
  host.notify({ level: 'urgent', code: 'media_lost', text: 'C' });
  assert.deepEqual(client.calls, [
    ['notify', 'A', 'notice', {}],
    ['notify', 'B', 'alert', { sticky: true }],
    ['notify', 'C', 'error', { sticky: true }],
  ]);
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
