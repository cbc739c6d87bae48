// One simulated Zendesk tab: the REAL Switchboard client, fed by a simulated Amazon Connect
// Streams (fake-connect.js) that the demo page drives over a BroadcastChannel, as real
// Streams delivers every contact event to every CCP tab of the agent.
import { SwitchboardClient, mediaWarning } from '/js/switchboard.js';
import { StreamsAdapter, MediaGate } from '/js/streams-adapter.js';
import { bindHost } from '/js/zendesk-host.js';
import { createFakeConnect } from '/js/fake-connect.js';
import {
  agent, params, loadConfig, mediaLessParam, streamsChannel, el, fill, time, FINISHED_STATES, countdown, tickCountdowns,
} from '/static/demo-common.js';

const slot = params.get('slot') || undefined;
const instance = slot !== undefined ? `slot-${slot}` : `page-${Math.random().toString(36).slice(2, 8)}`;
const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** A host that renders into this page: how a CRM other than Zendesk plugs in. */
class DemoHost {
  constructor() {
    /** @type {any[]} the daemon's pops this page acted on */
    this.pops = [];
    /** @type {any[]} */
    this.notices = [];
    /** @type {string|null} */
    this.warning = null;
    /** @type {{target: string, id?: number, query?: string, contactId?: string}|null} */
    this.open = null;
  }
  /** @param {any} p */
  pop(p) {
    this.pops.push(p);
    this.show(p);
    const what = p.target === 'search' ? `search “${p.query}”` : `${p.target} #${p.id}`;
    log('pop', `POP → Zendesk opened ${what} (contact ${p.contactId})`);
    // The sandbox never sees these (the tab routes Zendesk itself): tell the demo page.
    channel.postMessage({ kind: 'popped', instance, slot, tabId: window.sb?.client.tabId, contactId: p.contactId, target: p.target, id: p.id, query: p.query, pos: p.pos ? `${p.pos.epoch}:${p.pos.seq}` : null });
  }
  /**
   * Show a user, ticket or search in this tab's Zendesk workspace (a pop, or a takeover).
   * @param {{target: string, id?: number, query?: string, contactId?: string}} p
   */
  show(p) {
    this.open = p;
    fill($('zendesk-open'), p.target === 'search' ? `Search: ${p.query}` : `${p.target === 'ticket' ? 'Ticket' : 'User'} #${p.id}`);
    $('zendesk-open').dataset.contactId = p.contactId || '';
  }
  /** @param {any} n */
  notify(n) {
    this.notices.push(n);
    log(`notify ${n.level}`, `${n.level.toUpperCase()} [${n.code}] ${n.text}`);
    if (n.level === 'urgent' || n.level === 'error') {
      fill($('urgent'), `⚠ ${n.text}`);
      $('urgent').classList.remove('hidden');
    }
  }
  /** @param {string|null} text */
  warn(text) {
    this.warning = text;
    $('media-warning').classList.toggle('hidden', !text);
    fill($('media-warning'), text || '');
  }
}

const LOG_LINES = 100;

/** @param {string} kind @param {string} text */
function log(kind, text) {
  const list = $('log');
  list.prepend(el('li', { 'data-kind': kind }, el('span', { class: 'muted' }, time(), ' '), text));
  while (list.children.length > LOG_LINES) list.lastElementChild?.remove();
}

const host = new DemoHost();
const { connect, driver } = createFakeConnect({ agent: { name: `Agent ${agent}` } });
const channel = streamsChannel();
let applyingRemoteState = false;

async function main() {
  const config = await loadConfig();
  fill($('title'), slot !== undefined ? `Zendesk tab ${slot}` : 'Zendesk tab');
  const client = new SwitchboardClient({
    url: config.ws_url,
    tokenProvider: async () => (await loadConfig()).token,
    role: 'embedded',
    slot,
    mediaLess: mediaLessParam(),
    backoff: { baseMs: 300, maxMs: 5000 },
  });
  bindHost(client, host);
  const adapter = new StreamsAdapter({ connect, client }).start();
  const gate = new MediaGate({
    connect,
    onChange: (blocked, state) => log('gate', blocked ? `Media gate: agent set to “${state.name}” (not routable)` : `Media gate: agent back to “${state.name}”`),
  }).start().attach(client);

  // Streams shares the agent's state between CCPs: mirror changes made here to the others.
  driver.agent.onStateChange(() => {
    renderAgent();
    if (!applyingRemoteState) channel.postMessage({ kind: 'agent-state', name: driver.agent.getState().name, from: instance });
  });

  channel.onmessage = (ev) => onStreams(ev.data, client);
  for (const name of ['status', 'welcome', 'contact', 'removed', 'owner', 'snapshot', 'media', 'pop', 'notify']) {
    client.on(name, () => render(client));
  }
  client.on('error', (e) => log('error', `error ${e.code}: ${e.message}${e.command ? ` (command ${e.command.name})` : ''}`));
  client.on('reassigned', (r) => {
    $('reassigned').classList.remove('hidden');
    log('reassigned', `This is a duplicated tab: id ${r.from} was live elsewhere, so it is now ${r.to}.`);
  });
  client.on('owner', (o) => {
    log('owner', o.owner ? `This tab now OWNS contact ${o.contactId}` : `This tab no longer owns contact ${o.contactId}`);
    if (o.owner && o.contact) takeOver(o.contact);
  });

  window.sb = { client, adapter, gate, driver, host, instance };
  client.start();
  channel.postMessage({ kind: 'sync-request', from: instance });
  render(client);
  tickCountdowns();
  reportHeight();
}

