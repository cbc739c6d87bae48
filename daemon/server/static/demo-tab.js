// One simulated Zendesk tab: the REAL Switchboard client, fed by a simulated Amazon Connect
// Streams (fake-connect.js) that the demo page drives over a BroadcastChannel, as real
// Streams delivers every contact event to every CCP tab of the agent.
import { SwitchboardClient, mediaWarning } from '/js/switchboard.js';
import { StreamsAdapter, MediaGate } from '/js/streams-adapter.js';
import { bindHost } from '/js/zendesk-host.js';
import { createFakeConnect } from '/js/fake-connect.js';
import { agent, params, loadConfig, mediaLessParam, streamsChannel, el, fill, time } from '/static/demo-common.js';

const slot = params.get('slot') || undefined;
const instance = slot !== undefined ? `slot-${slot}` : `page-${Math.random().toString(36).slice(2, 8)}`;
const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** A host that renders into this page: how a CRM other than Zendesk plugs in. */
class DemoHost {
  constructor() {
    /** @type {any[]} */
    this.pops = [];
    /** @type {any[]} */
    this.notices = [];
    /** @type {string|null} */
    this.warning = null;
    /** @type {{target: string, id?: number, query?: string}|null} */
    this.open = null;
  }
  /** @param {any} p */
  pop(p) {
    this.pops.push(p);
    this.open = p;
    const what = p.target === 'search' ? `search “${p.query}”` : `${p.target} #${p.id}`;
    fill($('zendesk-open'), p.target === 'search' ? `Search: ${p.query}` : `${p.target === 'ticket' ? 'Ticket' : 'User'} #${p.id}`);
    log('pop', `POP → Zendesk opened ${what} (contact ${p.contactId})`);
  }
  /** @param {any} n */
  notify(n) {
    this.notices.push(n);
    log(`notify ${n.level}`, `${n.level.toUpperCase()} [${n.code}] ${n.text}`);
    if (n.level === 'urgent') {
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

/** @param {string} kind @param {string} text */
function log(kind, text) {
  $('log').prepend(el('li', { 'data-kind': kind }, el('span', { class: 'muted' }, time(), ' '), text));
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
  client.on('owner', (o) => log('owner', o.owner ? `This tab now OWNS contact ${o.contactId}` : `This tab no longer owns contact ${o.contactId}`));

  window.sb = { client, adapter, gate, driver, host, instance };
  client.start();
  channel.postMessage({ kind: 'sync-request', from: instance });
  render(client);
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
  const contacts = Array.from(client.contacts.values());
  const box = $('contacts');
  if (!contacts.length) {
    fill(box, el('p', { class: 'muted small' }, 'No contacts yet.'));
  } else {
    fill(box, contacts.map((c) => contactCard(client, c)));
  }
  if (!mediaWarning(client.media)) host.warn(null);
  document.body.dataset.tabId = client.tabId || '';
  document.body.dataset.status = client.state;
  announce(client);
}

let announced = '';
/** Tell the demo page who this tab is, when that changed. @param {SwitchboardClient} client */
function announce(client) {
  const info = { kind: 'tab', instance, slot, tabId: client.tabId, state: client.state, owned: client.owned().map((c) => c.contact_id) };
  const key = JSON.stringify(info);
  if (key === announced) return;
  announced = key;
  channel.postMessage(info);
}

/** @param {SwitchboardClient} client @param {any} c */
function contactCard(client, c) {
  const role = client.roleFor(c.contact_id);
  const owner = role === 'owner';
  const live = !['ended', 'acw', 'destroyed', 'missed'].includes(c.state);
  const act = (/** @type {string} */ name, /** @type {any} */ extra) => {
    try {
      client.command(name, c.contact_id, extra);
      log('command', `sent ${name} (epoch ${c.epoch})`);
    } catch (e) {
      log('error', `${name} refused here: ${e.code}`);
    }
  };
  const open = host.open && host.open.target === 'ticket' ? host.open.id : undefined;
  return el('div', { class: `contact ${owner ? 'owned' : ''}`, 'data-contact-id': c.contact_id, 'data-role': role, 'data-state': c.state },
    el('div', { class: 'head' },
      el('div', {}, el('strong', {}, `${c.type} ${c.direction}`), ' ', el('code', {}, c.contact_id)),
      el('span', { class: `badge role ${owner ? 'owner' : ''}` }, owner ? 'OWNER' : 'observer')),
    el('div', { class: 'small' },
      'state ', el('strong', { class: 'state' }, c.state),
      ' · epoch ', c.epoch,
      c.customer_endpoint ? ` · ${c.customer_endpoint}` : '',
      c.queue ? ` · ${c.queue}` : ''),
    el('div', { class: 'small muted' },
      owner ? 'This tab handles it: pops and commands happen here.' : `Owned by tab ${c.owner_tab || '(nobody right now)'}; this tab only watches.`,
      c.grace_until ? ' Owner disconnected: waiting for it to come back.' : ''),
    el('div', { class: 'small' },
      'mode ', c.mode || 'auto',
      c.ticket_id ? ` · ticket #${c.ticket_id}` : '',
      c.user_id ? ` · user #${c.user_id}` : '',
      c.recording_paused ? ' · recording paused' : ''),
    (c.warnings || []).map((w) => el('div', { class: 'small banner warning' }, w)),
    owner && live ? el('div', { class: 'row' },
      el('button', { onclick: () => act('create_ticket', c.user_id ? { user_id: c.user_id } : {}) }, 'Create ticket'),
      el('button', { disabled: !open, title: 'attach to the ticket open in this tab', onclick: () => act('attach_to_current', { ticket_id: open }) }, 'Attach to current'),
      el('button', { onclick: () => act(c.recording_paused ? 'resume_recording' : 'pause_recording') }, c.recording_paused ? 'Resume recording' : 'Pause recording')) : null);
}

main().catch((err) => {
  fill($('status'), 'failed');
  log('error', String(err));
});
