import { test } from 'node:test';
import assert from 'node:assert/strict';

import { MemoryStorage, SwitchboardError, mediaWarning } from '../switchboard.js';
import { flush, pos, view, MEDIA_OK } from '../test-support/fakes.js';
import { setup, greet } from '../test-support/helpers.js';

test('hello carries token, role and version; no tab id, session or resume the first time', async () => {
  const ctx = setup();
  const ws = await greet(ctx);
  assert.deepEqual(ws.protocols, ['switchboard.v1.json']);
  assert.equal(ws.url, 'ws://daemon.test/ws');
  const hello = ws.sent[0];
  assert.equal(hello.type, 'hello');
  assert.equal(hello.token, 'token-1');
  assert.equal(hello.role, 'embedded');
  assert.match(hello.client_version, /^switchboard-js\//);
  for (const absent of ['tab_id', 'session', 'resume', 'media_less']) assert.ok(!(absent in hello), absent);
  assert.equal(ctx.client.state, 'open');
  assert.equal(ctx.client.tabId, 't-a');
  assert.equal(ctx.client.session, 'session-1');
});

test('media_less is sent only when the page sets it', async () => {
  const ctx = setup({ client: { mediaLess: true } });
  const ws = await greet(ctx);
  assert.equal(ws.hello.media_less, true);
});

test('the tab id and last position are stored; the session is not', async () => {
  const ctx = setup();
  const ws = await greet(ctx);
  ws.deliver({ type: 'snapshot', contacts: [], media: MEDIA_OK, pos: pos(4) });
  ws.deliver({ type: 'contact', contact: view(), pos: pos(5), replayed: false });
  const stored = Array.from(/** @type {MemoryStorage} */ (ctx.storage).map.entries());
  assert.equal(ctx.storage.getItem('switchboard.embedded.tab_id'), 't-a');
  assert.deepEqual(JSON.parse(ctx.storage.getItem('switchboard.embedded.pos')), pos(5));
  assert.ok(stored.every(([, v]) => !v.includes('session-1')), 'the private session never reaches storage');
});

test('after a dropped connection the hello resumes: same tab id, session and last position', async () => {
  const ctx = setup();
  const ws = await greet(ctx);
  ws.deliver({ type: 'snapshot', contacts: [view()], media: MEDIA_OK, pos: pos(7) });
  ws.deliver({ type: 'media', media: MEDIA_OK, pos: pos(9) });
  ws.drop(1006);
  assert.equal(ctx.client.state, 'reconnecting');
  ctx.clock.advance(ctx.clock.pendingDelay);
  await flush();
  const again = ctx.net.last();
  assert.notEqual(again, ws);
  again.accept();
  assert.equal(again.hello.tab_id, 't-a');
  assert.equal(again.hello.session, 'session-1');
  assert.deepEqual(again.hello.resume, pos(9));
});

test('a reload (a new page on the same sessionStorage) resumes with tab id and position, without session', async () => {
  const storage = new MemoryStorage();
  const first = setup({ storage });
  const ws = await greet(first);
  ws.deliver({ type: 'snapshot', contacts: [view({ state: 'connected' })], media: MEDIA_OK, pos: pos(3) });
  ws.deliver({ type: 'contact', contact: view({ state: 'connected', ticket_id: 42 }), pos: pos(8) });

  const reloaded = setup({ storage });
  assert.equal(reloaded.client.tabId, 't-a');
  assert.deepEqual(reloaded.client.position, pos(8));
  reloaded.client.start();
  assert.equal(reloaded.events.contact.length, 1, 'the stored view is shown at once');
  assert.equal(reloaded.events.contact[0].restored, true);
  assert.equal(reloaded.client.isOwner('c-1'), false, 'ownership waits for the welcome');
  const ws2 = await greet(reloaded, { resumed: true, position: pos(8) });
  assert.equal(ws2.hello.tab_id, 't-a');
  assert.deepEqual(ws2.hello.resume, pos(8));
  assert.ok(!('session' in ws2.hello));
  assert.equal(reloaded.client.isOwner('c-1'), true, 'resumes as owner with the stored view');
  assert.equal(reloaded.client.contact('c-1').ticket_id, 42);
  assert.deepEqual(reloaded.events.owner.map((o) => [o.contactId, o.owner]), [['c-1', true]]);
});

test('a duplicated tab is reassigned a new id, stores it, and owns nothing of the original', async () => {
  const original = setup();
  const ws = await greet(original);
  ws.deliver({ type: 'snapshot', contacts: [view({ owner_tab: 't-a' })], media: MEDIA_OK, pos: pos(2) });
  assert.equal(original.client.isOwner('c-1'), true);

  // The browser copies sessionStorage into the duplicate; page memory (the session) is not copied.
  const copy = new MemoryStorage();
  for (const [k, v] of original.storage.map) copy.setItem(k, v);
  const dup = setup({ storage: copy });
  const ws2 = await greet(dup, { tab_id: 't-b', tab_id_reassigned: true, session: 'session-2', resumed: true, position: pos(2) });
  assert.equal(ws2.hello.tab_id, 't-a', 'it presents the copied id');
  assert.ok(!('session' in ws2.hello), 'but cannot present the original session');
  assert.equal(dup.client.tabId, 't-b');
  assert.equal(copy.getItem('switchboard.embedded.tab_id'), 't-b');
  assert.deepEqual(dup.events.reassigned, [{ from: 't-a', to: 't-b' }]);
  assert.equal(dup.client.isOwner('c-1'), false);
  assert.equal(dup.client.roleFor('c-1'), 'observer');
  assert.equal(dup.events.owner.length, 0, 'never claimed the original contact, not even briefly');
  assert.equal(original.client.tabId, 't-a');
});

test('pops and notifications act once: a replay after reconnect does not pop again', async () => {
  const ctx = setup();
  const ws = await greet(ctx);
  ws.deliver({ type: 'snapshot', contacts: [view()], media: MEDIA_OK, pos: pos(1) });
  ws.deliver({ type: 'pop', contact_id: 'c-1', target: 'user', id: 7, pos: pos(3), replayed: false });
  ws.deliver({ type: 'notify', contact_id: 'c-1', level: 'info', code: 'x', text: 'hi', pos: pos(4), replayed: false });
  assert.equal(ctx.events.pop.length, 1);
  assert.equal(ctx.events.notify.length, 1);
  // The position was persisted only up to 3 before the connection died (say the daemon replays
  // from an older position): the replayed pop and notify must not act again, a new pop must.
  ctx.client.position = pos(2);
  ws.drop(1006);
  ctx.clock.advance(ctx.clock.pendingDelay);
  const ws2 = await greet(ctx, { resumed: true });
  assert.deepEqual(ws2.hello.resume, pos(2));
  ws2.deliver({ type: 'pop', contact_id: 'c-1', target: 'user', id: 7, pos: pos(3), replayed: true });
  ws2.deliver({ type: 'notify', contact_id: 'c-1', level: 'info', code: 'x', text: 'hi', pos: pos(4), replayed: true });
  ws2.deliver({ type: 'pop', contact_id: 'c-1', target: 'ticket', id: 9, pos: pos(6), replayed: true });
  assert.deepEqual(ctx.events.pop.map((p) => p.id), [7, 9], 'a replayed pop never acted on is acted on once');
  assert.equal(ctx.events.notify.length, 1);
});

test('a reloaded page does not pop again what the previous page instance popped', async () => {
  const storage = new MemoryStorage();
  const first = setup({ storage });
  const ws = await greet(first);
  ws.deliver({ type: 'pop', contact_id: 'c-1', target: 'ticket', id: 5, pos: pos(10), replayed: false });
  assert.equal(first.events.pop.length, 1);
  // the page reloads after acting but before it stored the position
  storage.setItem('switchboard.embedded.pos', JSON.stringify(pos(9)));
  const second = setup({ storage });
  const ws2 = await greet(second, { resumed: true });
  ws2.deliver({ type: 'pop', contact_id: 'c-1', target: 'ticket', id: 5, pos: pos(10), replayed: true });
  assert.equal(second.events.pop.length, 0);
});

test('a message at or before the last position is ignored; skipped seqs are not gaps', async () => {
  const ctx = setup();
  const ws = await greet(ctx);
  ws.deliver({ type: 'contact', contact: view({ state: 'incoming' }), pos: pos(5) });
  ws.deliver({ type: 'contact', contact: view({ state: 'connected' }), pos: pos(9) });
  ws.deliver({ type: 'contact', contact: view({ state: 'incoming' }), pos: pos(9) });
  assert.equal(ctx.client.contact('c-1').state, 'connected');
  assert.deepEqual(ctx.client.position, pos(9));
  assert.equal(ctx.events.contact.length, 2);
});

test('a snapshot replaces the view: contacts gone are removed, ownership recomputed', async () => {
  const ctx = setup();
  const ws = await greet(ctx);
  ws.deliver({ type: 'contact', contact: view({ contact_id: 'old', owner_tab: 't-a' }), pos: pos(1) });
  ws.deliver({ type: 'contact', contact: view({ contact_id: 'kept', owner_tab: 't-a' }), pos: pos(2) });
  assert.deepEqual(ctx.client.owned().map((c) => c.contact_id), ['old', 'kept']);
  ws.deliver({
    type: 'snapshot',
    contacts: [view({ contact_id: 'kept', owner_tab: 't-z', epoch: 2 }), view({ contact_id: 'new', owner_tab: 't-a' })],
    media: { ...MEDIA_OK, media_less: true },
    pos: { epoch: 'E2', seq: 1 },
  });
  assert.deepEqual(Array.from(ctx.client.contacts.keys()), ['kept', 'new']);
  assert.deepEqual(ctx.events.removed.map((r) => r.contactId), ['old']);
  assert.deepEqual(ctx.client.owned().map((c) => c.contact_id), ['new']);
  const changes = ctx.events.owner.map((o) => `${o.contactId}:${o.owner}`);
  assert.deepEqual(changes.slice(2).sort(), ['kept:false', 'new:true', 'old:false']);
  assert.equal(ctx.client.media.media_less, true);
  assert.deepEqual(ctx.client.position, { epoch: 'E2', seq: 1 });
  assert.equal(ctx.events.snapshot.length, 1);
});

test('commands carry the current epoch; a stale_epoch refusal names the command', async () => {
  const ctx = setup();
  const ws = await greet(ctx);
  ws.deliver({ type: 'contact', contact: view({ epoch: 1 }), pos: pos(1) });
  ws.deliver({ type: 'contact', contact: view({ epoch: 3 }), pos: pos(2) });
  const ref = ctx.client.command('create_ticket', 'c-1', { user_id: 12 });
  const sent = ws.sentOf('command')[0];
  assert.deepEqual(sent, { type: 'command', name: 'create_ticket', contact_id: 'c-1', epoch: 3, ref, user_id: 12 });
  ws.deliver({ type: 'error', code: 'stale_epoch', message: 'epoch 3 is stale', ref });
  assert.equal(ctx.events.error.length, 1);
  assert.equal(ctx.events.error[0].code, 'stale_epoch');
  assert.deepEqual(ctx.events.error[0].command, sent);
});

test('commands are refused locally for unknown contacts, observers and while disconnected', async () => {
  const ctx = setup();
  const ws = await greet(ctx);
  ws.deliver({ type: 'contact', contact: view({ contact_id: 'theirs', owner_tab: 't-other' }), pos: pos(1) });
  ws.deliver({ type: 'contact', contact: view({ contact_id: 'mine' }), pos: pos(2) });
  const code = (/** @type {Function} */ fn) => {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof SwitchboardError);
      return e.code;
    }
    return 'sent';
  };
  assert.equal(code(() => ctx.client.command('create_ticket', 'nope')), 'unknown_contact');
  assert.equal(code(() => ctx.client.command('create_ticket', 'theirs')), 'not_owner');
  assert.equal(code(() => ctx.client.command('bogus', 'mine')), 'invalid_message');
  ws.drop(1006);
  assert.equal(code(() => ctx.client.command('pause_recording', 'mine')), 'not_connected');
  assert.equal(ws.sentOf('command').length, 0);
});