/**
 * This tab gained a contact (failover from a closed owner, or a reload resuming its own): its
 * workspace shows the contact's ticket (else user), as the previous owner's did. The daemon
 * pops once, to whoever owned the contact then, so without this the new owner sat on "Home".
 * Not a pop: it is not the daemon's, and is not counted as one.
 * @param {any} c
 */
function takeOver(c) {
  if (FINISHED_STATES.has(c.state) || (host.open && host.open.contactId === c.contact_id)) return;
  const target = c.ticket_id ? 'ticket' : c.user_id ? 'user' : null;
  if (!target) return;
  const id = target === 'ticket' ? c.ticket_id : c.user_id;
  host.show({ target, id, contactId: c.contact_id });
  log('takeover', `Contact ${c.contact_id} is handled here now: Zendesk opened ${target} #${id}`);
}

/**
 * Inside the demo page, keep telling it this page's height, so that its frame grows with the
 * contacts instead of cutting them off (the log scrolls inside, so the height stays bounded).
 */
function reportHeight() {
  if (window.parent === window) return;
  const page = /** @type {HTMLElement} */ (document.querySelector('.ccp'));
  new ResizeObserver(() => {
    window.parent.postMessage({ kind: 'tab-height', height: Math.ceil(page.getBoundingClientRect().height) }, location.origin);
  }).observe(page);
}

/** Messages from the simulated Amazon Connect (the demo page). */
async function onStreams(msg, client) {
  if (!msg || typeof msg !== 'object') return;
  if (msg.kind === 'event') {
    if (msg.first && msg.first !== instance) await new Promise((r) => setTimeout(r, 400));
    const known = driver.contact(msg.contact.contactId);
    if (known) Object.assign(known.data, msg.contact);
    else if (msg.event !== 'destroyed') driver.upsert({ ...msg.contact, status: msg.status });
    driver.fire(msg.contact.contactId, msg.event);
  } else if (msg.kind === 'sync' && (!msg.to || msg.to === instance)) {
    for (const c of msg.contacts || []) if (!driver.contact(c.contactId)) driver.upsert(c);
    if (msg.agentState) applyRemoteState(msg.agentState);
  } else if (msg.kind === 'chat') {
    driver.chat(msg.contactId, msg.item);
  } else if (msg.kind === 'agent-state' && msg.from !== instance) {
    applyRemoteState(msg.name);
  } else {
    return; // e.g. other tabs' status reports
  }
  render(client);
}

/** @param {string} name */
function applyRemoteState(name) {
  applyingRemoteState = true;
  try {
    driver.agent.applyState({ name });
  } finally {
    applyingRemoteState = false;
  }
}

function renderAgent() {
  const s = driver.agent.getState();
  fill($('agent-state'), `${s.name} (${s.type.replace('_', '-')})`);
  $('agent-state').dataset.type = s.type;
}

/** @param {SwitchboardClient} client */
function render(client) {
  fill($('tab-id'), client.tabId || '—');
  const status = $('status');
  status.className = `badge ${client.state === 'open' ? 'ok' : client.state === 'reconnecting' || client.state === 'connecting' ? 'warn' : 'bad'}`;
  fill(status, client.state);
  renderAgent();
  // Live contacts first; finished ones stay (the daemon keeps them for a while) but below.
  const contacts = Array.from(client.contacts.values());
  const live = contacts.filter((c) => !FINISHED_STATES.has(c.state));
  const finished = contacts.filter((c) => FINISHED_STATES.has(c.state));
  const box = $('contacts');
  if (!contacts.length) {
    fill(box, el('p', { class: 'muted small' }, 'No contacts yet.'));
  } else {
    fill(box, live.map((c) => contactCard(client, c)), finished.map((c) => finishedCard(client, c)));
  }
  if (!mediaWarning(client.media)) host.warn(null);
  document.body.dataset.tabId = client.tabId || '';
  document.body.dataset.status = client.state;
  announce(client);
}

