/**
 * The Zendesk app's pages (served by the daemon after a Zendesk-signed login, see
 * daemon/server/zendesk_app.py): the embedded page in Zendesk's top bar and the media CCP page.
 *
 * The embedded page initialises the Amazon Connect CCP for the configured instance (softphone
 * off in media-less mode: the media CCP page carries the audio), the Switchboard client, the
 * Streams adapter, the media gate and the Zendesk host, and shows in Zendesk what the agent must
 * see (by `bindHost`, owner only, once each): pops, notices (second-chat refusals and workflow
 * failures at the `error` level, shown as ZAF errors) and each invalid-attribute warning of a
 * contact the tab owns.
 *
 * Click-to-dial (Zendesk Talk Partner Edition): Zendesk fires `voice.dialout` with
 * `{number, userId?, ticketId?}` when the agent clicks a phone number on a user or ticket. It
 * reaches the app's `background` instance (`startBackground`), which forwards it to the top-bar
 * instance as `switchboard.dialout`; the top bar also listens for `voice.dialout` itself, and
 * dials each click once however many of the two reach it (`onClickToDial`). The page dials it
 * through Streams (`agent.connect`, the routing profile's outbound queue) and tells the adapter
 * that the next outbound contact belongs to that ticket, else that user; a dial Connect refuses
 * is shown as a Zendesk error and leaves no expectation behind.
 *
 * What the agent has open in Zendesk comes from the app's sidebar instances (`startSidebar`, in
 * the ticket and user sidebars): each tells the top-bar instance `switchboard.viewing` when it is
 * shown, so `attachToCurrent` and `createTicket` act on the ticket or user on screen. Both other
 * locations message the top bar the same way (`tellTopBar`: ZAF `get('instances')`, then
 * `instance(guid).trigger`).
 *
 * The tab token the page was served with is short-lived; `TokenKeeper` exchanges it for a
 * fresh one before it expires (and before any reconnect with an expired one), for as long as
 * the daemon's maximum session age allows.
 * @module zendesk-app
 */

import { Emitter } from './emitter.js';
import { MediaCcp } from './media-ccp.js';
import { StreamsAdapter, MediaGate } from './streams-adapter.js';
import { SwitchboardClient } from './switchboard.js';
import { ZendeskHost, RecordingHost, bindHost } from './zendesk-host.js';

/**
 * @typedef {object} AppConfig what the daemon puts in the page
 * @property {string} agent
 * @property {number|null} zendeskUserId
 * @property {string} wsUrl
 * @property {string} token
 * @property {number} tokenTtlSeconds
 * @property {string} refreshUrl
 * @property {string} mediaLinkUrl
 * @property {string} connectInstanceUrl
 * @property {boolean} mediaLess
 */

/** Refresh when this share of the token's life is left (the daemon's whole-second `iat`
 *  can make a token up to a second shorter than its nominal lifetime). */
const REFRESH_AT = 0.5;
const RETRY_MS = 5000;

/**
 * Keeps a valid tab token: refreshes it before expiry and on demand.
 * Events: `token` (a fresh token), `ended` (the daemon refused: the session is over).
 */
export class TokenKeeper extends Emitter {
  /**
   * @param {{token: string, ttlSeconds: number, refreshUrl: string, fetch?: typeof fetch,
   *   now?: () => number, setTimeout?: typeof setTimeout, clearTimeout?: typeof clearTimeout}} options
   */
  constructor(options) {
    super();
    this.token = options.token;
    this.ttlMs = options.ttlSeconds * 1000;
    this.refreshUrl = options.refreshUrl;
    this._fetch = options.fetch || globalThis.fetch.bind(globalThis);
    this._now = options.now || Date.now;
    this._setTimeout = options.setTimeout || globalThis.setTimeout.bind(globalThis);
    this._clearTimeout = options.clearTimeout || globalThis.clearTimeout.bind(globalThis);
    this.issuedAt = this._now();
    this.ended = false;
    /** @type {Promise<string>|null} */
    this._pending = null;
    /** @type {any} */
    this._timer = null;
  }

  start() {
    this._schedule(this.ttlMs * (1 - REFRESH_AT));
    return this;
  }

  stop() {
    if (this._timer !== null) this._clearTimeout(this._timer);
    this._timer = null;
  }

