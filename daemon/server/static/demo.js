// The demo page: plays Amazon Connect for one agent (contacts and their events go to every
// CCP over a BroadcastChannel), hosts the simulated Zendesk tabs as iframes, and shows the
// daemon's and the Zendesk sandbox's state. `window.demo` is the same API for scripts/tests.
import { agent, params, streamsChannel, el, fill, FINISHED_STATES, countdown, tickCountdowns } from '/static/demo-common.js';

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const channel = streamsChannel();
/** Streams status after each event (what a CCP that starts now is told). */
const STATUS_AFTER = { incoming: 'incoming', connecting: 'connecting', accepted: 'connecting', connected: 'connected', missed: 'missed', ended: 'ended', acw: 'ended' };

/** @type {Map<string, {data: any, status: string, event: string}>} contacts Connect knows */
const contacts = new Map();
/** @type {Map<string, {slot: string, frame: HTMLIFrameElement|null, box: HTMLElement, info: any}>} */
const tabs = new Map();
let nextSlot = 1;
let agentState = 'Available';
let counter = 0;
let mediaFrame = /** @type {HTMLIFrameElement|null} */ (null);
/** @type {Map<string, any>} pops the tabs performed (the sandbox never sees them), by position */
const tabPops = new Map();

// -- Amazon Connect ---------------------------------------------------------------------------

/**
 * Place a contact. `first`: the tab instance that reports first (the dialling tab).
 * @param {{kind?: 'inbound'|'chat'|'outbound', number?: string, queue?: string,
 *   attributes?: Record<string, string>, from?: string, contactId?: string}} [options]
 * @returns {string} the contact id
 */
function placeContact(options = {}) {
  const kind = options.kind || 'inbound';
  counter += 1;
  const contactId = options.contactId || `ct-${Date.now().toString(36)}-${counter}`;
  const data = {
    contactId,
    type: kind === 'chat' ? 'chat' : 'voice',
    inbound: kind !== 'outbound',
    queue: options.queue || 'Support',
    phoneNumber: kind === 'chat' ? '' : options.number || '+441632960001',
    attributes: options.attributes || {},
  };
  contacts.set(contactId, { data, status: 'init', event: '' });
  placeInConnect(data).finally(() => {
    event(contactId, kind === 'outbound' ? 'connecting' : 'incoming', kind === 'outbound' ? options.from : undefined);
  });
  return contactId;
}

/**
 * The simulated contact exists in the daemon's embedded Amazon Connect too, so pausing its
 * recording takes the production path (Connect's API). Best effort: a failure only means
 * the recording controls will say Connect refused.
 * @param {{contactId: string, type: string, inbound: boolean, phoneNumber: string}} data
 */
async function placeInConnect(data) {
  try {
    await fetch('/demo/connect/contacts', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        contact_id: data.contactId,
        type: data.type,
        direction: data.inbound ? 'inbound' : 'outbound',
        customer_endpoint: data.phoneNumber || null,
      }),
    });
  } catch (e) {
    console.warn('the embedded Connect did not take the contact', e);
  }
}

/**
 * Fire a Streams event in every CCP.
 * @param {string} contactId @param {string} name @param {string} [first]
 */
function event(contactId, name, first) {
  const c = contacts.get(contactId);
  if (!c) throw new Error(`no contact ${contactId}`);
  c.event = name;
  c.status = STATUS_AFTER[name] || c.status;
  channel.postMessage({ kind: 'event', contact: c.data, status: c.status, event: name, first });
  if (name === 'destroyed') contacts.delete(contactId);
  renderContacts();
}

const wait = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

/** The agent accepts in the CCP: accepted, then connected. @param {string} id */
async function accept(id) {
  event(id, 'accepted');
  await wait(250);
  event(id, 'connected');
}

/** The call ends: ended, then after-call work. @param {string} id */
async function end(id) {
  event(id, 'ended');
  await wait(150);
  if (contacts.get(id)?.data.type === 'voice') event(id, 'acw');
}

/** The agent clears the contact. @param {string} id */
function clear(id) {
  event(id, 'destroyed');
}

/** @param {string} id */
function miss(id) {
  event(id, 'missed');
}

/** A chat line from the customer. @param {string} id @param {string} text */
function chat(id, text, participant = 'CUSTOMER') {
  counter += 1;
  channel.postMessage({
    kind: 'chat',
    contactId: id,
    item: { Id: `msg-${Date.now().toString(36)}-${counter}`, Type: 'MESSAGE', ParticipantRole: participant, DisplayName: participant === 'CUSTOMER' ? 'Customer' : 'Agent', Content: text, AbsoluteTime: new Date().toISOString() },
  });
}