test('losing ownership (failover elsewhere) emits owner=false and the next command is refused locally', async () => {
  const ctx = setup();
  const ws = await greet(ctx);
  ws.deliver({ type: 'contact', contact: view({ epoch: 1 }), pos: pos(1) });
  ws.deliver({ type: 'contact', contact: view({ epoch: 2, owner_tab: 't-b' }), pos: pos(2) });
  assert.deepEqual(ctx.events.owner.map((o) => o.owner), [true, false]);
  assert.throws(() => ctx.client.command('create_ticket', 'c-1'), { code: 'not_owner' });
});

test('contact events and chat lines reported before the welcome are sent after it, in order', async () => {
  const ctx = setup();
  ctx.client.start();
  ctx.client.sendContactEvent('incoming', { contact_id: 'c-1' });
  ctx.client.sendChatMessage({ contact_id: 'c-1', message_id: 'm1', participant: 'customer', text: 'hi' });
  const ws = await greet(ctx);
  assert.deepEqual(ws.sent.map((m) => m.type), ['hello', 'contact_event', 'chat_message']);
  ctx.client.sendContactEvent('connected', { contact_id: 'c-1' });
  assert.equal(ws.sent[3].event, 'connected');
  assert.throws(() => ctx.client.sendContactEvent('ringing', { contact_id: 'c-1' }), { code: 'invalid_message' });
});

