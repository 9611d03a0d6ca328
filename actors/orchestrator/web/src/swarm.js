// One swarm (#/swarms/<id>): its aggregate (live from deltas), start/stop,
// the tps chart, the pipeline, the per-role summaries, the worker table
// from the orchestrator's copy of the controller's status-full, and the
// swarm's alerts and outcomes.
import { TpsChart } from './chart.js';
import { FeedView } from './feed.js';
import { renderPipeline, updatePipeline } from './pipeline.js';
import { KeyedTable } from './table.js';
import { fmtAge, fmtInt, fmtTime, h, healthClass, ioClass, setClass, setText, statusClass } from './util.js';

export class SwarmView {
  constructor(app, id) {
    this.app = app;
    this.id = id;
    this.pipelineKey = null;
    this.f = {}; // fact elements by name
    const fact = (name, label, testid) => {
      this.f[name] = h('dd', { 'data-testid': testid || null }, '–');
      return h('div', null, h('dt', null, label), this.f[name]);
    };
    this.status = h('span', { class: 'badge', 'data-testid': 'swarm-status' }, '…');
    this.state = h('span', { class: 'badge', 'data-testid': 'swarm-state' }, '…');
    this.health = h('span', { class: 'badge', 'data-testid': 'swarm-health' }, '…');
    this.btnStart = h('button', { type: 'button', 'data-testid': 'btn-start', onclick: () => this.command('start') }, 'Start');
    this.btnStop = h('button', { type: 'button', 'data-testid': 'btn-stop', onclick: () => this.command('stop') }, 'Stop');
    this.result = h('span', { class: 'command-result', 'data-testid': 'command-result', 'data-state': 'none' });
    this.missing = h('p', { class: 'notice warn', hidden: true });
    this.chart = new TpsChart();
    this.pipelineBox = h('div');
    this.roles = new KeyedTable([
      { title: 'role', get: (r) => r.role },
      { title: 'workers', num: true, get: (r) => fmtInt(r.count) },
      { title: 'desired', num: true, get: (r) => fmtInt(r.desired) },
      { title: 'enabled', num: true, get: (r) => fmtInt(r.enabled) },
      { title: 'tps', num: true, get: (r) => fmtInt(r.tps) },
    ], { key: (r) => r.role, rowTestId: 'role-row', testid: 'role-table', empty: 'no per-role summary yet' });
    this.workers = new KeyedTable([
      { title: 'role', get: (w) => w.role },
      { title: 'instance', get: (w) => w.instance },
      { title: 'host', help: 'where the worker runs (location)', get: (w) => w.location || '' },
      { title: 'via', help: 'how its status reaches the controller: shm (same host), relay (a ph-relay on its host), amqp (it speaks the contract itself)',
        get: (w) => w.transport || '', cls: (w) => (w.transport && w.transport !== 'shm' ? 'muted' : '') },
      { title: 'enabled', get: (w) => (w.enabled ? 'yes' : 'no'), cls: (w) => (w.enabled ? 'on' : 'off') },
      { title: 'tps', num: true, get: (w) => fmtInt(w.tps) },
      { title: 'input', get: (w) => wio(w, 'input'), cls: (w) => ioClass(wio(w, 'input')) },
      { title: 'output', get: (w) => wio(w, 'output'), cls: (w) => ioClass(wio(w, 'output')) },
      { title: 'stale', get: (w) => (w.dead ? 'dead' : w.stale ? 'stale' : 'no'),
        cls: (w) => (w.dead || w.stale ? 'st-bad' : 'muted') },
      { title: 'last seen', num: true, help: 'lastSeenAt in the controller\'s status-full',
        get: (w) => seenAt(w) },
    ], { key: (w) => `${w.role}\u0000${w.instance}`, signature: workerSig, rowTestId: 'worker-row', testid: 'worker-table',
      className: 'workers', rowClass: (w) => (w.dead ? 'dead' : w.stale ? 'stale' : ''),
      empty: 'No worker list yet: it comes from the controller\'s status-full.' });
    this.workerCount = h('span', { class: 'muted', 'data-testid': 'worker-count' });
    this.snapshot = h('span', { class: 'muted small', 'data-testid': 'worker-snapshot' });
    this.btnFull = h('button', { type: 'button', 'data-testid': 'btn-status-request',
      title: 'POST /api/swarms/{id}/status-request: the controller sends a fresh status-full',
      onclick: () => this.app.requestFull(this.id, true) }, 'Update worker list');
    const filter = h('input', { type: 'search', placeholder: 'filter workers (role, instance, state…)',
      'aria-label': 'filter workers', oninput: (e) => {
        this.workers.setFilter(e.target.value.trim());
        this.countWorkers();
      } });
    this.feed = new FeedView(app.store, id);
    this.el = h('div', { class: 'view swarm-view', 'data-swarm': id },
      h('div', { class: 'title-row' },
        h('h1', null, id), this.status, this.state, this.health,
        h('div', { class: 'actions' }, this.btnStart, this.btnStop, this.result)),
      this.missing,
      h('dl', { class: 'facts' },
        fact('tps', 'tps', 'swarm-tps'), fact('totals', 'workers'), fact('io', 'ioState'),
        fact('age', 'heartbeat'), fact('live', 'live', 'swarm-live'), fact('enabled', 'work enabled'),
        fact('controller', 'controller'), fact('complete', 'worker list'), fact('journal', 'journal run'),
        fact('scenario', 'scenario')),
      h('div', { class: 'two-col' },
        h('section', null, h('h2', null, 'tps, last 5 minutes'), this.chart.el),
        h('section', null, h('h2', null, 'Roles'), this.roles.el)),
      h('section', null, h('h2', null, 'Pipeline'), this.pipelineBox),
      h('section', null, h('div', { class: 'section-head' }, h('h2', null, 'Workers'), this.workerCount,
        this.snapshot, filter, this.btnFull),
        h('div', { class: 'scroll' }, this.workers.el)),
      h('section', null, h('h2', null, 'Alerts and outcomes'), this.feed.el));
  }