channel.onmessage = (ev) => {
  const msg = ev.data || {};
  if (msg.kind === 'sync-request') {
    // a CCP that (re)starts is handed the contacts Connect knows, as real Streams does
    const list = Array.from(contacts.values()).map((c) => ({ ...c.data, status: c.status }));
    channel.postMessage({ kind: 'sync', to: msg.from, contacts: list, agentState });
  } else if (msg.kind === 'agent-state') {
    agentState = msg.name;
    fill($('agent-state'), agentState);
  } else if (msg.kind === 'tab') {
    for (const t of tabs.values()) if (`slot-${t.slot}` === msg.instance) t.info = msg;
    renderTabTitles();
  } else if (msg.kind === 'popped') {
    // A pop acted on twice would have one position: count each once.
    tabPops.set(msg.pos || `${msg.instance}:${tabPops.size}`, msg);
    renderPops();
  }
};

// The tab pages report their height: their frames grow with them (no cut-off contacts).
const MIN_FRAME_HEIGHT = 200;
window.addEventListener('message', (ev) => {
  if (ev.origin !== location.origin || !ev.data || ev.data.kind !== 'tab-height') return;
  for (const t of tabs.values()) {
    if (t.frame && t.frame.contentWindow === ev.source) t.frame.style.height = `${Math.max(MIN_FRAME_HEIGHT, ev.data.height)}px`;
  }
});

// -- tabs -------------------------------------------------------------------------------------

function tabUrl(/** @type {string} */ slot) {
  const q = new URLSearchParams({ agent, slot });
  const mediaLess = $('media-less').value;
  if (mediaLess) q.set('media_less', mediaLess);
  return `/demo/tab?${q}`;
}

/** Open a simulated Zendesk tab. @param {string} [slot] */
function addTab(slot) {
  const s = slot || String(nextSlot++);
  let t = tabs.get(s);
  if (!t) {
    const box = el('div', { class: 'tabframe', 'data-slot': s });
    t = { slot: s, frame: null, box, info: null };
    tabs.set(s, t);
    $('tabs').append(box);
  }
  t.frame = el('iframe', { src: tabUrl(s), title: `Zendesk tab ${s}`, name: `tab-${s}` });
  t.box.classList.remove('closed');
  fill(t.box, tabBar(t), t.frame);
  renderInitiators();
  return s;
}

/** @param {any} t */
function tabBar(t) {
  const open = !!t.frame;
  return el('div', { class: 'bar' },
    el('span', { class: 'title' }, `Tab ${t.slot}`),
    open ? el('button', { onclick: () => reloadTab(t.slot), title: 'F5' }, 'Reload') : null,
    open ? el('button', { onclick: () => duplicateTab(t.slot), title: 'Duplicate: copies sessionStorage' }, 'Duplicate') : null,
    open ? el('button', { class: 'danger', onclick: () => closeTab(t.slot) }, 'Close') : el('button', { onclick: () => addTab(t.slot), title: 'Ctrl+Shift+T' }, 'Reopen'));
}

/** @param {string} slot */
function reloadTab(slot) {
  const t = tabs.get(slot);
  if (t && t.frame) t.frame.contentWindow.location.reload();
}

/** @param {string} slot */
function closeTab(slot) {
  const t = tabs.get(slot);
  if (!t || !t.frame) return;
  t.frame.remove();
  t.frame = null;
  t.info = null;
  t.box.classList.add('closed');
  fill(t.box, tabBar(t), el('div', { class: 'placeholder' }, 'Closed. Reopen it before the grace period runs out (see the countdown) to keep its calls.'));
  renderInitiators();
}

/**
 * Duplicate a tab as the browser does: the new tab starts with a copy of its sessionStorage
 * (so it presents the same tab id), but not its page memory (the private session).
 * @param {string} slot
 */
function duplicateTab(slot) {
  const s = String(nextSlot++);
  const from = `switchboard.embedded.${slot}.`;
  for (let i = 0; i < sessionStorage.length; i += 1) {
    const key = sessionStorage.key(i);
    if (key && key.startsWith(from)) sessionStorage.setItem(`switchboard.embedded.${s}.${key.slice(from.length)}`, sessionStorage.getItem(key));
  }
  return addTab(s);
}

