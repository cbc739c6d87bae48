import { test } from 'node:test';
import assert from 'node:assert/strict';

import { MediaGate } from '../streams-adapter.js';
import { createFakeConnect } from '../fake-connect.js';
import { RecordingHost, bindHost } from '../zendesk-host.js';
import { pos } from '../test-support/fakes.js';
import { setup, greet } from '../test-support/helpers.js';

const BLOCKED = { media_less: true, present: false, ready: false, gate: 'block' };
const READY = { media_less: true, present: true, ready: true, gate: 'block' };
const WARN_ONLY = { media_less: true, present: false, ready: false, gate: 'warn' };

function gate() {
  const { connect, driver } = createFakeConnect();
  const changes = /** @type {any[]} */ ([]);
  const g = new MediaGate({ connect, onChange: (blocked, state) => changes.push([blocked, state.name]) }).start();
  return { g, agent: driver.agent, changes };
}

test('block: a routable agent is set not-routable, and restored once the media CCP is ready', () => {
  const { g, agent, changes } = gate();
  g.apply(BLOCKED);
  assert.equal(agent.getState().type, 'not_routable');
  assert.equal(agent.getState().name, 'Media CCP missing');
  assert.deepEqual(agent.setStateCalls[0].options, { enqueueNextState: true });
  g.apply(BLOCKED); // repeated media messages change nothing
  assert.equal(agent.setStateCalls.length, 1);
  g.apply(READY);
  assert.equal(agent.getState().name, 'Available');
  assert.deepEqual(changes, [[true, 'Media CCP missing'], [false, 'Available']]);
});

test('warn: the agent state is left alone', () => {
  const { g, agent } = gate();
  g.apply(WARN_ONLY);
  g.apply({ ...WARN_ONLY, media_less: false });
  assert.equal(agent.setStateCalls.length, 0);
});

test('an agent already not routable is neither blocked nor later made routable', () => {
  const { g, agent } = gate();
  agent.applyState({ name: 'Break' });
  g.apply(BLOCKED);
  g.apply(READY);
  assert.equal(agent.getState().name, 'Break');
  assert.equal(agent.setStateCalls.length, 0);
});

test('an agent who picks another state while blocked keeps it when the media CCP is back', () => {
  const { g, agent } = gate();
  g.apply(BLOCKED);
  agent.applyState({ name: 'Break' });
  g.apply(READY);
  assert.equal(agent.getState().name, 'Break');
});

test('an agent who goes routable while blocked is blocked again', () => {
  const { g, agent } = gate();
  g.apply(BLOCKED);
  agent.applyState({ name: 'Available' }); // e.g. chosen in the CCP's own menu
  assert.equal(agent.getState().name, 'Media CCP missing');
});

test('a configured state name is preferred; the media view can arrive before the agent', () => {
  const { connect, driver } = createFakeConnect({ signedIn: false });
  const g = new MediaGate({ connect, stateName: 'Break' }).start();
  g.apply(BLOCKED);
  assert.equal(driver.agent.setStateCalls.length, 0);
  driver.signIn();
  assert.equal(driver.agent.getState().name, 'Break');
});

test('attached to a client, the gate follows media messages; the host shows and clears the warning', async () => {
  const ctx = setup();
  const { connect, driver } = createFakeConnect();
  new MediaGate({ connect }).start().attach(ctx.client);
  const host = new RecordingHost();
  bindHost(ctx.client, host);
  const ws = await greet(ctx);
  ws.deliver({ type: 'snapshot', contacts: [], media: BLOCKED, pos: pos(1) });
  assert.equal(driver.agent.getState().type, 'not_routable');
  ws.deliver({ type: 'media', media: { ...BLOCKED, present: true }, pos: pos(2) });
  ws.deliver({ type: 'media', media: READY, pos: pos(3) });
  assert.equal(driver.agent.getState().name, 'Available');
  assert.equal(host.warnings.length, 3);
  assert.match(host.warnings[0], /not open/);
  assert.match(host.warnings[1], /not ready/);
  assert.equal(host.warnings[2], null);
});