  swarmIds() {
    return [this.id];
  }

  command(cmd) {
    this.app.command(this.id, cmd);
  }

  update(what, id) {
    if (what === 'feed') {
      this.feed.update();
      return;
    }
    if (id && id !== this.id && what !== 'list') return;
    const s = this.app.store.swarms.get(this.id);
    if (what === 'command' || what === 'swarm' || what === 'delta' || what === 'list') this.renderCommand();
    if (!s) {
      this.missing.hidden = false;
      setText(this.missing, this.app.store.listed || what === 'gone'
        ? `The orchestrator does not know swarm ${this.id} (removed, or not reported yet).`
        : 'Loading…');
      return;
    }
    this.missing.hidden = true;
    this.renderHead(s);
    this.chart.set(this.app.store.tps.get(this.id));
    // The worker list changes only with a new status-full (fullAt).
    const workers = Array.isArray(s.workers) ? s.workers : [];
    if (what === 'swarm' && (!s.fullAt || s.fullAt !== this.shownFullAt || workers.length !== this.workers.rows.size)) {
      this.shownFullAt = s.fullAt;
      this.workers.update(workers.slice().sort(byRoleInstance));
      this.countWorkers();
    }
  }

  renderHead(s) {
    setText(this.status, s.status ?? '?');
    setClass(this.status, `badge ${statusClass(s.status)}`);
    setText(this.state, s.state ?? '?');
    setClass(this.state, `badge ${statusClass(s.state)}`);
    setText(this.health, s.health ?? '?');
    setClass(this.health, `badge ${healthClass(s.health)}`);
    const t = s.totals || {};
    setText(this.f.tps, fmtInt(s.tps));
    setText(this.f.totals, `${fmtInt(t.running)} running · ${fmtInt(t.healthy)} healthy · ${fmtInt(t.desired)} desired · ${fmtInt(t.enabled)} enabled`);
    const w = (s.ioState && s.ioState.work) || {};
    setText(this.f.io, `in ${w.input ?? '–'} · out ${w.output ?? '–'}`);
    setClass(this.f.io, ioClass(w.input) === 'io-ok' && ioClass(w.output) === 'io-ok' ? '' : 'io-warn');
    setText(this.f.enabled, s.workEnabled === true ? 'yes' : s.workEnabled === false ? 'no' : '–');
    setText(this.f.controller, s.controller ?? '–');
    setText(this.f.complete, s.complete ? `from the controller's status-full (${fmtInt((s.workers || []).length)} workers)`
      : 'incomplete: no status-full yet (a refresh was asked for)');
    setText(this.f.journal, (s.journal && s.journal.runId) || '–');
    setText(this.f.scenario, scenarioText(s.scenario));
    this.tick();
    const roles = s.roles && typeof s.roles === 'object' ? s.roles : {};
    this.roles.update(Object.entries(roles).map(([role, r]) => ({ role, ...r })));
    // Redrawn when its shape changes; the numbers in the boxes are updated
    // in place on every delta.
    const key = JSON.stringify([s.queues || [], Object.keys(roles)]);
    if (key !== this.pipelineKey) {
      this.pipelineKey = key;
      this.pipelineBox.replaceChildren(renderPipeline(s.queues || [], roles));
    } else {
      updatePipeline(this.pipelineBox, roles);
    }
  }

