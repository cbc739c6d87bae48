/**
 * Reconnection delays: exponential backoff with "full jitter" (a uniformly random delay
 * between 0 and min(cap, base * 2^attempt)), which spreads a crowd of tabs that lost the
 * daemon at the same moment instead of having them all come back in lockstep.
 * @module backoff
 */

/**
 * @typedef {object} BackoffOptions
 * @property {number} [baseMs=500] ceiling of the first delay
 * @property {number} [maxMs=30000] cap of every delay
 */

/** @type {Required<BackoffOptions>} */
export const DEFAULT_BACKOFF = Object.freeze({ baseMs: 500, maxMs: 30000 });

/**
 * The ceiling of the delay before attempt number `attempt` (0-based).
 * @param {number} attempt
 * @param {BackoffOptions} [options]
 * @returns {number}
 */
export function backoffCeiling(attempt, options = {}) {
  const { baseMs, maxMs } = { ...DEFAULT_BACKOFF, ...options };
  const exponent = Math.min(Math.max(0, attempt), 30);
  return Math.min(maxMs, baseMs * 2 ** exponent);
}

/**
 * A full-jitter delay in whole milliseconds, in [0, backoffCeiling(attempt)).
 * @param {number} attempt
 * @param {BackoffOptions} [options]
 * @param {() => number} [random] returns a number in [0, 1)
 * @returns {number}
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const r = Math.min(Math.max(random(), 0), 0.999999);
  return Math.floor(r * backoffCeiling(attempt, options));
}
