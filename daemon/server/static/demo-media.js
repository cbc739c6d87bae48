// The media CCP page: the REAL media client (role "media"), with a simulated Streams fed by the
// demo page, so that it knows when it carries a call. Its readiness is toggled by hand.
import { SwitchboardClient } from '/js/switchboard.js';
import { MediaCcp } from '/js/media-ccp.js';
import { createFakeConnect } from '/js/fake-connect.js';
import { loadConfig, streamsChannel, fill } from '/static/demo-common.js';

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const { connect, driver } = createFakeConnect();
const channel = streamsChannel();

async function main() {
  const config = await loadConfig();
  const client = new SwitchboardClient({
    url: config.ws_url,
    tokenProvider: async () => (await loadConfig()).token,
    role: 'media',
    backoff: { baseMs: 300, maxMs: 5000 },
  });
  // The demo drives the microphone by hand, so no navigator: the checkbox is the permission.
  const ccp = new MediaCcp({ client, connect, navigator: null });
  $('microphone').addEventListener('change', () => ccp.update({ microphone: $('microphone').checked }));
  $('signed-in').addEventListener('change', () => ccp.update({ signed_in: $('signed-in').checked }));
  $('lose-audio').addEventListener('click', () => ccp.update({ audio_lost: true }));
  const render = () => {
    fill($('tab-id'), client.tabId || '—');
    fill($('status'), client.state);
    $('status').className = `badge ${client.state === 'open' ? 'ok' : 'warn'}`;
    const s = ccp.status;
    fill($('reported'), `microphone=${s.microphone} signed_in=${s.signed_in} in_call=${s.in_call} audio_lost=${s.audio_lost}`);
    const m = ccp.media;
    if (!m) return;
    fill($('m-media-less'), m.media_less ? 'on' : 'off');
    fill($('m-ready'), `${m.present ? 'present' : 'absent'} / ${m.ready ? 'ready' : 'not ready'}`);
    fill($('m-gate'), m.gate);
    fill($('m-active'), m.active_contact || '—');
  };
  ccp.on('status', render);
  ccp.on('media', render);
  client.on('status', render);
  channel.onmessage = (ev) => {
    const msg = ev.data;
    if (msg && msg.kind === 'event') {
      const known = driver.contact(msg.contact.contactId);
      if (known) Object.assign(known.data, msg.contact);
      else if (msg.event !== 'destroyed') driver.upsert({ ...msg.contact, status: msg.status });
      driver.fire(msg.contact.contactId, msg.event);
    } else if (msg && msg.kind === 'sync' && msg.to === 'media') {
      for (const c of msg.contacts || []) if (!driver.contact(c.contactId)) driver.upsert(c);
    }
  };
  window.sb = { client, ccp, driver };
  ccp.start();
  channel.postMessage({ kind: 'sync-request', from: 'media' });
  render();
}

main().catch((err) => fill($('status'), `failed: ${err}`));