  renderCommand() {
    const c = this.app.commands.get(this.id);
    const busy = c && (c.state === 'sending' || c.state === 'pending');
    this.btnStart.disabled = !!busy;
    this.btnStop.disabled = !!busy;
    if (!c) return;
    this.result.dataset.state = c.state;
    this.result.dataset.signal = c.signal;
    this.result.dataset.cid = c.cid || '';
    this.result.dataset.status = c.status || '';
    let text;
    if (c.state === 'sending') text = `sending ${c.signal}…`;
    else if (c.state === 'pending') text = `${c.signal} sent (${short(c.cid)}): waiting for the outcome…`;
    else if (c.state === 'done') text = `${c.signal} → ${c.status} (${fmtTime(c.doneAt)}, via ${c.via})`;
    else text = `${c.signal}: ${c.error}`;
    setText(this.result, text);
    setClass(this.result, `command-result ${c.state === 'failed' || /fail/i.test(c.status || '') ? 'bad' : c.state === 'done' ? 'good' : ''}`);
  }

  // The worker list is the controller's status-full as of fullAt: its tps
  // and last-seen values are that snapshot's (the controller sends a new
  // one when the worker set changes, or when asked).
  snapshotText(s) {
    if (!s.fullAt || typeof s.fullAgeSec !== 'number') {
      setText(this.snapshot, '');
      return;
    }
    const age = s.fullAgeSec + (Date.now() - s.fetchedAt) / 1000;
    setText(this.snapshot, `as of the controller's status-full of ${fmtTime(Date.parse(s.fullAt))} (${fmtAge(age)} ago)`);
    this.snapshot.dataset.fullAt = s.fullAt;
  }

  countWorkers() {
    const n = this.workers.rows.size;
    let stale = 0;
    for (const r of this.workers.rows.values()) if (r.data.stale) stale++;
    const shown = this.workers.filter ? ` (${fmtInt(this.workers.shown)} shown)` : '';
    setText(this.workerCount, `${fmtInt(n)} workers${stale ? `, ${fmtInt(stale)} stale` : ''}${shown}`);
  }

  tick() {
    const s = this.app.store.swarms.get(this.id);
    if (!s) return;
    setText(this.f.age, fmtAge(this.app.store.heartbeatAge(s, Date.now())));
    setText(this.f.live, this.app.liveText(s));
    setClass(this.f.live, this.app.liveClass(s));
    this.snapshotText(s);
    this.chart.schedule();
  }
}

// Role, then instance, numbers by value: generator-2 before generator-10.
const COLLATE = new Intl.Collator('en', { numeric: true });
function byRoleInstance(a, b) {
  return COLLATE.compare(a.role, b.role) || COLLATE.compare(a.instance, b.instance);
}

function workerSig(w) {
  const io = (w.ioState && w.ioState.work) || {};
  return `${w.enabled}|${w.tps}|${io.input}|${io.output}|${w.stale}|${w.dead}|${w.lastSeenAt}|${w.location}|${w.transport}`;
}

function wio(w, k) {
  return w.ioState && w.ioState.work ? w.ioState.work[k] : undefined;
}

function seenAt(w) {
  const t = Date.parse(w.lastSeenAt);
  return Number.isFinite(t) ? fmtTime(t) : '–';
}

function short(cid) {
  return cid && cid.length > 14 ? `${cid.slice(0, 12)}…` : cid || '';
}

function scenarioText(sc) {
  if (!sc || typeof sc !== 'object' || Object.keys(sc).length === 0) return 'none';
  const parts = [];
  if (sc.lastStepId) parts.push(`last step ${sc.lastStepId}`);
  if (sc.nextStepId) parts.push(`next ${sc.nextStepId}`);
  if (typeof sc.totalRuns === 'number') parts.push(`${sc.totalRuns} runs`);
  if (typeof sc.runsRemaining === 'number') parts.push(`${sc.runsRemaining} remaining`);
  return parts.join(' · ') || 'none';
}
