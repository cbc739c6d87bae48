/**
 * The host: what the CRM page around the embedded CCP does when the daemon says so.
 *
 * A host is any object with
 *   pop({target, id, query, contactId})  open a user / ticket, or start a search
 *   notify({level, code, text, contactId}) show a notification (level info|warning|urgent|
 *                                          error; an unknown level: as info)
 *   warn(text|null)                        show (or clear, with null) the standing warning
 * `ZendeskHost` implements it with the Zendesk Apps Framework (ZAF) client; other CRMs plug
 * in their own object. `bindHost(client, host)` wires a SwitchboardClient to a host: only
 * the owner gets pops and notifications, each at most once, so the host can just act; the
 * owner is also shown each warning of its contacts (invalid attribute values) once, as a
 * `warning` notification with code `invalid_attribute`.
 * @module zendesk-host
 */

import { mediaWarning } from './switchboard.js';

/**
 * @typedef {{target: 'user'|'ticket'|'search', id?: number, query?: string, contactId?: string,
 *   pos?: {epoch: string, seq: number}}} PopRequest  (pos: the stream position, for logs)
 * @typedef {{level: 'info'|'warning'|'urgent'|'error', code: string, text: string, contactId?: string,
 *   pos?: {epoch: string, seq: number}}} Notice
 * @typedef {{pop(p: PopRequest): any, notify(n: Notice): any, warn(text: string|null): any}} Host
 */

/** ZAF notification kinds by protocol level (`error`: a refusal or failure the agent must act
 *  on; `urgent`: act now, e.g. the media CCP dropped during a call). */
const ZAF_KIND = Object.freeze({ info: 'notice', warning: 'alert', urgent: 'error', error: 'error' });

export class ZendeskHost {
  /**
   * @param {{invoke: (name: string, ...args: any[]) => any}} zafClient `ZAFClient.init()`
   * @param {{search?: (client: any, query: string) => any}} [options]
   *   search: how to open a search (ZAF has no route to the search page; the default
   *   notifies the agent with what to search for, as the original app did)
   */
  constructor(zafClient, options = {}) {
    this.client = zafClient;
    this.search = options.search;
    /** @type {string|null} */
    this._warning = null;
  }

  /** @param {PopRequest} request */
  pop(request) {
    const { target, id, query } = request;
    if ((target === 'user' || target === 'ticket') && id) {
      return this.client.invoke('routeTo', target, id);
    }
    if (target === 'search' && query) {
      if (this.search) return this.search(this.client, query);
      return this.client.invoke('notify', `Search Zendesk for: ${query}`, 'notice', { sticky: true });
    }
    return undefined;
  }

  /** @param {Notice} notice */
  notify(notice) {
    const kind = /** @type {Record<string, string>} */ (ZAF_KIND)[notice.level] || 'notice';
    const options = kind === 'notice' ? {} : { sticky: true };
    return this.client.invoke('notify', notice.text, kind, options);
  }

  /** @param {string|null} text */
  warn(text) {
    if (text === this._warning) return undefined;
    this._warning = text;
    // ZAF notifications cannot be withdrawn: show a new warning, and say when it is over.
    if (text) return this.client.invoke('notify', text, 'alert', { sticky: true });
    return this.client.invoke('notify', 'Media CCP ready: calls have audio again.', 'notice');
  }
}

/** A host that only records what it was asked (tests, headless use). */
export class RecordingHost {
  constructor() {
    /** @type {PopRequest[]} */
    this.pops = [];
    /** @type {Notice[]} */
    this.notices = [];
    /** @type {(string|null)[]} */
    this.warnings = [];
  }
  /** @param {PopRequest} p */
  pop(p) {
    this.pops.push(p);
  }
  /** @param {Notice} n */
  notify(n) {
    this.notices.push(n);
  }
  /** @param {string|null} text */
  warn(text) {
    this.warnings.push(text);
  }
}

/**
 * Wire a client's pops, notifications and media warning to a host.
 * @param {{on: (name: string, fn: Function) => () => void, role?: string}} client
 * @param {Host} host
 * @returns {() => void} unbinds
 */
export function bindHost(client, host) {
  let warning = /** @type {string|null|undefined} */ (undefined);
  const off = [
    client.on('pop', (/** @type {any} */ m) => host.pop({ target: m.target, id: m.id, query: m.query, contactId: m.contact_id, pos: m.pos })),
    client.on('notify', (/** @type {any} */ m) => host.notify({ level: m.level, code: m.code, text: m.text, contactId: m.contact_id, pos: m.pos })),
    client.on('media', (/** @type {any} */ media) => {
      if (client.role === 'media') return;
      const text = mediaWarning(media);
      if (text === warning || (warning === undefined && text === null)) return;
      warning = text;
      host.warn(text);
    }),
    showContactWarnings(client, host),
  ];
  return () => off.forEach((fn) => fn());
}

/**
 * Show each warning of each contact this tab owns once (invalid attribute values: the contact
 * fell back to the default; the agent should know why). Once per page, and not again after a
 * reload: a warning the stored view of a contact this tab owned already carried was shown then.
 * A tab that takes a contact over (failover) shows its warnings, once.
 * @param {{on: (name: string, fn: Function) => () => void}} client
 * @param {Host} host
 * @returns {() => void} unbinds
 */
export function showContactWarnings(client, host) {
  /** @type {Set<string>} */
  const shown = new Set();
  return client.on('contact', (/** @type {any} */ e) => {
    const { contact, previous } = e;
    if (!e.owner || !contact || !Array.isArray(contact.warnings)) return;
    const before = previous && previous.owner_tab === contact.owner_tab && Array.isArray(previous.warnings) ? previous.warnings : [];
    for (const text of contact.warnings) {
      const key = `${contact.contact_id}\n${text}`;
      if (shown.has(key) || before.includes(text)) continue;
      shown.add(key);
      host.notify({ level: 'warning', code: 'invalid_attribute', text, contactId: contact.contact_id });
    }
  });
}