test('superseded (4009): no reconnect', async () => {
  const ctx = setup();
  const ws = await greet(ctx);
  ws.drop(4009, 'superseded');
  assert.equal(ctx.client.state, 'superseded');
  assert.equal(ctx.clock.timers.length, 0);
});

test('unauthorized (4001) with a fixed token: stop, never retry with it', async () => {
  const ctx = setup();
  const ws = await greet(ctx);
  ws.drop(4001, 'token expired');
  assert.equal(ctx.client.state, 'unauthorized');
  assert.equal(ctx.clock.timers.length, 0);
  assert.equal(ctx.net.sockets.length, 1);
});

test('unauthorized (4001) with a token provider: retry with a fresh token, stop if it is the same', async () => {
  const tokens = ['t1', 't2', 't2'];
  const ctx = setup({ client: { token: undefined, tokenProvider: async () => tokens.shift() } });
  const ws = await greet(ctx);
  assert.equal(ws.hello.token, 't1');
  ws.drop(4001);
  ctx.clock.advance(ctx.clock.pendingDelay);
  const ws2 = await greet(ctx);
  assert.equal(ws2.hello.token, 't2');
  ws2.drop(4001);
  ctx.clock.advance(ctx.clock.pendingDelay);
  await flush();
  assert.equal(ctx.client.state, 'unauthorized');
  assert.equal(ctx.net.sockets.length, 2, 'the refused token is not presented again');
});

