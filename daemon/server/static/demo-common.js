// Shared by the demo pages: page parameters, the daemon's demo config, the simulated Streams
// channel, and a tiny DOM helper.

export const params = new URLSearchParams(location.search);
export const agent = params.get('agent') || 'demo-agent';

/** The BroadcastChannel that plays Amazon Connect for every CCP of one agent. */
export function streamsChannel(agentId = agent) {
  return new BroadcastChannel(`switchboard-demo.${agentId}`);
}

/** `{ws_url, token, agent, sandbox}` from the daemon. */
export async function loadConfig(agentId = agent) {
  const res = await fetch(`/demo/config?agent=${encodeURIComponent(agentId)}`);
  if (!res.ok) throw new Error(`/demo/config answered ${res.status}`);
  return res.json();
}

/** `?media_less=1|0` forces the mode in hello; absent: the daemon's setting. */
export function mediaLessParam() {
  const v = params.get('media_less');
  if (v === null || v === '') return undefined;
  return v === '1' || v === 'true';
}

/**
 * Build an element: el('div', {class: 'x', onclick: fn}, 'text', child).
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...(Node|string|number|null|undefined|false)} children
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** @param {Element} node @param {...any} children */
export function fill(node, ...children) {
  node.replaceChildren();
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function time() {
  return new Date().toLocaleTimeString();
}

/** Contact states after which a contact is over (the daemon keeps it a while, for the record). */
export const FINISHED_STATES = new Set(['missed', 'ended', 'acw', 'destroyed']);

/**
 * Whole seconds left until `graceUntil` (the daemon's epoch seconds; the demo runs on one
 * machine, so the browser's clock is the daemon's), never below 0.
 * @param {number} graceUntil
 */
export function graceLeft(graceUntil) {
  return Math.max(0, Math.ceil(graceUntil - Date.now() / 1000));
}

/**
 * An element that counts down to a grace deadline; `tickCountdowns()` keeps every one current
 * between re-renders (the daemon sends grace_until once, not every second).
 * @param {number} graceUntil
 */
export function countdown(graceUntil) {
  return el('strong', { class: 'countdown', 'data-grace-until': graceUntil }, `${graceLeft(graceUntil)} s`);
}

/** Update every countdown on the page four times a second. */
export function tickCountdowns() {
  setInterval(() => {
    for (const node of document.querySelectorAll('[data-grace-until]')) {
      fill(node, `${graceLeft(Number(/** @type {HTMLElement} */ (node).dataset.graceUntil))} s`);
    }
  }, 250);
}
