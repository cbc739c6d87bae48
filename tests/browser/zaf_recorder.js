// Zendesk's side of the app iframe for tests/browser/test_streams_app.py: the ZAF SDK
// (normally from Zendesk's CDN) replaced by a recorder of what the app asks Zendesk to do.
// What Zendesk would answer (`context()`, `get(...)`) comes from `window.zendeskSays`, which a
// test sets before the page loads.
window.ZAFClient = { init() {
  const says = window.zendeskSays || {};
  const zaf = window.zaf = { notices: [], routes: [], triggered: [], handlers: {},
    invoke(name, ...args) {
      if (name === 'notify') zaf.notices.push({ text: args[0], kind: args[1] });
      if (name === 'routeTo') zaf.routes.push({ target: args[0], id: Number(args[1]) });
      return Promise.resolve({});
    },
    on(name, fn) { (zaf.handlers[name] = zaf.handlers[name] || []).push(fn); },
    context() { return Promise.resolve(says.context || { location: 'top_bar' }); },
    get(keys) {
      const wanted = Array.isArray(keys) ? keys : [keys];
      return Promise.resolve(Object.fromEntries(wanted.map((k) => [k, (says.data || {})[k]])));
    },
    instance(guid) {
      return { trigger(name, data) { zaf.triggered.push({ guid, name, data }); } };
    },
    fire(name, data) { (zaf.handlers[name] || []).forEach((fn) => fn(data)); },
  };
  return zaf;
} };
