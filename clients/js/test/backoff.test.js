import { test } from 'node:test';
import assert from 'node:assert/strict';

import { backoffCeiling, backoffDelay } from '../backoff.js';
import { seededRandom, flush } from '../test-support/fakes.js';
import { setup, greet } from '../test-support/helpers.js';

test('the ceiling doubles from the base and is capped', () => {
  const opts = { baseMs: 500, maxMs: 30000 };
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((a) => backoffCeiling(a, opts)), [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  assert.equal(backoffCeiling(1e6, opts), 30000, 'huge attempt counts do not overflow');
  assert.equal(backoffCeiling(-3, opts), 500);
});

test('full jitter: delays fall in [0, ceiling) and use the whole range', () => {
  const random = seededRandom(42);
  for (let attempt = 0; attempt < 12; attempt += 1) {
    const ceiling = backoffCeiling(attempt);
    const delays = Array.from({ length: 400 }, () => backoffDelay(attempt, {}, random));
    assert.ok(delays.every((d) => Number.isInteger(d) && d >= 0 && d < ceiling), `attempt ${attempt}`);
    assert.ok(Math.min(...delays) < ceiling * 0.1, 'some delays are short');
    assert.ok(Math.max(...delays) > ceiling * 0.9, 'some delays are long');
  }
  assert.equal(backoffDelay(3, {}, () => 0), 0);
  assert.equal(backoffDelay(3, {}, () => 0.9999999), 3999);
  assert.equal(backoffDelay(3, {}, () => 1), 3999, 'a random of 1 stays below the ceiling');
});

test('the client waits a jittered, growing, capped delay between failed attempts', async () => {
  const random = seededRandom(7);
  const draws = [];
  const ctx = setup({ client: { random: () => { const r = random(); draws.push(r); return r; }, backoff: { baseMs: 100, maxMs: 1000 } } });
  await greet(ctx);
  const delays = [];
  for (let i = 0; i < 8; i += 1) {
    ctx.net.last().drop(1006);
    delays.push(ctx.clock.pendingDelay);
    ctx.clock.advance(ctx.clock.pendingDelay);
    await flush();
  }
  const ceilings = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
  delays.forEach((d, i) => assert.equal(d, Math.floor(draws[i] * ceilings[i]), `attempt ${i}`));
  assert.equal(ctx.net.sockets.length, 9);
  const statuses = ctx.events.status.filter((s) => s.state === 'reconnecting');
  assert.deepEqual(statuses.map((s) => s.attempt), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(statuses.map((s) => s.delayMs), delays);
});

test('a welcome resets the backoff', async () => {
  const ctx = setup({ client: { random: () => 0.99, backoff: { baseMs: 100, maxMs: 10000 } } });
  await greet(ctx);
  for (let i = 0; i < 4; i += 1) {
    ctx.net.last().drop(1006);
    ctx.clock.advance(ctx.clock.pendingDelay);
    await flush();
  }
  assert.equal(ctx.client.attempt, 4);
  await greet(ctx);
  assert.equal(ctx.client.attempt, 0);
  ctx.net.last().drop(1013);
  assert.equal(ctx.clock.pendingDelay, 99);
});

test('reconnectNow skips the wait', async () => {
  const ctx = setup({ client: { random: () => 0.99 } });
  await greet(ctx);
  ctx.net.last().drop(1006);
  assert.equal(ctx.clock.timers.length, 1);
  ctx.client.reconnectNow();
  await flush();
  assert.equal(ctx.clock.timers.length, 0);
  assert.equal(ctx.net.sockets.length, 2);
});