for (const code of [1000, 1001, 1006, 1011, 1013, 4002, 4008]) {
  test(`close ${code}: reconnect with backoff`, async () => {
    const ctx = setup();
    const ws = await greet(ctx);
    ws.drop(code);
    assert.equal(ctx.client.state, 'reconnecting');
    assert.equal(ctx.events.status.at(-1).code, code);
    ctx.clock.advance(ctx.clock.pendingDelay);
    await flush();
    assert.equal(ctx.net.sockets.length, 2);
  });
}

test('stop() closes with 1000 and does not reconnect', async () => {
  const ctx = setup();
  const ws = await greet(ctx);
  ctx.client.stop();
  await flush();
  assert.deepEqual(ws.closedByClient, { code: 1000, reason: 'client stopped' });
  assert.equal(ctx.client.state, 'stopped');
  assert.equal(ctx.clock.timers.length, 0);
});

test('a daemon error without a ref is surfaced as is', async () => {
  const ctx = setup();
  const ws = await greet(ctx);
  ws.deliver({ type: 'error', code: 'rate_limited', message: 'slow down' });
  ws.deliver('not json');
  assert.equal(ctx.events.error[0].code, 'rate_limited');
  assert.equal(ctx.events.error[1].code, 'bad_frame');
  assert.equal(ctx.events.error[1].local, true);
});

test('mediaWarning: only in media-less mode without a ready media CCP', () => {
  assert.equal(mediaWarning(null), null);
  assert.equal(mediaWarning({ media_less: false, present: false, ready: false, gate: 'warn' }), null);
  assert.equal(mediaWarning({ media_less: true, present: true, ready: true, gate: 'warn' }), null);
  assert.match(mediaWarning({ media_less: true, present: false, ready: false, gate: 'warn' }), /not open/);
  assert.match(mediaWarning({ media_less: true, present: true, ready: false, gate: 'block' }), /not routable/);
});

test('forget drops finished contacts from the view (and storage), once', async () => {
  const storage = new MemoryStorage();
  const ctx = setup({ storage });
  const ws = await greet(ctx);
  ws.deliver({ type: 'snapshot', contacts: [view({ state: 'ended' }), view({ contact_id: 'c-2' })], media: MEDIA_OK, pos: pos(3) });
  ws.deliver({ type: 'forget', contact_ids: ['c-1', 'c-unknown'], pos: pos(4), replayed: false });
  assert.equal(ctx.client.contact('c-1'), undefined);
  assert.ok(ctx.client.contact('c-2'));
  assert.deepEqual(ctx.events.removed.map((r) => r.contactId), ['c-1']);
  assert.deepEqual(ctx.events.owner.map((o) => [o.contactId, o.owner]), [['c-1', true], ['c-2', true], ['c-1', false]]);
  const reloaded = setup({ storage });
  assert.deepEqual(Array.from(reloaded.client.contacts.keys()), ['c-2'], 'the stored view forgot it too');
});
