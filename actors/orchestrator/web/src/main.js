// The orchestrator's web UI: the swarm list (#/) and one swarm
// (#/swarms/<id>). Data comes from the orchestrator's REST API (polled every
// few seconds) and, live, from the controllers' status-deltas, alerts and
// outcomes over web-STOMP as the read-only user the orchestrator names in
// /api/ui-config. Without that configuration the page still works, from the
// API alone.
import './style.css';
import { api, ApiError } from './api.js';
import { ListView } from './list.js';
import { Live } from './live.js';
import { Store } from './store.js';
import { SwarmView } from './swarm.js';
import { h, setClass, setText, validId } from './util.js';

const POLL_MS = 3000;
const POLL_HIDDEN_MS = 15000;
const AUTO_REFRESH_MS = 10000; // at most one automatic refresh per 10 s per page
const LIVE_WINDOW_MS = 15000; // a delta within this: "live"
const OUTCOME_POLL_MS = 2000;
const OUTCOME_TIMEOUT_MS = 60000;

const app = {
  store: new Store(),
  live: null,
  liveState: 'off',
  view: null,
  route: null,
  commands: new Map(), // swarm id -> the last command issued from this page
  pendingByCid: new Map(), // correlationId -> command
  fullRequested: new Map(), // swarm id -> when a status-full was last asked for
  lastAutoRefresh: 0,
  pollTimer: 0,
  polling: false,

  liveText(s) {
    if (this.liveState !== 'live') return this.liveState === 'off' ? 'polling' : 'offline';
    if (s.deltaAt && Date.now() - s.deltaAt < LIVE_WINDOW_MS) return '● live';
    return '○ quiet';
  },
  liveClass(s) {
    return this.liveState === 'live' && s.deltaAt && Date.now() - s.deltaAt < LIVE_WINDOW_MS ? 'live' : 'muted';
  },

  // Asks the swarm's controller for a status-full (its worker list), once
  // per 10 s per swarm unless the person asked.
  async requestFull(id, asked) {
    const last = this.fullRequested.get(id) || 0;
    if (!asked && Date.now() - last < AUTO_REFRESH_MS) return;
    this.fullRequested.set(id, Date.now());
    try {
      await api.command(id, 'status-request');
      schedulePoll(1000);
    } catch (e) {
      if (asked) notice(`Could not ask for ${id}'s worker list: ${e.message}`, 'bad');
    }
  },

  async command(id, cmd) {
    const signal = `swarm-${cmd}`;
    const c = { swarm: id, signal, state: 'sending', cid: null, status: null, via: null, at: Date.now() };
    this.commands.set(id, c);
    this.store.emit('command', id);
    try {
      const r = await api.command(id, cmd);
      c.cid = r.correlationId;
      c.state = 'pending';
      this.pendingByCid.set(c.cid, c);
      // The outcome normally arrives over STOMP first; the API is asked too,
      // in case live updates are off or the message was missed.
      this.pollOutcome(c);
    } catch (e) {
      c.state = 'failed';
      c.error = e.message;
    }
    this.store.emit('command', id);
  },

  resolve(c, env, via) {
    if (c.state !== 'pending') return;
    c.state = 'done';
    c.status = (env.data && env.data.status) || '?';
    c.via = via;
    c.doneAt = Date.now();
    this.pendingByCid.delete(c.cid);
    this.store.emit('command', c.swarm);
    // The workers changed (enabled, tps): their list is a status-full, which
    // the controller sends after swarm-start but not after swarm-stop. Every
    // page reads the orchestrator's copy, so one request serves them all.
    this.requestFull(c.swarm, true);
    schedulePoll(200); // the status changed: fetch the projection soon
  },

  async pollOutcome(c) {
    while (c.state === 'pending') {
      await sleep(OUTCOME_POLL_MS);
      if (c.state !== 'pending') return;
      try {
        const r = await api.outcome(c.swarm, c.cid);
        if (r.status === 200 && r.data) this.resolve(c, r.data, 'API');
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 0) {
          c.state = 'failed';
          c.error = e.message;
          this.store.emit('command', c.swarm);
          return;
        }
      }
      if (c.state === 'pending' && Date.now() - c.at > OUTCOME_TIMEOUT_MS) {
        c.state = 'failed';
        c.error = `no outcome within ${OUTCOME_TIMEOUT_MS / 1000} s (correlationId ${c.cid})`;
        this.pendingByCid.delete(c.cid);
        this.store.emit('command', c.swarm);
      }
    }
  },
};

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// ---- notices and the header ---------------------------------------------------

const noticeEl = document.getElementById('notice');
const liveEl = document.getElementById('live-state');
const crumbs = document.getElementById('crumbs');
const refreshBtn = document.getElementById('refresh-all');

function notice(text, kind) {
  if (!text) {
    noticeEl.hidden = true;
    return;
  }
  noticeEl.hidden = false;
  setClass(noticeEl, `notice ${kind || ''}`);
  setText(noticeEl, text);
}

function setLive(state, detail) {
  app.liveState = state;
  const label = { live: 'live', connecting: 'connecting…', closed: 'reconnecting…', error: 'live updates failing', off: 'no live updates' }[state] || state;
  setText(liveEl, label);
  setClass(liveEl, `pill ${state === 'live' ? 'good' : state === 'off' || state === 'connecting' ? '' : 'bad'}`);
  liveEl.title = detail || '';
  liveEl.dataset.state = state;
  if (app.view && app.view.tick) app.view.tick();
}