function renderTabTitles() {
  for (const t of tabs.values()) {
    const title = t.box.querySelector('.title');
    if (!title) continue;
    const info = t.info;
    fill(title, `Tab ${t.slot}`, info && info.tabId ? el('code', {}, ` ${info.tabId}`) : '', info && info.owned && info.owned.length ? el('span', { class: 'badge owner' }, ` owns ${info.owned.length}`) : '');
  }
}

function renderInitiators() {
  const sel = $('initiator');
  const current = sel.value;
  fill(sel, Array.from(tabs.values()).filter((t) => t.frame).map((t) => el('option', { value: `slot-${t.slot}` }, `dial from tab ${t.slot}`)));
  if (current) sel.value = current;
}

// -- media CCP --------------------------------------------------------------------------------

function openMedia() {
  if (mediaFrame) return;
  mediaFrame = el('iframe', { src: `/demo/media?agent=${encodeURIComponent(agent)}`, title: 'Media CCP' });
  $('media-box').append(mediaFrame);
  fill($('media-toggle'), 'Close media CCP');
}

function closeMedia() {
  if (!mediaFrame) return;
  mediaFrame.remove();
  mediaFrame = null;
  fill($('media-toggle'), 'Open media CCP');
}

// -- contacts panel ---------------------------------------------------------------------------

function renderContacts() {
  const list = Array.from(contacts.entries());
  if (!list.length) {
    fill($('sim-contacts'), el('p', { class: 'muted small' }, 'None.'));
    return;
  }
  fill($('sim-contacts'), list.map(([id, c]) => {
    const ev = c.event;
    const ringing = ev === 'incoming' || (ev === 'connecting' && c.data.inbound);
    const dialing = ev === 'connecting' && !c.data.inbound;
    const talking = ev === 'accepted' || ev === 'connected';
    return el('div', { class: 'contact-sim', 'data-contact-id': id },
      el('div', {}, el('strong', {}, c.data.type === 'chat' ? 'Chat' : c.data.inbound ? 'Inbound call' : 'Outbound call'), ' ', el('code', {}, id)),
      el('div', { class: 'small muted' }, `${c.data.phoneNumber || 'web'} · ${c.data.queue} · last event: `, el('strong', {}, ev)),
      el('div', { class: 'row' },
        ringing ? el('button', { class: 'primary', onclick: () => accept(id) }, 'Accept') : null,
        dialing ? el('button', { class: 'primary', onclick: () => event(id, 'connected') }, 'Answered') : null,
        ringing ? el('button', { onclick: () => miss(id) }, 'Miss') : null,
        talking && c.data.type === 'chat' ? el('button', { onclick: () => chat(id, prompt('Customer says:', 'Hello, I need help with my order') || '') }, 'Customer writes') : null,
        talking || dialing ? el('button', { class: 'danger', onclick: () => end(id) }, 'End') : null,
        !talking && !ringing && !dialing ? el('button', { onclick: () => clear(id) }, 'Clear contact') : null));
  }));
}

function attrRow(name = '', value = '') {
  const row = el('div', { class: 'attr' },
    el('input', { placeholder: 'name', value: name, class: 'attr-name' }),
    el('input', { placeholder: 'value', value, class: 'attr-value' }),
    el('button', { onclick: () => row.remove(), title: 'remove' }, '×'));
  $('attrs').append(row);
}

function attributes() {
  /** @type {Record<string, string>} */
  const out = {};
  for (const row of $('attrs').querySelectorAll('.attr')) {
    const name = row.querySelector('.attr-name').value.trim();
    if (name) out[name] = row.querySelector('.attr-value').value;
  }
  return out;
}

// -- daemon and Zendesk views -----------------------------------------------------------------

async function pollDaemon() {
  try {
    const res = await fetch(`/admin/agents/${encodeURIComponent(agent)}`);
    if (!res.ok) throw new Error(String(res.status));
    const s = await res.json();
    const live = (s.tabs || []).filter((t) => t.connected);
    fill($('media-less-now'), `media-less ${s.media.media_less ? 'on' : 'off'} for this agent`);
    fill($('daemon-view'),
      el('div', {}, `${live.filter((t) => t.role === 'embedded').length} embedded tab(s) connected, media CCP `,
        el('span', { class: `badge ${s.media.present ? (s.media.ready ? 'ok' : 'warn') : s.media.media_less ? 'bad' : ''}` },
          s.media.present ? (s.media.ready ? 'ready' : 'not ready') : 'absent'),
        ` · media-less ${s.media.media_less ? 'on' : 'off'} · gate ${s.media.gate}`),
      el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'contact'), el('th', {}, 'state'), el('th', {}, 'owner (epoch)'), el('th', {}, 'ticket'))),
        el('tbody', {}, (s.contacts || []).map((c) => daemonRow(c)))));
  } catch (err) {
    fill($('daemon-view'), `unavailable (${err})`);
  }
}

