// The swarm list (#/): one row per swarm the orchestrator knows, from
// GET /api/swarms, kept live by the controllers' deltas.
import { FeedView } from './feed.js';
import { KeyedTable } from './table.js';
import { fmtAge, fmtInt, h, healthClass, ioClass, statusClass } from './util.js';

export class ListView {
  constructor(app) {
    this.app = app;
    const st = app.store;
    const tot = (k) => (s) => fmtInt(s.totals ? s.totals[k] : undefined);
    this.table = new KeyedTable([
      { title: 'swarm', get: (s) => s.id, href: (s) => `#/swarms/${s.id}` },
      { title: 'status', get: (s) => s.status ?? '–', cls: (s) => statusClass(s.status) },
      { title: 'state', get: (s) => s.state ?? '–', cls: (s) => statusClass(s.state) },
      { title: 'health', get: (s) => s.health ?? '–', cls: (s) => healthClass(s.health) },
      { title: 'desired', num: true, get: tot('desired') },
      { title: 'healthy', num: true, get: tot('healthy') },
      { title: 'running', num: true, get: tot('running') },
      { title: 'enabled', num: true, get: tot('enabled') },
      { title: 'tps', num: true, get: (s) => fmtInt(s.tps) },
      { title: 'input', get: (s) => io(s, 'input'), cls: (s) => ioClass(io(s, 'input')) },
      { title: 'output', get: (s) => io(s, 'output'), cls: (s) => ioClass(io(s, 'output')) },
      { id: 'age', title: 'heartbeat', num: true, help: 'time since the controller last reported',
        get: (s) => fmtAge(st.heartbeatAge(s, Date.now())) },
      { id: 'live', title: 'live', get: (s) => app.liveText(s), cls: (s) => app.liveClass(s) },
    ], { key: (s) => s.id, rowTestId: 'swarm-row', testid: 'swarm-table',
      empty: 'No swarm has reported yet. A swarm appears when its controller\'s status reaches the orchestrator.' });
    this.feed = new FeedView(st, null);
    this.el = h('div', { class: 'view list-view' },
      h('section', null, h('h1', null, 'Swarms'), this.table.el),
      h('section', null, h('h2', null, 'Alerts and outcomes'), this.feed.el));
  }

  // Every listed swarm's deltas (the list shows them all).
  swarmIds() {
    return [...this.app.store.swarms.keys()];
  }

  update(what) {
    if (what === 'feed') {
      this.feed.update();
      return;
    }
    this.table.update([...this.app.store.swarms.values()].sort((a, b) => (a.id < b.id ? -1 : 1)));
  }

  tick() {
    this.table.refreshCells(['age', 'live']);
  }
}

function io(s, k) {
  return s.ioState && s.ioState.work ? s.ioState.work[k] : undefined;
}