let refreshNoticeTimer = 0;
async function refresh(auto) {
  try {
    const r = await api.refresh();
    app.lastAutoRefresh = Date.now();
    const text = r.throttled
      ? 'Refresh: another refresh ran less than 2 s ago (throttled); its snapshots are on their way.'
      : `Refresh: asked ${r.signalsPublished} swarm controller(s) for a status-full${auto ? ' (the projection was incomplete)' : ''}.`;
    notice(text, 'info');
    clearTimeout(refreshNoticeTimer);
    refreshNoticeTimer = setTimeout(() => notice(null), 6000);
    schedulePoll(1500);
  } catch (e) {
    notice(`Refresh failed: ${e.message}`, 'bad');
  }
}

// An incomplete projection (no status-full yet, or no workers): one
// refresh, at most every AUTO_REFRESH_MS per page.
function maybeAutoRefresh(incomplete) {
  if (!incomplete || Date.now() - app.lastAutoRefresh < AUTO_REFRESH_MS) return;
  app.lastAutoRefresh = Date.now();
  refresh(true);
}

refreshBtn.addEventListener('click', () => refresh(false));

// ---- routing ------------------------------------------------------------------

function parseRoute() {
  const m = /^#\/swarms\/([^/?#]+)/.exec(location.hash);
  if (m) {
    const id = decodeURIComponent(m[1]);
    return validId(id) ? { name: 'swarm', id } : { name: 'bad', id };
  }
  return { name: 'list' };
}

function render() {
  const route = parseRoute();
  app.route = route;
  const main = document.getElementById('app');
  crumbs.replaceChildren();
  if (route.name === 'swarm') {
    app.view = new SwarmView(app, route.id);
    crumbs.append(h('a', { href: '#/' }, 'swarms'), ' / ', h('span', null, route.id));
    document.title = `${route.id} · PocketHive`;
  } else if (route.name === 'bad') {
    app.view = null;
    main.replaceChildren(h('p', { class: 'notice bad' }, `'${route.id}' is not a swarm id ([A-Za-z0-9_-] only).`),
      h('p', null, h('a', { href: '#/' }, 'Back to the swarms')));
    return;
  } else {
    app.view = new ListView(app);
    document.title = 'PocketHive swarms';
  }
  main.replaceChildren(app.view.el);
  app.view.update('list');
  if (route.name === 'swarm') {
    app.view.update('swarm', route.id);
    // Entering the swarm view: the controller's current worker list
    // (CONTRACT §7), not only the orchestrator's latest copy.
    app.requestFull(route.id, false);
  }
  subscribe();
  schedulePoll(0);
}

function subscribe() {
  if (app.live && app.view) app.live.setSwarms(app.view.swarmIds());
}

window.addEventListener('hashchange', render);

app.store.listen((what, id) => {
  if (app.view) app.view.update(what, id);
  if (what === 'list' && app.route && app.route.name === 'list') subscribe();
});

// ---- polling ------------------------------------------------------------------

function schedulePoll(ms) {
  clearTimeout(app.pollTimer);
  app.pollTimer = setTimeout(poll, ms);
}

async function poll() {
  if (app.polling) return schedulePoll(200);
  app.polling = true;
  const route = app.route || { name: 'list' };
  try {
    if (route.name === 'swarm') {
      try {
        const s = await api.swarm(route.id);
        app.store.setSwarm(s, Date.now());
        const desired = s.totals && typeof s.totals.desired === 'number' ? s.totals.desired : 1;
        maybeAutoRefresh(!s.complete || !Array.isArray(s.workers) || (s.workers.length === 0 && desired > 0));
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) {
          app.store.forget(route.id);
          app.store.listed = true;
          if (app.view) app.view.update('gone', route.id);
        } else throw e;
      }
    } else if (route.name === 'list') {
      const list = await api.swarms();
      app.store.setList(list, Date.now());
      maybeAutoRefresh(list.some((s) => !s.complete));
    }
    if (noticeEl.dataset.source === 'poll') {
      noticeEl.dataset.source = '';
      notice(null);
    }
  } catch (e) {
    notice(`Cannot read the orchestrator's API: ${e.message}. Retrying.`, 'bad');
    noticeEl.dataset.source = 'poll';
  } finally {
    app.polling = false;
    schedulePoll(document.hidden ? POLL_HIDDEN_MS : POLL_MS);
  }
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden) schedulePoll(0);
});

setInterval(() => {
  if (app.view && app.view.tick) app.view.tick();
}, 1000);

// ---- live updates -------------------------------------------------------------

async function startLive() {
  let cfg;
  try {
    cfg = await api.uiConfig();
  } catch (e) {
    setLive('off', e.status === 404
      ? 'the orchestrator runs without observer credentials: the page polls the API'
      : `no UI configuration (${e.message}): the page polls the API`);
    return;
  }
  if (!cfg || !cfg.stompUrl || !cfg.login || !cfg.passcode) {
    setLive('off', 'incomplete UI configuration: the page polls the API');
    return;
  }
  app.live = new Live(cfg, {
    state: (state, detail) => {
      setLive(state, detail);
      if (state === 'live') subscribe();
    },
    delta: (env) => app.store.applyDelta(env, Date.now()),
    outcome: (env) => {
      app.store.addFeed('outcome', env, Date.now());
      const c = app.pendingByCid.get(env.correlationId);
      if (c) app.resolve(c, env, 'STOMP');
    },
    alert: (env) => app.store.addFeed('alert', env, Date.now()),
  });
  window.phLive = app.live; // for the curious: phLive.destinations() in the console
  app.live.start();
  subscribe();
}

setLive('connecting', 'reading /api/ui-config');
render();
startLive();