let announced = '';
/** Tell the demo page who this tab is, when that changed. @param {SwitchboardClient} client */
function announce(client) {
  // "owns N" on the demo page counts the calls this tab is handling, not finished ones.
  const owned = client.owned().filter((c) => !FINISHED_STATES.has(c.state)).map((c) => c.contact_id);
  const info = { kind: 'tab', instance, slot, tabId: client.tabId, state: client.state, owned };
  const key = JSON.stringify(info);
  if (key === announced) return;
  announced = key;
  channel.postMessage(info);
}

/** A live contact. @param {SwitchboardClient} client @param {any} c */
function contactCard(client, c) {
  const owner = client.roleFor(c.contact_id) === 'owner';
  const act = (/** @type {string} */ name, /** @type {any} */ extra) => {
    try {
      client.command(name, c.contact_id, extra);
      log('command', `sent ${name} (epoch ${c.epoch})`);
    } catch (e) {
      log('error', `${name} refused here: ${e.code}`);
    }
  };
  const open = host.open && host.open.target === 'ticket' ? host.open.id : undefined;
  return el('div', { class: `contact ${owner ? 'owned' : ''}`, 'data-contact-id': c.contact_id, 'data-role': owner ? 'owner' : 'observer', 'data-state': c.state },
    el('div', { class: 'head' },
      el('div', {}, el('strong', {}, `${c.type} ${c.direction}`), ' ', el('code', {}, c.contact_id)),
      el('span', { class: `badge role ${owner ? 'owner' : ''}` }, owner ? 'OWNER' : 'observer')),
    el('div', { class: 'small' },
      'state ', el('strong', { class: 'state' }, c.state),
      ' · epoch ', c.epoch,
      c.customer_endpoint ? ` · ${c.customer_endpoint}` : '',
      c.queue ? ` · ${c.queue}` : ''),
    el('div', { class: 'small muted' },
      owner ? 'This tab handles it: pops and commands happen here.' : `Owned by tab ${c.owner_tab || '(nobody right now)'}; this tab only watches.`),
    c.grace_until ? el('div', { class: 'small banner warning grace' },
      'Owner tab disconnected: it has ', countdown(c.grace_until), ' to come back, then another tab takes over.') : null,
    el('div', { class: 'small' },
      'mode ', c.mode || 'auto',
      c.ticket_id ? ` · ticket #${c.ticket_id}` : '',
      c.user_id ? ` · user #${c.user_id}` : '',
      c.recording_paused ? ' · recording paused' : '',
      zendeskWork(c)),
    (c.warnings || []).map((/** @type {string} */ w) => el('div', { class: 'small banner warning' }, w)),
    // Only what the contact allows: one ticket per contact, recordings only on calls.
    owner ? el('div', { class: 'row' },
      c.ticket_id ? null : el('button', { onclick: () => act('create_ticket', c.user_id ? { user_id: c.user_id } : {}) }, 'Create ticket'),
      el('button', { disabled: !open || open === c.ticket_id, title: 'attach to the ticket open in this tab', onclick: () => act('attach_to_current', { ticket_id: open }) }, 'Attach to current'),
      c.type === 'voice' ? el('button', { onclick: () => act(c.recording_paused ? 'resume_recording' : 'pause_recording') }, c.recording_paused ? 'Resume recording' : 'Pause recording') : null) : null);
}

/**
 * A finished contact: one line, no commands, and not "OWNER" (nobody is handling it any
 * more; the daemon only keeps it for the retention period, 15 minutes by default).
 * @param {SwitchboardClient} client @param {any} c
 */
function finishedCard(client, c) {
  const here = client.roleFor(c.contact_id) === 'owner';
  return el('div', { class: 'contact finished', 'data-contact-id': c.contact_id, 'data-role': here ? 'owner' : 'observer', 'data-state': c.state },
    el('div', { class: 'head' },
      el('div', { class: 'small' }, el('strong', {}, `${c.type} ${c.direction}`), ' ', el('code', {}, c.contact_id)),
      el('span', { class: 'badge role finished' }, 'finished')),
    el('div', { class: 'small muted' },
      `${c.state}`,
      c.ticket_id ? ` · ticket #${c.ticket_id}` : '',
      zendeskWork(c),
      ` · handled by ${here ? 'this tab' : `tab ${c.owner_tab || '—'}`}`));
}

/**
 * Where the contact's Zendesk work stands (the daemon's `workflow`), for a card line.
 * @param {any} c
 */
function zendeskWork(c) {
  if (!c.workflow || c.workflow === 'none') return '';
  return c.workflow === 'failed' ? ` · Zendesk work failed: ${c.workflow_reason || 'unknown'}` : ` · Zendesk work ${c.workflow}`;
}

main().catch((err) => {
  fill($('status'), 'failed');
  log('error', String(err));
});