/** One contact as the daemon stores it; a finished one is greyed, a grace period counts down. @param {any} c */
function daemonRow(c) {
  const finished = FINISHED_STATES.has(c.state);
  return el('tr', { 'data-contact-id': c.contact_id, class: finished ? 'finished' : '' },
    el('td', { class: 'mono' }, c.contact_id),
    el('td', {}, c.state, finished ? el('span', { class: 'badge' }, 'finished') : ''),
    el('td', { class: 'mono' }, `${c.owner_tab || '—'} (${c.epoch})`,
      c.grace_until && !finished ? el('span', { class: 'badge warn grace', title: 'the owner tab is gone: failover when this reaches 0' }, 'grace ', countdown(c.grace_until)) : ''),
    el('td', {}, c.ticket_id ? `#${c.ticket_id}` : '—'));
}

/** The pops the tabs performed: with POP_VIA=tab (the default) Zendesk's API never sees them. */
function renderPops() {
  const recent = Array.from(tabPops.values()).slice(-4).reverse();
  fill($('tab-pops'),
    el('div', {}, el('strong', { class: 'count' }, String(tabPops.size)), ' pop(s) performed by the owning tabs since this page opened'),
    recent.map((p) => el('div', { class: 'muted' }, `tab ${p.slot ?? p.tabId ?? '?'} opened ${p.target === 'search' ? `search “${p.query}”` : `${p.target} #${p.id}`} (${p.contactId})`)));
}

async function pollZendesk() {
  try {
    const res = await fetch('/demo/zendesk');
    if (!res.ok) throw new Error(String(res.status));
    const z = await res.json();
    const tickets = (z.tickets || []).slice().reverse().slice(0, 8);
    fill($('zendesk-view'),
      el('div', {}, `${(z.tickets || []).length} ticket(s), ${(z.users || []).filter((u) => u.role === 'end-user').length} customer(s), ${(z.pops || []).length} pop(s) through Zendesk's API`),
      tickets.map((t) => el('div', { class: 'ticket', 'data-ticket-id': t.id },
        el('div', {}, el('strong', {}, `#${t.id} `), t.subject || '(no subject)'),
        el('div', { class: 'muted' }, `external id ${t.external_id || '—'} · ${t.status} · ${(t.comments || []).length} comment(s)`),
        (t.comments || []).map((c) => el('div', { class: 'comment' }, (c.plain_body || c.body || '').split('\n').slice(0, 3).join('\n'))))));
  } catch (err) {
    fill($('zendesk-view'), `unavailable (${err})`);
  }
}

// -- start ------------------------------------------------------------------------------------

function start() {
  fill($('agent-id'), agent);
  const mediaLess = params.get('media_less');
  $('media-less').value = mediaLess === '1' || mediaLess === 'true' ? '1' : mediaLess === '0' || mediaLess === 'false' ? '0' : '';
  $('place').addEventListener('click', () => {
    const kind = $('kind').value;
    placeContact({ kind, number: $('number').value, queue: $('queue').value, attributes: attributes(), from: kind === 'outbound' ? $('initiator').value : undefined });
  });
  $('add-attr').addEventListener('click', () => attrRow());
  $('preset').addEventListener('change', () => {
    const v = $('preset').value;
    if (!v) return;
    const i = v.indexOf('=');
    attrRow(v.slice(0, i), v.slice(i + 1));
    $('preset').value = '';
  });
  $('add-tab').addEventListener('click', () => addTab());
  $('media-toggle').addEventListener('click', () => (mediaFrame ? closeMedia() : openMedia()));
  const count = Number(params.get('tabs') ?? 3);
  for (let i = 0; i < count; i += 1) addTab();
  if (params.get('media') === '1') openMedia();
  setInterval(pollDaemon, 1000);
  setInterval(pollZendesk, 1500);
  pollDaemon();
  pollZendesk();
  renderPops();
  tickCountdowns();
}

window.demo = { agent, placeContact, event, accept, end, clear, miss, chat, addTab, reloadTab, closeTab, duplicateTab, openMedia, closeMedia, contacts, tabs };
start();