  /** A token good for a while: the current one, or a refreshed one if it is nearly spent. */
  async fresh() {
    if (this._now() - this.issuedAt < this.ttlMs * (1 - REFRESH_AT)) return this.token;
    return this.refresh();
  }

  /** Exchange the current token for a new one (one request at a time). */
  refresh() {
    if (!this._pending) {
      this._pending = this._request().finally(() => {
        this._pending = null;
      });
    }
    return this._pending;
  }

  async _request() {
    if (this.ended) throw new Error('session ended');
    let response;
    try {
      response = await this._fetch(this.refreshUrl, {
        method: 'POST',
        headers: { Authorization: `Bearer ${this.token}` },
        credentials: 'omit',
      });
    } catch (err) {
      this._schedule(RETRY_MS);
      throw err;
    }
    if (response.status === 401) {
      this.ended = true;
      this.stop();
      const body = await response.json().catch(() => ({}));
      this.emit('ended', { reason: body.error || 'session ended' });
      throw new Error(body.error || 'session ended');
    }
    if (!response.ok) {
      this._schedule(RETRY_MS);
      throw new Error(`token refresh failed: HTTP ${response.status}`);
    }
    const body = await response.json();
    this.token = body.token;
    this.ttlMs = body.ttl_seconds * 1000;
    this.issuedAt = this._now();
    this._schedule(this.ttlMs * (1 - REFRESH_AT));
    this.emit('token', this.token);
    return this.token;
  }

  /** @param {number} ms */
  _schedule(ms) {
    this.stop();
    this._timer = this._setTimeout(() => {
      this._timer = null;
      this.refresh().catch(() => {});
    }, ms);
  }
}

/** The ZAF event a sidebar instance sends the top-bar instance. */
export const VIEWING_EVENT = 'switchboard.viewing';

/** The ZAF event the background instance forwards Zendesk's `voice.dialout` as. */
export const DIAL_OUT_EVENT = 'switchboard.dialout';

/** How long after a click its second delivery (direct, or forwarded) may still arrive. */
export const SAME_CLICK_MS = 2000;

/** @param {any} v @returns {number|null} */
function positive(v) {
  const n = Number(v);
  return Number.isInteger(n) && n > 0 ? n : null;
}

/**
 * A number as Connect dials it (E.164): Zendesk hands a number as the profile shows it, so the
 * spaces, dots, brackets and dashes people type are dropped and a `00` international prefix
 * becomes `+`.
 * @param {string} number
 */
export function dialableNumber(number) {
  return String(number).replace(/[\s.()-]/g, '').replace(/^00/, '+');
}

/** Why Streams says a request failed (an Error, or Connect's JSON error text). @param {any} err */
function failureText(err) {
  if (err instanceof Error) return err.message;
  try {
    return JSON.parse(err).message || String(err);
  } catch {
    return String(err);
  }
}

/**
 * The one unfinished contact this tab owns, if there is exactly one.
 * @param {SwitchboardClient} client
 * @returns {string|null}
 */
function soleContact(client) {
  const open = client.owned().filter((/** @type {any} */ c) => c.state !== 'destroyed');
  return open.length === 1 ? open[0].contact_id : null;
}

/**
 * Send an event to the app's top-bar instance in this Zendesk window (ZAF's instances API: the
 * app's instances are separate frames that share nothing but these messages).
 * @param {any} zaf a ZAF client
 * @param {string} name
 * @param {any} data
 * @returns {Promise<number>} how many top-bar instances were told (0: the app has none)
 */
export async function tellTopBar(zaf, name, data) {
  const { instances } = await zaf.get('instances');
  let told = 0;
  for (const [guid, instance] of Object.entries(instances || {})) {
    if (/** @type {any} */ (instance).location !== 'top_bar') continue;
    zaf.instance(guid).trigger(name, data);
    told += 1;
  }
  return told;
}

/**
 * The app in a ticket or user sidebar: tells the top-bar instance what the agent has open,
 * whenever this sidebar is shown (ZAF `app.activated`).
 * @param {any} zaf a ZAF client
 */
