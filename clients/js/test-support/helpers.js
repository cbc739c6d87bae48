// Building blocks for client tests: a client wired to fakes, and a scripted daemon greeting.
import { SwitchboardClient, MemoryStorage } from '../switchboard.js';
import { socketFactory, FakeClock, flush, pos } from './fakes.js';

export const EVENTS = ['status', 'welcome', 'reassigned', 'contact', 'removed', 'owner', 'pop', 'notify', 'media', 'snapshot', 'error'];

/** @param {{on: Function}} emitter @param {string[]} names */
export function record(emitter, names = EVENTS) {
  /** @type {Record<string, any[]>} */
  const seen = {};
  for (const name of names) {
    seen[name] = [];
    emitter.on(name, (/** @type {any} */ payload) => seen[name].push(payload));
  }
  return seen;
}

/** @param {Record<string, any>} [options] */
export function setup(options = {}) {
  const net = options.net || socketFactory();
  const clock = options.clock || new FakeClock();
  const storage = options.storage || new MemoryStorage();
  const client = new SwitchboardClient({
    url: 'ws://daemon.test/ws',
    token: 'token-1',
    storage,
    WebSocket: net.FakeWebSocket,
    random: () => 0.5,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    closeOnPageHide: false,
    ...(options.client || {}),
  });
  const events = record(client);
  return { client, net, clock, storage, events };
}

/**
 * Start (if needed), accept the socket and greet it as the daemon would.
 * @param {ReturnType<typeof setup>} ctx
 * @param {Record<string, any>} [welcome]
 */
export async function greet(ctx, welcome = {}) {
  if (ctx.client.state === 'idle') ctx.client.start();
  await flush();
  const ws = ctx.net.last();
  ws.accept();
  ws.deliver({
    type: 'welcome',
    agent_id: 'agent-1',
    tab_id: 't-a',
    tab_id_reassigned: false,
    session: 'session-1',
    resumed: false,
    position: pos(0),
    ...welcome,
  });
  return ws;
}
