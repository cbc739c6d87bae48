import { test } from 'node:test';
import assert from 'node:assert/strict';

import { dialableNumber, startBackground, onClickToDial, DIAL_OUT_EVENT, SAME_CLICK_MS } from '../zendesk-app.js';
import { flush } from '../test-support/fakes.js';

test('click-to-dial numbers are dialled as E.164, whatever formatting Zendesk shows', () => {
  assert.equal(dialableNumber('+44 7700 900010'), '+447700900010');
  assert.equal(dialableNumber('+1 (555) 010-0100'), '+15550100100');
  assert.equal(dialableNumber('+1.555.010.0100'), '+15550100100');
  assert.equal(dialableNumber('0044 20 7946 0000'), '+442079460000');
  assert.equal(dialableNumber('07700 900011'), '07700900011', 'a national number stays one (Connect refuses it)');
});

/**
 * One Zendesk window's app instances, each a ZAF client of its own: `trigger` reaches the other
 * instance's handlers later (ZAF messages cross frames), as does what Zendesk fires.
 * @param {Record<string, string>} locations guid → location
 */
function zendeskWindow(locations) {
  /** @type {Record<string, any>} */
  const clients = {};
  const deliver = (/** @type {string} */ guid, /** @type {string} */ name, /** @type {any} */ data) =>
    setImmediate(() => (clients[guid].handlers[name] || []).forEach((/** @type {Function} */ fn) => fn(data)));
  for (const guid of Object.keys(locations)) {
    const client = {
      /** @type {Record<string, Function[]>} */
      handlers: {},
      /** @type {any[][]} */
      invoked: [],
      /** @type {any[][]} */
      triggered: [],
      broken: false,
      on(/** @type {string} */ name, /** @type {Function} */ fn) {
        (client.handlers[name] = client.handlers[name] || []).push(fn);
      },
      invoke(/** @type {any[]} */ ...args) {
        client.invoked.push(args);
        return Promise.resolve({});
      },
      get(/** @type {string} */ key) {
        if (client.broken) return Promise.reject(new Error('ZAF: no answer'));
        const instances = Object.fromEntries(Object.entries(locations).map(([g, location]) => [g, { location }]));
        return Promise.resolve(key === 'instances' ? { instances } : {});
      },
      instance(/** @type {string} */ guid) {
        return {
          trigger(/** @type {string} */ name, /** @type {any} */ data) {
            client.triggered.push([guid, name, data]);
            deliver(guid, name, data);
          },
        };
      },
    };
    clients[guid] = client;
  }
  return { clients, fire: deliver };
}

const CLICK = { number: '+44 7700 900010', userId: 77 };

test('the background instance forwards voice.dialout, unchanged, to the top bar only', async () => {
  const zendesk = zendeskWindow({ top: 'top_bar', bg: 'background', side: 'ticket_sidebar' });
  startBackground(zendesk.clients.bg);
  zendesk.fire('bg', 'voice.dialout', CLICK);
  await flush();
  await flush();
  assert.deepEqual(zendesk.clients.bg.triggered, [['top', DIAL_OUT_EVENT, CLICK]]);
  assert.deepEqual(zendesk.clients.bg.invoked, [], 'nothing shown: the top bar dials');
});

test('a click the background cannot pass on is shown as a Zendesk error', async () => {
  const alone = zendeskWindow({ bg: 'background', side: 'user_sidebar' }); // no top bar here
  startBackground(alone.clients.bg);
  alone.fire('bg', 'voice.dialout', CLICK);
  const broken = zendeskWindow({ top: 'top_bar', bg: 'background' });
  broken.clients.bg.broken = true; // ZAF does not answer `get('instances')`
  startBackground(broken.clients.bg);
  broken.fire('bg', 'voice.dialout', CLICK);
  await flush();
  await flush();
  for (const { clients } of [alone, broken]) {
    assert.equal(clients.bg.invoked.length, 1);
    const [name, text, kind] = clients.bg.invoked[0];
    assert.equal(name, 'notify');
    assert.equal(kind, 'error');
    assert.match(text, /number pad/);
  }
  assert.deepEqual(broken.clients.bg.triggered, []);
});

/** A background and a top bar wired as the pages wire them; the top bar's dials. */
function clickToDial(now = () => 0) {
  const zendesk = zendeskWindow({ top: 'top_bar', bg: 'background' });
  /** @type {any[]} */
  const dials = [];
  startBackground(zendesk.clients.bg);
  onClickToDial(zendesk.clients.top, (e) => dials.push(e), now);
  return { zendesk, dials };
}

test('one click dials once: forwarded only, direct only, or both in either order', async () => {
  const deliveries = [['bg'], ['top'], ['bg', 'top'], ['top', 'bg']];
  for (const guids of deliveries) {
    const { zendesk, dials } = clickToDial();
    for (const guid of guids) {
      zendesk.fire(guid, 'voice.dialout', CLICK);
      await flush();
      await flush();
      await flush();
    }
    assert.deepEqual(dials, [CLICK], `delivered to ${guids.join(' then ')}`);
  }
});

test('another number, or the same one clicked again later, is another call', async () => {
  let now = 0;
  const { zendesk, dials } = clickToDial(() => now);
  const other = { number: '+44 7700 900011', ticketId: 5 };
  zendesk.fire('bg', 'voice.dialout', CLICK);
  zendesk.fire('bg', 'voice.dialout', other);
  zendesk.fire('top', 'voice.dialout', other);
  await flush();
  await flush();
  now = SAME_CLICK_MS - 1;
  zendesk.fire('top', 'voice.dialout', other); // still that click
  await flush();
  now = SAME_CLICK_MS * 2;
  zendesk.fire('top', 'voice.dialout', other);
  zendesk.fire('top', 'voice.dialout', undefined); // Zendesk gave nothing: dialOut refuses it
  await flush();
  assert.deepEqual(dials, [other, CLICK, other, {}]);
});