export async function startSidebar(zaf) {
  const tell = async () => {
    const context = await zaf.context();
    /** @type {{ticketId: number|null, userId: number|null}} */
    let viewing;
    if (context.location === 'ticket_sidebar') {
      const data = await zaf.get(['ticket.id', 'ticket.requester.id']);
      viewing = { ticketId: positive(data['ticket.id']), userId: positive(data['ticket.requester.id']) };
    } else {
      const data = await zaf.get('user.id');
      viewing = { ticketId: null, userId: positive(data['user.id']) };
    }
    await tellTopBar(zaf, VIEWING_EVENT, viewing);
    return viewing;
  };
  zaf.on('app.activated', () => {
    tell().catch(() => {});
  });
  return tell();
}

/**
 * The app in Zendesk's `background` location (loaded with Zendesk, never shown): forwards each
 * `voice.dialout` to the top-bar instance as `DIAL_OUT_EVENT`, unchanged. Zendesk documents that
 * event for the background location; the top bar, which holds the CCP, dials it. A click it
 * cannot forward (ZAF failed, or the app has no top bar here) is shown as a Zendesk error.
 * @param {any} zaf a ZAF client
 */
export function startBackground(zaf) {
  const host = new ZendeskHost(zaf);
  const unforwarded = () =>
    host.notify({
      level: 'error',
      code: 'dial_out',
      text: "Switchboard could not pass the number to its panel: open the panel and dial it on the CCP's number pad.",
    });
  zaf.on('voice.dialout', (/** @type {any} */ e) => {
    tellTopBar(zaf, DIAL_OUT_EVENT, e).then((told) => told || unforwarded(), unforwarded);
  });
}

/**
 * Dial each click-to-dial click once, on the top bar. The same click may reach the top bar
 * twice, in either order and moments apart: forwarded by the background instance
 * (`DIAL_OUT_EVENT`) and, if Zendesk delivers `voice.dialout` to the top bar too, directly. A
 * click equal to one dialled (same number, user and ticket) less than `SAME_CLICK_MS` before is
 * that click again and is dropped (so is a double click on a number).
 * @param {any} zaf the top-bar instance's ZAF client
 * @param {(e: {number?: string, userId?: any, ticketId?: any}) => void} dial
 * @param {() => number} [now]
 */
export function onClickToDial(zaf, dial, now = Date.now) {
  /** @type {Map<string, number>} each click dialled in the last SAME_CLICK_MS, and when */
  const recent = new Map();
  const once = (/** @type {any} */ e) => {
    const click = e || {};
    const key = JSON.stringify([String(click.number ?? ''), positive(click.userId), positive(click.ticketId)]);
    const t = now();
    for (const [seen, at] of recent) if (t - at >= SAME_CLICK_MS) recent.delete(seen);
    if (recent.has(key)) return;
    recent.set(key, t);
    dial(click);
  };
  zaf.on('voice.dialout', once);
  zaf.on(DIAL_OUT_EVENT, once);
}

/** @param {AppConfig} config @param {any} connect @param {HTMLElement|null} container @param {boolean} softphone */
function initCcp(config, connect, container, softphone) {
  if (!container || !connect || !connect.core || typeof connect.core.initCCP !== 'function') return;
  connect.core.initCCP(container, {
    ccpUrl: `${config.connectInstanceUrl.replace(/\/$/, '')}/ccp-v2/`,
    loginPopup: true,
    loginPopupAutoClose: true,
    softphone: { allowFramedSoftphone: softphone, disableRingtone: !softphone },
  });
}

/**
 * The Streams `connect` global and the page's token keeper.
 * @param {AppConfig} config
 * @param {{connect?: any, fetch?: typeof fetch}} env
 */
function common(config, env) {
  const connect = env.connect || /** @type {any} */ (globalThis).connect;
  const tokens = new TokenKeeper({
    token: config.token,
    ttlSeconds: config.tokenTtlSeconds,
    refreshUrl: config.refreshUrl,
    fetch: env.fetch,
  });
  return { connect, tokens };
}

/**
 * Start the embedded page.
 * @param {AppConfig} config
 * @param {{connect?: any, ZAFClient?: any, container?: HTMLElement|null, fetch?: typeof fetch,
 *   openMedia?: (url: string) => void}} [env]
 */
