// Zendesk's side of the app iframe for tests/browser/test_streams_app.py: the ZAF SDK
// (normally from Zendesk's CDN) replaced by a recorder of what the app asks Zendesk to do.
window.ZAFClient = { init() {
  const zaf = window.zaf = { notices: [], routes: [], handlers: {},
    invoke(name, ...args) {
      if (name === 'notify') zaf.notices.push({ text: args[0], kind: args[1] });
      if (name === 'routeTo') zaf.routes.push({ target: args[0], id: Number(args[1]) });
      return Promise.resolve({});
    },
    on(name, fn) { (zaf.handlers[name] = zaf.handlers[name] || []).push(fn); },
    get() { return Promise.resolve({}); },
    fire(name, data) { (zaf.handlers[name] || []).forEach((fn) => fn(data)); },
  };
  return zaf;
} };
