import { test } from 'node:test';
import assert from 'node:assert/strict';

import { MediaCcp } from '../media-ccp.js';
import { SwitchboardClient } from '../switchboard.js';
import { createFakeConnect } from '../fake-connect.js';
import { flush, pos } from '../test-support/fakes.js';
import { setup, greet } from '../test-support/helpers.js';

function permissions(state) {
  const perm = { state, listeners: /** @type {Function[]} */ ([]), addEventListener(_e, fn) { this.listeners.push(fn); } };
  return { perm, navigator: { permissions: { query: async () => perm } } };
}

test('the media CCP says hello as role media and reports its readiness after every welcome', async () => {
  const ctx = setup({ client: { role: 'media' } });
  const { connect } = createFakeConnect();
  const { navigator } = permissions('granted');
  const ccp = new MediaCcp({ client: ctx.client, connect, navigator });
  ccp.start();
  await flush();
  const ws = await greet(ctx, { tab_id: 'm-1' });
  assert.equal(ws.hello.role, 'media');
  assert.deepEqual(ws.sentOf('media_status').at(-1), { type: 'media_status', microphone: true, signed_in: true, in_call: false, audio_lost: false });
  ws.drop(1006);
  ctx.clock.advance(ctx.clock.pendingDelay);
  const ws2 = await greet(ctx, { tab_id: 'm-1' });
  assert.equal(ws2.sentOf('media_status').length, 1, 'resent to the new connection');
  assert.equal(ctx.storage.getItem('switchboard.media.tab_id'), 'm-1', 'its own storage key');
});

test('calls, softphone errors and permission changes are reported as they happen', async () => {
  const ctx = setup({ client: { role: 'media' } });
  const { connect, driver } = createFakeConnect();
  const { perm, navigator } = permissions('granted');
  const ccp = new MediaCcp({ client: ctx.client, connect, navigator });
  const statuses = /** @type {any[]} */ ([]);
  ccp.on('status', (s) => statuses.push(s));
  ccp.start();
  const ws = await greet(ctx);
  driver.upsert({ contactId: 'c-1' });
  driver.fire('c-1', 'connected');
  assert.equal(ws.sentOf('media_status').at(-1).in_call, true);
  driver.agent._fire('onSoftphoneError', {});
  assert.equal(ws.sentOf('media_status').at(-1).audio_lost, true);
  assert.equal(ccp.ready, false);
  driver.fire('c-1', 'ended');
  assert.equal(ws.sentOf('media_status').at(-1).in_call, false);
  perm.state = 'denied';
  perm.listeners.forEach((fn) => fn());
  assert.equal(ws.sentOf('media_status').at(-1).microphone, false);
  const count = ws.sentOf('media_status').length;
  ccp.update({ microphone: false });
  assert.equal(ws.sentOf('media_status').length, count, 'no change, nothing sent');
  assert.ok(statuses.length >= 4);
});

test('shows the daemon media view, including the active contact', async () => {
  const ctx = setup({ client: { role: 'media' } });
  const ccp = new MediaCcp({ client: ctx.client, navigator: null });
  const seen = /** @type {any[]} */ ([]);
  ccp.on('media', (m) => seen.push(m));
  ccp.start();
  const ws = await greet(ctx);
  ws.deliver({ type: 'media', media: { media_less: true, present: true, ready: true, gate: 'warn', active_contact: 'c-9' }, pos: pos(1) });
  assert.equal(ccp.activeContact, 'c-9');
  assert.equal(seen.length, 1);
  assert.equal(ccp.status.signed_in, true, 'without Streams it counts as signed in');
});

test('an embedded client refuses media_status; MediaCcp refuses an embedded client', () => {
  const ctx = setup();
  assert.throws(() => ctx.client.sendMediaStatus({ microphone: true, signed_in: true }), { code: 'wrong_role' });
  assert.throws(() => new MediaCcp({ client: ctx.client }), TypeError);
  const built = new MediaCcp({ clientOptions: { url: 'ws://x/ws', token: 't', closeOnPageHide: false }, navigator: null });
  assert.ok(built.client instanceof SwitchboardClient);
  assert.equal(built.client.role, 'media');
});