export function startApp(config, env = {}) {
  const { connect, tokens } = common(config, env);
  const zafApi = env.ZAFClient || /** @type {any} */ (globalThis).ZAFClient;
  const zaf = zafApi ? zafApi.init() : null;
  // The installation's media-less setting, sent in `hello`: the daemon keeps the agent's
  // media state (and the gate) in step with the page's CCP.
  const client = new SwitchboardClient({ url: config.wsUrl, tokenProvider: () => tokens.fresh(), mediaLess: config.mediaLess });
  const host = zaf ? new ZendeskHost(zaf) : new RecordingHost();
  bindHost(client, host);
  tokens.on('ended', (/** @type {any} */ e) =>
    host.notify({ level: 'warning', code: 'session_ended', text: `Switchboard: ${e.reason}` }),
  );
  initCcp(config, connect, env.container || null, !config.mediaLess);
  const adapter = new StreamsAdapter({ connect, client }).start();
  const gate = new MediaGate({ connect }).start().attach(client);
  /** @type {{ticketId: number|null, userId: number|null}} what the agent has open in Zendesk */
  const viewing = { ticketId: null, userId: null };
  if (zaf) {
    zaf.on(VIEWING_EVENT, (/** @type {any} */ v) => {
      viewing.ticketId = positive(v && v.ticketId);
      viewing.userId = positive(v && v.userId);
    });
    onClickToDial(zaf, (e) => dialOut(e));
  }
  /** Click-to-dial (see the module docs). @param {{number?: string, userId?: any, ticketId?: any}} e */
  const dialOut = (e) => {
    const refuse = (/** @type {string} */ text) => host.notify({ level: 'error', code: 'dial_out', text });
    const number = e.number ? dialableNumber(e.number) : '';
    if (!number) return refuse("Zendesk gave no number to call: dial it on the CCP's number pad.");
    if (!adapter.agent) return refuse('The CCP is not signed in to Amazon Connect yet: sign in, then call again.');
    const ticketId = positive(e.ticketId);
    const userId = positive(e.userId);
    adapter.expectOutbound(ticketId ? { kind: 'ticket', id: ticketId } : userId ? { kind: 'user', id: userId } : null);
    adapter.agent.connect(connect.Endpoint.byPhoneNumber(number), {
      failure: (/** @type {any} */ err) => {
        adapter.expectOutbound(null);
        refuse(`Amazon Connect could not call ${number}: ${failureText(err)}`);
      },
    });
    return undefined;
  };
  /** Open the media CCP page in its own window with a one-time link. */
  const openMedia = async () => {
    const response = await fetch(config.mediaLinkUrl, {
      method: 'POST',
      headers: { Authorization: `Bearer ${await tokens.fresh()}` },
      credentials: 'omit',
    });
    if (!response.ok) throw new Error(`media link refused: HTTP ${response.status}`);
    const { url } = await response.json();
    (env.openMedia || ((/** @type {string} */ u) => globalThis.open(u, 'switchboard-media')))(url);
    return url;
  };
  /**
   * An owner command on the contact this tab is handling (the given one, else the only
   * unfinished contact it owns), for what the agent has open in Zendesk.
   * @param {'attach_to_current'|'create_ticket'} name
   * @param {string} [contactId]
   */
  const onScreen = (name, contactId) => {
    const id = contactId || soleContact(client);
    if (!id) throw new Error('no contact of yours to attach: pick one');
    if (name === 'attach_to_current') {
      if (!viewing.ticketId) throw new Error('open the ticket to attach the contact to');
      return client.command(name, id, { ticket_id: viewing.ticketId });
    }
    return client.command(name, id, viewing.userId ? { user_id: viewing.userId } : {});
  };
  const attachToCurrent = (/** @type {string|undefined} */ contactId) => onScreen('attach_to_current', contactId);
  const createTicket = (/** @type {string|undefined} */ contactId) => onScreen('create_ticket', contactId);
  tokens.start();
  client.start();
  return { client, host, adapter, gate, tokens, zaf, connect, openMedia, viewing, attachToCurrent, createTicket, dialOut };
}

/**
 * Start the media CCP page (media-less mode): the CCP that carries the audio, reporting its
 * readiness to the daemon.
 * @param {AppConfig} config
 * @param {{connect?: any, container?: HTMLElement|null, fetch?: typeof fetch}} [env]
 */
export function startMediaPage(config, env = {}) {
  const { connect, tokens } = common(config, env);
  initCcp(config, connect, env.container || null, true);
  const media = new MediaCcp({ clientOptions: { url: config.wsUrl, tokenProvider: () => tokens.fresh() }, connect });
  tokens.start();
  media.start();
  return { media, client: media.client, tokens, connect };
}
